/// What the runner reports as it goes, to the console and to the journal.
public enum RunEvent: Sendable {
    case runStarted(RunRecord)
    case groupStarted(StepGroup, stepCount: Int)
    case stepStarted(Step)
    /// A wait, poll or sample in progress: clock seconds elapsed of total, and the latest reading.
    case progress(Step, elapsed: Double, total: Double, detail: String)
    /// One sample of a series: clock seconds since the step started, values in the units of `units`.
    case sample(Step, index: Int, elapsed: Double, values: [Double], units: [String])
    case stepFinished(Step, StepRecord)
    /// An attempt of a step with `retry:` did not pass; attempt `attempt.attempt + 1` of `of` follows after
    /// `delay` clock seconds.
    case attemptFailed(Step, AttemptRecord, of: Int, delay: Double)
    /// Operators accepted a hazardous step's hazard; the step starts now.
    case hazardConfirmed(Step, HazardRecord)
    /// Cleanup is starting; the reason it runs (always, but the operator should know why now).
    case cleanupStarted(reason: String)
    case notice(String)
    /// A device transaction failed and is being retried (the run goes on if a retry succeeds).
    case retry(device: String, message: String)
    /// The run is about to move a device (a write or an action): journaled before it is sent, so a station killed
    /// at any moment leaves the journal knowing which devices it may have moved and what it commanded last.
    case actuated(device: String, command: String, step: String?)
    /// The safety supervisor started watching these interlocks.
    case supervisorStarted([Interlock])
    /// An interlock tripped; its reaction has run.
    case interlockTripped(InterlockTrip)
    /// The safe-state check at the end of the run.
    case safeStateChecked(SafeStateRecord)
    case runFinished(RunRecord)
}

extension RunEvent {
    /// The event's fields as one journal line: the journal's schema, one case per event.
    public func describe(into line: inout JSONLine) {
        switch self {
        case let .runStarted(record):
            line.add("event", "run_started")
            line.add("run_id", record.runID)
            line.add("procedure", record.procedure.id)
            line.add("procedure_version", record.procedure.version)
            line.add("procedure_sha256", record.procedure.sha256)
            line.add("clock", record.clock.kind.rawValue)
            line.add("station", record.station)
            line.add("scenario", record.scenario)
            var parameters = JSONLine()
            for (name, value) in record.parameters.sorted(by: { $0.key < $1.key }) {
                parameters.add(named: name, value)
            }
            line.add("parameters", object: parameters)
        case let .groupStarted(group, count):
            line.add("event", "group_started")
            line.add("group", group.rawValue)
            line.add("steps", count)
        case let .stepStarted(step):
            line.add("event", "step_started")
            line.add("step", step.id)
            line.add("name", step.name)
            line.add("kind", step.kind.keyword)
        case .progress:
            line.add("event", "progress")
        case let .sample(step, index, elapsed, values, units):
            line.add("event", "sample")
            line.add("step", step.id)
            line.add("index", index)
            line.add("elapsed_s", elapsed)
            if case let .sample(points, _, _, _, _) = step.kind {
                var object = JSONLine()
                for (offset, point) in points.enumerated() where offset < values.count {
                    object.add(named: point, values[offset])
                }
                line.add("values", object: object)
                var unitObject = JSONLine()
                for (offset, point) in points.enumerated() where offset < units.count {
                    unitObject.add(named: point, units[offset])
                }
                line.add("units", object: unitObject)
            }
        case let .stepFinished(step, record):
            line.add("event", "step_finished")
            line.add("step", step.id)
            line.add("verdict", record.verdict.rawValue)
            line.add("duration_s", record.durationSeconds)
            line.add("message", record.message)
            line.add("error", record.error)
            line.add("confirmed_by", record.confirmedBy)
            line.add("waited", record.waited)
            if let hazard = record.hazard {
                var object = JSONLine()
                object.add("hazard", hazard.hazard)
                object.add("required", hazard.required)
                object.add("confirmations", array: hazard.confirmations.map(Self.confirmationLine))
                line.add("hazard", object: object)
            }
            func measurementLine(_ measurement: MeasurementRecord) -> JSONLine {
                var object = JSONLine()
                object.add("name", measurement.name)
                object.add("value", measurement.value)
                object.add("text", measurement.text)
                object.add("unit", measurement.unit)
                object.add("low", measurement.low)
                object.add("high", measurement.high)
                object.add("verdict", measurement.verdict.rawValue)
                // What recovery needs to rebuild the measurement whole from the journal alone.
                object.add("limits", measurement.limits)
                object.add("comparator", measurement.comparator)
                object.add("of", measurement.of)
                object.add("statistic", measurement.statistic)
                return object
            }
            line.add("measurements", array: record.measurements.map(measurementLine))
            if let members = record.members {
                line.add(
                    "members",
                    array: members.map { member in
                        var object = JSONLine()
                        object.add("device", member.device)
                        object.add("verdict", member.verdict.rawValue)
                        object.add("message", member.message)
                        object.add("error", member.error)
                        object.add("measurements", array: member.measurements.map(measurementLine))
                        return object
                    })
            }
        case let .attemptFailed(step, attempt, attempts, delay):
            line.add("event", "step_attempt")
            line.add("step", step.id)
            line.add("attempt", attempt.attempt)
            line.add("attempts", attempts)
            line.add("verdict", attempt.verdict.rawValue)
            line.add("message", attempt.message)
            line.add("error", attempt.error)
            line.add("retry_in_s", delay)
            line.add(
                "measurements",
                array: attempt.measurements.map { measurement in
                    var object = JSONLine()
                    object.add("name", measurement.name)
                    object.add("value", measurement.value)
                    object.add("text", measurement.text)
                    object.add("unit", measurement.unit)
                    object.add("verdict", measurement.verdict.rawValue)
                    return object
                })
        case let .hazardConfirmed(step, hazard):
            line.add("event", "hazard_confirmed")
            line.add("step", step.id)
            line.add("hazard", hazard.hazard)
            line.add("required", hazard.required)
            line.add("confirmations", array: hazard.confirmations.map(Self.confirmationLine))
            if let refused = hazard.refused { line.add("refused", objects: refused, each: "reason") }
        case let .cleanupStarted(reason):
            line.add("event", "cleanup_started")
            line.add("reason", reason)
        case let .notice(text):
            line.add("event", "notice")
            line.add("text", text)
        case let .retry(device, message):
            line.add("event", "retry")
            line.add("device", device)
            line.add("message", message)
        case let .actuated(device, command, step):
            line.add("event", "actuated")
            line.add("device", device)
            line.add("command", command)
            line.add("step", step)
        case let .supervisorStarted(interlocks):
            line.add("event", "supervisor_started")
            line.add(
                "interlocks",
                array: interlocks.map { interlock in
                    var object = JSONLine()
                    object.add("name", interlock.name)
                    object.add("trip_if", interlock.condition.source)
                    object.add("poll_s", interlock.poll.seconds)
                    object.add("stale_after_s", interlock.staleAfter.seconds)
                    return object
                })
        case let .interlockTripped(trip):
            line.add("event", "interlock")
            line.add("interlock", trip.interlock)
            line.add("description", trip.description)
            line.add("cause", trip.cause.rawValue)
            line.add("condition", trip.condition)
            line.add("at", trip.at)
            line.add("tripped_clock_s", trip.clockSeconds)
            line.add("reacted_clock_s", trip.reactedClockSeconds)
            line.add("readings", objects: trip.readings, each: "reading")
            line.add("culprits", objects: trip.culprits, each: "device")
            line.add(
                "reaction",
                array: trip.reaction.map { result in
                    var object = JSONLine()
                    object.add("action", result.action)
                    object.add("succeeded", result.succeeded)
                    object.add("error", result.error)
                    return object
                })
        case let .safeStateChecked(check):
            line.add("event", "safe_state")
            line.add("verified", check.verified)
            line.add(
                "devices",
                array: check.devices.map { device in
                    var object = JSONLine()
                    object.add("device", device.device)
                    object.add("check", device.check)
                    object.add("outcome", device.outcome.rawValue)
                    object.add("message", device.message)
                    return object
                })
        case let .runFinished(record):
            line.add("event", "run_finished")
            line.add("verdict", record.verdict.rawValue)
            line.add("message", record.message)
            line.add("cleanup_completed", record.cleanupCompleted)
        }
    }
}

extension RunEvent {
    static func confirmationLine(_ confirmation: HazardRecord.Confirmation) -> JSONLine {
        var object = JSONLine()
        object.add("operator", confirmation.operator)
        object.add("at", confirmation.at)
        object.add("automatic", confirmation.automatic)
        return object
    }
}

/// Receives run events; the console and tests implement it.
public protocol RunObserver: Sendable {
    func handle(_ event: RunEvent)
}

/// Discards events.
public struct SilentObserver: RunObserver {
    public init() {}
    public func handle(_ event: RunEvent) {}
}

/// The person at the station, or a stand-in for one when nobody is there.
public protocol OperatorConsole: Sendable {
    /// False when nobody can answer (no terminal, or --yes): prompts are confirmed automatically and any value a
    /// prompt needs must have been given on the command line.
    var isInteractive: Bool { get }
    /// Shows an instruction and waits for the operator to confirm it. Returns false if the operator declined.
    func confirm(_ text: String, step: Step) async throws -> Bool
    /// Asks for a value; the answer is checked against the pattern by the runner, which may ask again.
    func ask(_ text: String, input: String, pattern: String?, step: Step, problem: String?) async throws -> String
    /// Shows a hazardous step's hazard and asks an operator to accept it with their id (confirmation `number` of
    /// `required`, each by a different operator); `problem` says why the last answer was refused. Throws
    /// `OperatorDeclined` if the operator refuses, `HazardNotConfirmed` if nobody can answer.
    func confirmHazard(
        _ hazard: String, step: Step, number: Int, required: Int, problem: String?
    ) async throws -> String
}

extension OperatorConsole {
    /// Nobody to accept a hazard: the step does not run.
    public func confirmHazard(
        _ hazard: String, step: Step, number: Int, required: Int, problem: String?
    ) async throws -> String {
        throw HazardNotConfirmed(step: step.name, hazard: hazard)
    }
}

/// Confirms every prompt without a person, as `--yes` or a missing terminal does. The record says so. A hazard is
/// never confirmed without a person: it goes to `hazards` (the terminal, when there is one), or the step does not run.
public struct AutomaticOperator: OperatorConsole {
    let hazards: (any OperatorConsole)?

    public init(hazards: (any OperatorConsole)? = nil) {
        self.hazards = hazards
    }

    public func confirmHazard(
        _ hazard: String, step: Step, number: Int, required: Int, problem: String?
    ) async throws -> String {
        guard let hazards else { throw HazardNotConfirmed(step: step.name, hazard: hazard) }
        return try await hazards.confirmHazard(hazard, step: step, number: number, required: required, problem: problem)
    }

    public var isInteractive: Bool { false }
    public func confirm(_ text: String, step: Step) async throws -> Bool { true }
    public func ask(
        _ text: String, input: String, pattern: String?, step: Step, problem: String?
    ) async throws -> String {
        throw CancellationError()
    }
}
