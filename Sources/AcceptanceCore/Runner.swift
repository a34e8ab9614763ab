import Foundation
import Synchronization

/// What a run needs besides devices and time: which procedure, with which values, where.
public struct RunSettings: Sendable {
    public var runID: String
    public var procedure: Procedure
    /// Parameter values after command-line overrides.
    public var parameters: [String: Quantity]
    /// Values for prompts given on the command line (`--input rack_serial=...`).
    public var inputs: [String: String]
    /// Values a simulated rack supplies for prompts when no operator can answer (its serial number).
    public var simulatedInputs: [String: String] = [:]
    public var station: String
    public var operatorName: String?
    public var scenario: String?
    /// Text parameter values (a release name).
    public var textParameters: [String: String] = [:]
    /// Firmware manifests by release name, for firmware steps.
    public var firmwareManifests: [String: FirmwareManifest] = [:]
    /// Transport settings a technician or auditor must see in the record (`insecure TLS to compute01`).
    public var warnings: [String] = []
    /// How each device is reached, for the record (no credentials).
    public var endpoints: [String: String] = [:]
    /// The model (profile) of each device used, as fitted.
    public var models: [String: String] = [:]
    /// The harness's version and executable digest, for the record.
    public var harness: RunRecord.HarnessInfo?

    public init(runID: String, procedure: Procedure, parameters: [String: Quantity], inputs: [String: String] = [:],
                station: String, operatorName: String? = nil, scenario: String? = nil) {
        self.runID = runID
        self.procedure = procedure
        self.parameters = parameters
        self.inputs = inputs
        self.station = station
        self.operatorName = operatorName
        self.scenario = scenario
    }

    /// A run id that sorts by time and names the procedure: `20261125T010203Z-leak-test-3f9a`.
    public static func makeRunID(procedure: String, date: Date = Date()) -> String {
        let stamp = Timestamp.string(date).replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: "")
        let compact = String(stamp.prefix(15)) + "Z"
        let suffix = String(UInt16.random(in: 0...UInt16.max), radix: 16).leftPadded(to: 4)
        return "\(compact)-\(procedure)-\(suffix)"
    }
}

/// Runs a procedure: setup, then main, then cleanup, which always runs.
///
/// A step that does not pass in setup or main skips the rest of them and goes to cleanup. Every cleanup step runs
/// even if an earlier one failed, so the rack gets every chance of reaching its safe state. A stop request (Ctrl-C,
/// SIGTERM) cancels the running step; cleanup then runs and cannot itself be stopped.
public final class Runner: Sendable {
    public let settings: RunSettings
    public let bus: DeviceBus
    public let clock: any RunClock
    public let console: any OperatorConsole
    public let observer: any RunObserver
    public let folder: RunFolder?
    public let stop: StopController
    /// Retries and other transport events, reported by the run's clients as they happen.
    public let transportEvents: TransportEventLog

    struct State {
        var record: RunRecord
        /// Parameter and input values visible to expressions.
        var environment: [String: Value]
        var journalFailure: RecordWriteError?
        var sequence = 0
        /// Retries reported since the current step began.
        var retries: [String] = []
    }

    private let state: Mutex<State>
    private let wallStart = ContinuousClock.now

    public init(settings: RunSettings, bus: DeviceBus, clock: any RunClock, console: any OperatorConsole,
                observer: any RunObserver = SilentObserver(), folder: RunFolder? = nil, stop: StopController = StopController(),
                transportEvents: TransportEventLog = TransportEventLog()) {
        self.transportEvents = transportEvents
        self.settings = settings
        self.bus = bus
        self.clock = clock
        self.console = console
        self.observer = observer
        self.folder = folder
        self.stop = stop
        var environment: [String: Value] = [:]
        for (name, value) in settings.parameters { environment[name] = .quantity(value) }
        for (name, value) in settings.textParameters { environment[name] = .text(value) }
        let procedure = settings.procedure
        let record = RunRecord(
            runID: settings.runID,
            procedure: .init(id: procedure.id, title: procedure.title, version: procedure.version,
                             file: (procedure.file as NSString).lastPathComponent, sha256: procedure.sha256),
            parameters: settings.parameters.mapValues(\.description).merging(settings.textParameters) { $1 },
            rackProfile: procedure.rack,
            rackSerial: settings.inputs["rack_serial"], operator: settings.operatorName, station: settings.station,
            scenario: settings.scenario, inputs: [:],
            clock: .init(kind: clock.kind,
                         timeScale: (clock as? SimulationClock)?.timeScale ?? (clock as? WallClock).flatMap {
                             $0.timeScale == 1 ? nil : $0.timeScale
                         }, elapsedSeconds: 0,
                         wallSeconds: 0),
            started: Timestamp.string(clock.date(at: clock.now())), ended: nil, verdict: .pass, message: nil,
            cleanupCompleted: false, steps: [])
        var withTransport = record
        if !settings.endpoints.isEmpty { withTransport.endpoints = settings.endpoints }
        if !settings.models.isEmpty { withTransport.models = settings.models }
        if !settings.warnings.isEmpty { withTransport.warnings = settings.warnings }
        withTransport.harness = settings.harness
        state = Mutex(State(record: withTransport, environment: environment))
    }

    // MARK: Events

    /// Sends an event to the observer and appends it to the journal, after `held` lines if any, in one write.
    func emit(_ event: RunEvent, after held: JSONLine? = nil) {
        if !transportEvents.isEmpty { takeTransportEvents() }
        observer.handle(event)
        // Progress is for the live console line; the journal has the samples and results themselves.
        if case .progress = event { return }
        guard let journal = folder?.journal else { return }
        do {
            try journal.append(held.map { [$0, journalLine(event)] } ?? [journalLine(event)])
        } catch {
            state.withLock { if $0.journalFailure == nil { $0.journalFailure = error } }
        }
    }

    func journalLine(_ event: RunEvent) -> JSONLine {
        let now = clock.now()
        var line = JSONLine()
        let sequence = state.withLock { state -> Int in
            state.sequence += 1
            return state.sequence
        }
        line.add("seq", sequence)
        line.add("time", Timestamp.string(clock.date(at: now)))
        line.add("clock_s", now.seconds)
        Self.describe(event, into: &line)
        return line
    }

    static func describe(_ event: RunEvent, into line: inout JSONLine) {
        switch event {
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
            for (name, value) in record.parameters.sorted(by: { $0.key < $1.key }) { parameters.add(name, value) }
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
                    object.add(point, values[offset])
                }
                line.add("values", object: object)
                var unitObject = JSONLine()
                for (offset, point) in points.enumerated() where offset < units.count { unitObject.add(point, units[offset]) }
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
            func measurementLine(_ measurement: MeasurementRecord) -> JSONLine {
                var object = JSONLine()
                object.add("name", measurement.name)
                object.add("value", measurement.value)
                object.add("text", measurement.text)
                object.add("unit", measurement.unit)
                object.add("low", measurement.low)
                object.add("high", measurement.high)
                object.add("verdict", measurement.verdict.rawValue)
                return object
            }
            line.add("measurements", array: record.measurements.map(measurementLine))
            if let members = record.members {
                line.add("members", array: members.map { member in
                    var object = JSONLine()
                    object.add("device", member.device)
                    object.add("verdict", member.verdict.rawValue)
                    object.add("message", member.message)
                    object.add("error", member.error)
                    object.add("measurements", array: member.measurements.map(measurementLine))
                    return object
                })
            }
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
        case let .runFinished(record):
            line.add("event", "run_finished")
            line.add("verdict", record.verdict.rawValue)
            line.add("message", record.message)
            line.add("cleanup_completed", record.cleanupCompleted)
        }
    }

    /// Takes what the transports reported since last time: each retry goes to the journal and the console, and on
    /// the running step. Called before every event the runner emits and when a step ends, so a retry is journaled
    /// no later than the next progress tick.
    func takeTransportEvents() {
        for event in transportEvents.take() {
            switch event.kind {
            case .retry:
                state.withLock { $0.retries.append("\(event.device): \(event.message)") }
                emit(.retry(device: event.device, message: event.message))
            }
        }
    }

    // MARK: Running

    /// Ends the run before it starts, with the rack untouched: every step skipped, verdict ERROR, the record written.
    /// For a station that could not even open its connections.
    public func refuse(because problem: String) -> RunRecord {
        emit(.runStarted(state.withLock { $0.record }))
        for step in settings.procedure.allSteps {
            record(skipped(step, because: "not run: \(problem)"))
        }
        return finish(verdict: .error, message: problem, cleanupCompleted: false)
    }

    /// Runs the procedure to its end and returns the record (also written to the run folder, if any).
    public func run() async -> RunRecord {
        let procedure = settings.procedure
        emit(.runStarted(state.withLock { $0.record }))
        if let problem = preflight() {
            // Nothing has been actuated: leave the rack untouched.
            for step in procedure.allSteps {
                record(skipped(step, because: "not run: \(problem)"))
            }
            return finish(verdict: .error, message: problem, cleanupCompleted: false)
        }
        // Connecting (logins, certificate pins) can take a while on a line with dead BMCs: a stop ends it.
        enum Preflight: Sendable {
            case connected(String?)
            case stopped
        }
        let preflight = await withTaskGroup(of: Preflight.self) { group -> Preflight in
            group.addTask { .connected(await self.connectDevices()) }
            group.addTask {
                _ = await self.stop.waitForStop()
                return .stopped
            }
            let first = await group.next() ?? .stopped
            group.cancelAll()
            return first
        }
        switch preflight {
        case .connected(nil): break
        case let .connected(problem?):
            for step in procedure.allSteps {
                record(skipped(step, because: "not run: \(problem)"))
            }
            return finish(verdict: .error, message: problem, cleanupCompleted: false)
        case .stopped:
            let message = "stopped by \(stop.reason?.rawValue ?? "the operator") while connecting, before anything was actuated"
            for step in procedure.allSteps {
                record(skipped(step, because: "not run: \(message)"))
            }
            return finish(verdict: .aborted, message: message, cleanupCompleted: false)
        }

        // Setup and main run in a child task that a stop request cancels.
        let stopReason = await withTaskGroup(of: StopReason?.self) { group -> StopReason? in
            group.addTask { await self.runSetupAndMain() }
            group.addTask { await self.stop.waitForStop() }
            var reason: StopReason?
            if let first = await group.next() {
                reason = first ?? self.stop.reason
            }
            group.cancelAll()
            while let next = await group.next() { reason = reason ?? next }
            return reason ?? self.stop.reason
        }

        stop.enterCleanup()
        var verdict = state.withLock { state in
            state.record.steps.filter { $0.group != .cleanup }.map(\.verdict).reduce(Verdict.pass, Verdict.worst)
        }
        if stopReason != nil { verdict = .aborted }
        let firstProblem = state.withLock { state in
            state.record.steps.first { $0.group != .cleanup && $0.verdict != .pass && $0.verdict != .skipped }
        }
        var message = firstProblem.map(Self.summary)
        if let stopReason {
            let during = state.withLock { state in state.record.steps.first { $0.verdict == .aborted }?.name }
            message = "stopped by \(stopReason == .operatorAbort ? "the operator" : stopReason.rawValue)"
                + (during.map { " during '\($0)'" } ?? "")
        }

        let reason = switch verdict {
        case .pass: "procedure complete"
        case .aborted: "run stopped"
        default: "procedure ended with \(verdict)"
        }
        emit(.groupStarted(.cleanup, stepCount: procedure.cleanup.count))
        emit(.cleanupStarted(reason: reason))
        // Cleanup runs in its own task so that cancelling whoever called `run()` cannot cut it short: it must
        // return the rack to its safe state. The task is awaited here, never left running.
        let cleanup = Task {
            var verdict = Verdict.pass
            for step in procedure.cleanup {
                verdict = Verdict.worst(verdict, await self.runStep(step).verdict)
            }
            return verdict
        }
        let cleanupVerdict = await cleanup.value
        let cleanupCompleted = cleanupVerdict == .pass
        if verdict == .pass, cleanupVerdict != .pass {
            verdict = cleanupVerdict
            let failed = state.withLock { state in state.record.steps.first { $0.group == .cleanup && $0.verdict != .pass } }
            message = "cleanup did not complete: " + (failed.map(Self.summary) ?? "")
        } else if !cleanupCompleted {
            message = (message.map { "\($0); " } ?? "") + "cleanup did not complete"
        }
        return finish(verdict: verdict, message: message, cleanupCompleted: cleanupCompleted)
    }

    /// What went wrong in a step, in one line: the error, the failing measurement against its limit, or the message.
    static func summary(_ step: StepRecord) -> String {
        if let error = step.error { return "\(step.name): \(error)" }
        if let failed = step.measurements.first(where: { $0.verdict == .fail }) {
            return "\(step.name): \(failed.name) = \(failed.displayValue)"
                + (failed.displayLimits.map { ", limit \($0)" } ?? "")
        }
        return "\(step.name): \(step.message ?? step.verdict.rawValue)"
    }

    /// Checks, before anything is actuated, that every value a prompt needs can be had.
    func preflight() -> String? {
        var problems: [String] = []
        for (name, pattern, _) in settings.procedure.inputs {
            if let value = settings.inputs[name] {
                if let pattern, !Self.matches(value, pattern) {
                    problems.append("--input \(name)=\(value) does not match the pattern \(pattern)")
                }
            } else if !console.isInteractive, settings.simulatedInputs[name] == nil {
                problems.append("the prompt for '\(name)' needs a value and no operator can answer: "
                    + "pass --input \(name)=VALUE\(name == "rack_serial" ? " (or --rack-serial)" : "")")
            }
        }
        problems += timeProblems()
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    /// Every device the procedure uses, group members included, in the order the rack lists them.
    var usedDevices: [String] {
        let procedure = settings.procedure
        var names = Set(procedure.devices)
        for group in procedure.deviceGroups {
            for member in bus.configuration.rack.group(named: group)?.members ?? [] { names.insert(member) }
        }
        return bus.configuration.rack.devices.map(\.name).filter { names.contains($0) }
    }

    /// Connects every device the procedure uses before anything is actuated: a BMC whose certificate does not
    /// match its pin, or that refuses the login, stops the run here, with the rack untouched.
    func connectDevices() async -> String? {
        let devices = usedDevices.compactMap { bus.devices[$0] }
        let failures = await withTaskGroup(of: DeviceError?.self) { group -> [DeviceError] in
            var failures: [DeviceError] = []
            var next = 0
            func start() {
                guard next < devices.count else { return }
                let device = devices[next]
                next += 1
                group.addTask {
                    do throws(DeviceError) {
                        try await device.connect()
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            for _ in 0..<min(32, devices.count) { start() }
            while let result = await group.next() {
                if let result { failures.append(result) }
                start()
            }
            return failures
        }
        guard !failures.isEmpty else { return nil }
        let sorted = failures.sorted { $0.device < $1.device }
        var message = "before anything was actuated, \(sorted.count) device\(sorted.count == 1 ? "" : "s") could not be "
            + "reached: " + sorted.prefix(5).map { "\($0.device): \($0.reason)" }.joined(separator: "; ")
        if sorted.count > 5 { message += "; and \(sorted.count - 5) more" }
        return message
    }

    /// The longest wait, timeout or hold a step may have: longer is a mistake, not a test.
    static let longestTime = Duration.seconds(7 * 24 * 3600)

    /// Checks every time a step will use that depends only on parameters, so a bad `--param` is caught before
    /// the rack moves rather than halfway through.
    func timeProblems() -> [String] {
        let environment = state.withLock { $0.environment }
        var problems: [String] = []
        func check(_ expression: Expression, _ what: String, _ step: Step, positive: Bool = false) -> Duration? {
            guard expression.references.allSatisfy({ environment[$0] != nil }) else { return nil }
            do {
                let value = try duration(expression, environment)
                if positive, value <= .zero { problems.append("\(step.name): \(what) must be above zero") }
                if value > Self.longestTime {
                    problems.append("\(step.name): \(what) \(expression.source) is longer than 7 days")
                }
                return value
            } catch {
                problems.append("\(step.name): \(what): \(error)")
                return nil
            }
        }
        for step in settings.procedure.allSteps {
            switch step.kind {
            case let .wait(duration): _ = check(duration, "wait", step)
            case let .waitUntil(_, timeout, poll):
                _ = check(timeout, "timeout", step)
                _ = check(poll, "poll", step, positive: true)
            case let .sample(_, every, length, _, _):
                if let interval = check(every, "every", step, positive: true), let total = check(length, "for", step),
                   interval > .zero {
                    if interval > total {
                        problems.append("\(step.name): the interval (\(every.source)) is longer than the sampling (\(length.source))")
                    } else if total / interval > 1_000_000 {
                        problems.append("\(step.name): more than 1,000,000 samples; sample less often")
                    }
                }
            default: break
            }
        }
        return problems
    }

    static func matches(_ value: String, _ pattern: String) -> Bool {
        // The whole value must match, whatever alternations the pattern has.
        guard let regex = try? NSRegularExpression(pattern: "^(?:\(pattern))$") else { return false }
        let range = NSRange(value.startIndex..., in: value)
        return regex.firstMatch(in: value, range: range).map { $0.range == range } ?? false
    }

    /// Returns the stop reason if it ended because of one.
    func runSetupAndMain() async -> StopReason? {
        for group in [StepGroup.setup, .main] {
            let steps = settings.procedure.steps(in: group)
            emit(.groupStarted(group, stepCount: steps.count))
            for (index, step) in steps.enumerated() {
                // Once a stop is requested, nothing more moves the rack: the rest goes straight to cleanup.
                if Task.isCancelled || stop.reason != nil {
                    for remaining in steps[index...] {
                        record(skipped(remaining, because: "not run: the run was stopped"))
                    }
                    if group == .setup {
                        for remaining in settings.procedure.main { record(skipped(remaining, because: "not run: the run was stopped")) }
                    }
                    return stop.reason ?? .interrupt
                }
                let result = await runStep(step)
                if result.verdict != .pass {
                    let reason = result.verdict == .aborted ? (stop.reason ?? .operatorAbort) : nil
                    for remaining in steps[(index + 1)...] {
                        record(skipped(remaining, because: "skipped after \(step.id) (\(step.name)) ended \(result.verdict)"))
                    }
                    if group == .setup {
                        for remaining in settings.procedure.main {
                            record(skipped(remaining, because: "skipped: setup did not complete"))
                        }
                    }
                    return reason
                }
            }
        }
        return nil
    }

    func skipped(_ step: Step, because message: String) -> StepRecord {
        StepRecord(id: step.id, group: step.group, number: step.number, name: step.name, kind: step.kind.keyword,
                   verdict: .skipped, measurements: [], message: message, source: step.location.description)
    }

    func record(_ stepRecord: StepRecord) {
        state.withLock { $0.record.steps.append(stepRecord) }
    }

    func finish(verdict: Verdict, message: String?, cleanupCompleted: Bool) -> RunRecord {
        stop.finish()
        var record = state.withLock { state -> RunRecord in
            let now = clock.now()
            state.record.ended = Timestamp.string(clock.date(at: now))
            state.record.clock.elapsedSeconds = now.seconds
            state.record.clock.wallSeconds = (ContinuousClock.now - wallStart).seconds
            state.record.verdict = verdict
            state.record.message = message
            state.record.cleanupCompleted = cleanupCompleted
            state.record.inputs = state.environment.compactMapValues { value in
                if case let .text(text) = value { return text }
                return nil
            }
            if let serial = state.record.inputs["rack_serial"] { state.record.rackSerial = serial }
            let (parts, firmware) = Self.partsAndFirmware(state.record.steps)
            state.record.parts = parts.isEmpty ? nil : parts
            state.record.firmware = firmware.isEmpty ? nil : firmware
            return state.record
        }
        if let failure = state.withLock({ $0.journalFailure }) {
            record.message = (record.message.map { "\($0); " } ?? "") + "journal incomplete: \(failure)"
            if record.verdict == .pass { record.verdict = .error }
        }
        // The record is written before the verdict is announced, so what the operator sees is what was recorded.
        if let folder {
            do {
                try folder.writeRecord(record)
            } catch {
                record.message = (record.message.map { "\($0); " } ?? "") + "\(error)"
                if record.verdict == .pass { record.verdict = .error }
                observer.handle(.notice("could not write the record: \(error)"))
            }
        }
        emit(.runFinished(record))
        if let journal = folder?.journal {
            do { try journal.sync() } catch { observer.handle(.notice("could not flush the journal: \(error)")) }
        }
        return record
    }

    /// Serial numbers (points named `serial`, `serial_number` or `*_serial`) and firmware versions (`*_version`)
    /// read anywhere in the run, by `device.point`.
    static func partsAndFirmware(_ steps: [StepRecord]) -> (parts: [String: String], firmware: [String: String]) {
        var parts: [String: String] = [:], firmware: [String: String] = [:]
        let readings = steps.flatMap(\.measurements) + steps.flatMap { ($0.members ?? []).flatMap(\.measurements) }
        for measurement in readings {
            guard let text = measurement.text, let dot = measurement.name.firstIndex(of: ".") else { continue }
            let point = measurement.name[measurement.name.index(after: dot)...]
            if point == "serial" || point == "serial_number" || point.hasSuffix("_serial") {
                parts[measurement.name] = text
            } else if point.hasSuffix("_version") {
                firmware[measurement.name] = text
            }
        }
        return (parts, firmware)
    }

    // MARK: Steps

    struct StepResult {
        var verdict = Verdict.pass
        var measurements: [MeasurementRecord] = []
        var message: String?
        var confirmedBy: String?
        var series: SeriesRecord?
        var members: [MemberRecord]?
        var error: String?
    }

    /// A step's problem that is the station's, not the rack's.
    struct StationError: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs one step, turning every outcome, including errors and cancellation, into a recorded verdict.
    @discardableResult
    func runStep(_ step: Step) async -> StepRecord {
        // A step that only reads, at one instant, journals its start together with its end (one write): a crash
        // in between loses nothing. Steps that move the rack or take time journal their start at once.
        var heldStart: JSONLine?
        switch step.kind {
        case .check, .measure:
            observer.handle(.stepStarted(step))
            if folder != nil { heldStart = journalLine(.stepStarted(step)) }
        default:
            emit(.stepStarted(step))
        }
        let started = clock.now()
        takeTransportEvents()
        state.withLock { $0.retries.removeAll() }
        var stepRecord = StepRecord(id: step.id, group: step.group, number: step.number, name: step.name,
                                    kind: step.kind.keyword, verdict: .pass,
                                    started: Timestamp.string(clock.date(at: started)), measurements: [],
                                    source: step.location.description)
        do {
            let result = try await step.forEach == nil ? execute(step, on: bus) : executeForEach(step)
            stepRecord.verdict = result.verdict
            stepRecord.measurements = result.measurements
            stepRecord.message = result.message
            stepRecord.confirmedBy = result.confirmedBy
            stepRecord.series = result.series
            stepRecord.members = result.members
            if result.verdict == .error, let message = result.error { stepRecord.error = message }
        } catch is CancellationError {
            stepRecord.verdict = .aborted
            stepRecord.message = "stopped by \(stop.reason?.rawValue ?? "the operator") while running"
        } catch let error as DeviceError where error.isCancellation {
            stepRecord.verdict = .aborted
            stepRecord.message = "stopped by \(stop.reason?.rawValue ?? "the operator") while waiting for \(error.device)"
        } catch let error as DeviceError {
            stepRecord.verdict = .error
            stepRecord.error = error.description
        } catch let error as ExpressionError {
            stepRecord.verdict = .error
            stepRecord.error = "\(step.location): \(error.message)"
        } catch let error as OperatorDeclined {
            stepRecord.verdict = .aborted
            stepRecord.message = error.description
            stop.requestStop(.operatorAbort)
        } catch {
            stepRecord.verdict = .error
            stepRecord.error = "\(error)"
        }
        if let failure = state.withLock({ $0.journalFailure }), stepRecord.verdict == .pass {
            stepRecord.verdict = .error
            stepRecord.error = "journal: \(failure)"
        }
        takeTransportEvents()
        let retries = state.withLock { $0.retries }
        if !retries.isEmpty { stepRecord.retries = retries }
        let ended = clock.now()
        stepRecord.ended = Timestamp.string(clock.date(at: ended))
        stepRecord.durationSeconds = (ended - started).seconds
        record(stepRecord)
        emit(.stepFinished(step, stepRecord), after: heldStart)
        if let journal = folder?.journal {
            do { try journal.syncIfDue() } catch { state.withLock { if $0.journalFailure == nil { $0.journalFailure = error } } }
        }
        return stepRecord
    }

    struct OperatorDeclined: Error, CustomStringConvertible {
        var step: String
        var description: String { "the operator declined '\(step)'" }
    }

    /// The values an expression reads: parameters, inputs and the points' current readings.
    func values(for expressions: [Expression], on bus: DeviceBus) async throws -> [String: Value] {
        var values = state.withLock { $0.environment }
        let points = expressions.flatMap(\.references).filter { values[$0] == nil }
        if !points.isEmpty {
            var unique: [String] = []
            for point in points where !unique.contains(point) { unique.append(point) }
            for (name, value) in try await bus.read(unique) { values[name] = value }
        }
        return values
    }

    func duration(_ expression: Expression, _ values: [String: Value]) throws -> Duration {
        let value = try expression.evaluate(values)
        guard case let .quantity(quantity) = value, let duration = quantity.duration, duration >= .zero else {
            throw StationError(description: "'\(expression.source)' must be a non-negative time, got \(value)")
        }
        return duration
    }

    func execute(_ step: Step, on bus: DeviceBus) async throws -> StepResult {
        try Task.checkCancellation()
        switch step.kind {
        case let .prompt(text, input, pattern):
            return try await prompt(step, text: text, input: input, pattern: pattern)
        case let .set(point, expression):
            let value = try expression.evaluate(try await values(for: [expression], on: bus))
            try Task.checkCancellation()
            try await bus.write(point, value)
            return StepResult(message: "\(point) ← \(value)")
        case let .measure(expression, limits, unit):
            let values = try await values(for: [expression] + [limits.low, limits.high].compactMap { $0 }, on: bus)
            let measured = try expression.evaluate(values)
            let measurement = try judge(name: step.name, measured, unit: unit, limits: limits,
                                        isInterval: false, values: values)
            return StepResult(verdict: measurement.verdict, measurements: [measurement])
        case let .wait(expression):
            let total = try duration(expression, try await values(for: [expression], on: bus))
            try await waitWithProgress(step, total: total)
            return StepResult(message: "waited \(Quantity.format(total.seconds)) s")
        case let .waitUntil(condition, timeout, poll):
            return try await waitUntil(step, condition: condition, timeout: timeout, poll: poll, on: bus)
        case let .sample(points, every, duration, measurements, failIf):
            return try await sample(step, points: points, every: every, for: duration, measurements: measurements,
                                    failIf: failIf, on: bus)
        case let .check(condition):
            let values = try await values(for: [condition], on: bus)
            let holds = try condition.evaluate(values)
            let readings = describeReadings(condition, values)
            guard case .bool(true) = holds else {
                return StepResult(verdict: .fail, measurements: readingMeasurements(condition, values),
                                  message: "not true: \(condition.source)\(readings)")
            }
            return StepResult(measurements: readingMeasurements(condition, values), message: "holds\(readings)")
        case let .action(action, argument):
            var text: String?
            if let argument {
                let value = try argument.evaluate(try await values(for: [argument], on: bus))
                guard case let .text(chosen) = value else {
                    throw StationError(description: "the value of \(action) must be text, got \(value)")
                }
                text = chosen
            }
            try Task.checkCancellation()
            try await bus.perform(action, value: text)
            return StepResult(message: "\(action)\(text.map { " \($0)" } ?? "") accepted")
        case let .firmware(points, release):
            return try await checkFirmware(points: points, release: release, on: bus)
        }
    }

    /// Reads version points and compares each with the manifest of the release.
    func checkFirmware(points: [String], release: Expression, on bus: DeviceBus) async throws -> StepResult {
        let values = try await values(for: [release] + points.map { Expression.reference($0) }, on: bus)
        guard case let .text(releaseName) = try release.evaluate(values) else {
            throw StationError(description: "release must be text")
        }
        guard let manifest = settings.firmwareManifests[releaseName] else {
            throw StationError(description: "no firmware manifest for release '\(releaseName)' (Fixtures/firmware/\(releaseName).yaml)")
        }
        var result = StepResult()
        var mismatches: [String] = []
        for reference in points {
            guard let (device, point) = bus.configuration.resolve(reference, aliases: bus.aliases),
                  let model = bus.configuration.profile(of: device)?.model else { continue }
            let name = Self.memberName(reference, bus)
            guard let expected = manifest.version(model: model, point: point.name) else {
                throw StationError(description: "manifest '\(releaseName)' (\(manifest.file)) has no \(point.name) for \(model)")
            }
            let found = values[reference]
            let actual: String? = if case let .text(text)? = found { text } else { nil }
            let verdict: Verdict = actual == expected ? .pass : .fail
            if verdict == .fail { mismatches.append("\(name) is \(actual ?? found?.description ?? "unreadable"), release wants \(expected)") }
            var recorded = MeasurementRecord(name: name, value: nil, text: actual ?? found?.description,
                                             unit: nil, limits: "= \(expected)", verdict: verdict)
            recorded.comparator = "=="
            result.measurements.append(recorded)
        }
        result.verdict = mismatches.isEmpty ? .pass : .fail
        result.message = mismatches.isEmpty ? "\(points.count) version\(points.count == 1 ? "" : "s") match \(releaseName)"
            : mismatches.joined(separator: "; ")
        return result
    }

    /// `each.bmc_version` as the member sees it: `compute07.bmc_version`.
    static func memberName(_ reference: String, _ bus: DeviceBus) -> String {
        guard let dot = reference.firstIndex(of: "."), let device = bus.aliases[String(reference[..<dot])] else {
            return reference
        }
        return device + reference[dot...]
    }

    /// Runs a `for_each` step once per member of its group, at most `concurrency` at a time. Each member's outcome
    /// is recorded on its own; the step is as bad as its worst member.
    func executeForEach(_ step: Step) async throws -> StepResult {
        guard let each = step.forEach, let group = bus.configuration.rack.group(named: each.group) else {
            throw StationError(description: "no device group '\(step.forEach?.group ?? "")'")
        }
        let members = group.members
        let started = clock.now()
        var results = [MemberRecord?](repeating: nil, count: members.count)
        try await withThrowingTaskGroup(of: (Int, MemberRecord).self) { tasks in
            var next = 0
            func start() {
                guard next < members.count else { return }
                let index = next, member = members[index]
                next += 1
                let memberBus = bus.aliasing(each.alias, to: member)
                tasks.addTask {
                    (index, try await self.runMember(step, member: member, bus: memberBus))
                }
            }
            for _ in 0..<min(each.concurrency, members.count) { start() }
            while let (index, record) = try await tasks.next() {
                results[index] = record
                let done = results.count { $0 != nil }
                emit(.progress(step, elapsed: (clock.now() - started).seconds, total: (clock.now() - started).seconds,
                               detail: "\(done) of \(members.count) \(group.name) done, last \(record.device) \(record.verdict)"))
                start()
            }
        }
        let records = results.compactMap { $0 }
        var result = StepResult(members: records)
        result.verdict = records.map(\.verdict).reduce(.pass, Verdict.worst)
        let counts = Dictionary(grouping: records, by: \.verdict).mapValues(\.count)
        let tally = [Verdict.pass, .fail, .error, .aborted].compactMap { verdict in counts[verdict].map { "\($0) \(verdict)" } }
        let bad = records.filter { $0.verdict != .pass }
        var message = "\(records.count) \(group.name): \(tally.joined(separator: ", "))"
        if !bad.isEmpty {
            message += " — " + bad.prefix(6).map { "\($0.device): \($0.error ?? $0.message ?? $0.verdict.rawValue)" }
                .joined(separator: "; ")
            if bad.count > 6 { message += "; and \(bad.count - 6) more" }
        }
        if result.verdict == .error { result.error = message } else { result.message = message }
        // Stopped part-way: the step is ABORTED, and the record still says what each member did.
        return result
    }

    func runMember(_ step: Step, member: String, bus: DeviceBus) async throws -> MemberRecord {
        var record = MemberRecord(device: member, verdict: .pass, measurements: [])
        do {
            let result = try await execute(step, on: bus)
            record.verdict = result.verdict
            // Readings in the message name the member, not the alias: `compute07.power_state = PoweringOn`.
            let alias = step.forEach.map { "\($0.alias)." } ?? ""
            record.message = alias.isEmpty ? result.message
                : result.message?.replacingOccurrences(of: alias, with: "\(member).")
            record.measurements = result.measurements.map { measurement in
                var renamed = measurement
                renamed.name = Self.memberName(measurement.name, bus)
                return renamed
            }
        } catch is CancellationError {
            record.verdict = .aborted
        } catch let error as DeviceError {
            record.verdict = error.isCancellation ? .aborted : .error
            record.error = error.description
        } catch let error as ExpressionError {
            record.verdict = .error
            record.error = "\(step.location): \(error.message)"
        } catch {
            record.verdict = .error
            record.error = "\(error)"
        }
        return record
    }

    /// Point readings an expression used, as unjudged measurements for the record.
    func readingMeasurements(_ expression: Expression, _ values: [String: Value]) -> [MeasurementRecord] {
        expression.references.filter { $0.contains(".") }.compactMap { name in
            guard let value = values[name] else { return nil }
            return Self.measurementRecord(name: name, value, verdict: .pass)
        }
    }

    func describeReadings(_ expression: Expression, _ values: [String: Value]) -> String {
        let readings = expression.references.compactMap { name in values[name].map { "\(name) = \($0)" } }
        return readings.isEmpty ? "" : " (\(readings.joined(separator: ", ")))"
    }

    static func measurementRecord(name: String, _ value: Value, verdict: Verdict) -> MeasurementRecord {
        switch value {
        case let .quantity(quantity):
            MeasurementRecord(name: name, value: quantity.value, unit: quantity.unit.symbol, verdict: verdict)
        case let .number(number):
            MeasurementRecord(name: name, value: number, unit: nil, verdict: verdict)
        case .bool, .text, .missing:
            MeasurementRecord(name: name, value: nil, text: value.description, unit: nil, verdict: verdict)
        }
    }

    /// Records a value and judges it against inclusive limits, in the value's (or the requested) unit.
    func judge(name: String, _ measured: Value, unit: PhysicalUnit?, limits: Limits, isInterval: Bool,
               values: [String: Value]) throws -> MeasurementRecord {
        func convert(_ quantity: Quantity, _ target: PhysicalUnit) throws -> Quantity {
            do {
                return isInterval ? try quantity.convertedInterval(to: target) : try quantity.converted(to: target)
            } catch {
                throw StationError(description: "\(name): \(error)")
            }
        }
        if measured == .missing {
            throw StationError(description: "\(name): no reading (the device reports the sensor missing or failed)")
        }
        var measured = measured
        if let unit, case let .quantity(quantity) = measured { measured = .quantity(try convert(quantity, unit)) }
        var record = Self.measurementRecord(name: name, measured, verdict: .pass)
        guard !limits.isEmpty else { return record }
        func bound(_ expression: Expression?) throws -> Double? {
            guard let expression else { return nil }
            let value = try expression.evaluate(values)
            switch (value, measured) {
            case let (.quantity(limit), .quantity(reading)): return try convert(limit, reading.unit).value
            case let (.number(limit), .number): return limit
            default: throw StationError(description: "limit '\(expression.source)' (\(value)) does not fit \(measured)")
            }
        }
        record.low = try bound(limits.low)
        record.high = try bound(limits.high)
        record.limits = [limits.low.map { ">= \($0.source)" }, limits.high.map { "<= \($0.source)" }]
            .compactMap { $0 }.joined(separator: " and ")
        record.comparator = record.low != nil && record.high != nil ? "between" : record.low != nil ? ">=" : "<="
        if let value = record.value {
            let aboveLow = record.low.map { value >= $0 } ?? true
            let belowHigh = record.high.map { value <= $0 } ?? true
            record.verdict = aboveLow && belowHigh && value.isFinite ? .pass : .fail
        } else {
            record.verdict = .fail
        }
        return record
    }

    func prompt(_ step: Step, text: String, input: String?, pattern: String?) async throws -> StepResult {
        guard let input else {
            if console.isInteractive {
                guard try await console.confirm(text, step: step) else { throw OperatorDeclined(step: step.name) }
                return StepResult(message: "confirmed by the operator", confirmedBy: "operator")
            }
            return StepResult(message: "confirmed automatically (no terminal, or --yes)", confirmedBy: "auto")
        }
        var value: String
        var confirmedBy = "command-line"
        if let given = settings.inputs[input] {
            value = given
        } else if !console.isInteractive, let simulated = settings.simulatedInputs[input] {
            value = simulated
            confirmedBy = "scenario"
        } else {
            confirmedBy = "operator"
            var problem: String?
            while true {
                value = try await console.ask(text, input: input, pattern: pattern, step: step, problem: problem)
                value = value.trimmingCharacters(in: .whitespaces)
                if let pattern, !Self.matches(value, pattern) {
                    problem = "'\(value)' does not match \(pattern); try again"
                    continue
                }
                break
            }
        }
        if let pattern, !Self.matches(value, pattern) {
            throw StationError(description: "\(input) '\(value)' does not match \(pattern)")
        }
        state.withLock { $0.environment[input] = .text(value) }
        return StepResult(measurements: [MeasurementRecord(name: input, value: nil, text: value, unit: nil, verdict: .pass)],
                          message: "\(input) = \(value)", confirmedBy: confirmedBy)
    }

    /// Waits in slices so the console can show progress; the clock makes it instant in simulation.
    func waitWithProgress(_ step: Step, total: Duration) async throws {
        let start = clock.now()
        let slice = Duration.seconds(1)
        var elapsed = Duration.zero
        while elapsed < total {
            let next = min(elapsed + slice, total)
            try await clock.sleep(until: start + next)
            elapsed = next
            emit(.progress(step, elapsed: elapsed.seconds, total: total.seconds, detail: ""))
        }
    }

    func waitUntil(_ step: Step, condition: Expression, timeout: Expression, poll: Expression, on bus: DeviceBus) async throws -> StepResult {
        let environment = try await values(for: [], on: bus)
        let limit = try duration(timeout, environment)
        let interval = try duration(poll, environment)
        guard interval > .zero else { throw StationError(description: "poll interval must be above zero") }
        let start = clock.now()
        while true {
            let values = try await values(for: [condition], on: bus)
            let elapsed = clock.now() - start
            let readings = describeReadings(condition, values)
            if case .bool(true) = try condition.evaluate(values) {
                var measurements = readingMeasurements(condition, values)
                measurements.append(MeasurementRecord(name: "time to condition", value: elapsed.seconds, unit: "s",
                                                      verdict: .pass))
                return StepResult(measurements: measurements,
                                  message: "held after \(Quantity.format(elapsed.seconds)) s\(readings)")
            }
            emit(.progress(step, elapsed: elapsed.seconds, total: limit.seconds, detail: readings))
            if elapsed >= limit {
                return StepResult(verdict: .fail, measurements: readingMeasurements(condition, values),
                                  message: "not reached within \(timeout.source): \(condition.source)\(readings)")
            }
            try await clock.sleep(until: min(clock.now() + interval, start + limit))
        }
    }

    func sample(_ step: Step, points: [String], every: Expression, for total: Expression,
                measurements: [SeriesMeasurement], failIf: Expression?, on bus: DeviceBus) async throws -> StepResult {
        let environment = try await values(for: [], on: bus)
        let interval = try duration(every, environment)
        let length = try duration(total, environment)
        guard interval > .zero else { throw StationError(description: "sample interval must be above zero") }
        let samples = (length.seconds / interval.seconds + 1e-9).rounded(.down) + 1
        guard samples <= 1_000_000 else {
            throw StationError(description: "\(Quantity.format(samples)) samples is too many: sample less often or for less time")
        }
        guard interval <= length else {
            throw StationError(description: "the interval (\(every.source)) is longer than the sampling (\(total.source))")
        }
        // Every interval from the start, and always one at the very end, so the series spans the whole duration.
        var offsets = (0..<Int(samples)).map { interval * $0 }
        if let last = offsets.last, last < length { offsets.append(length) }
        var times: [Double] = []
        var columns = [[Double]](repeating: [], count: points.count)
        var units = [PhysicalUnit?](repeating: nil, count: points.count)
        let start = clock.now()
        let fileName = "series-\(step.group.rawValue)-\(step.number).csv"
        func seriesRecord() -> SeriesRecord {
            SeriesRecord(file: fileName, points: points, units: units.map { $0?.symbol ?? "" }, samples: times.count,
                         intervalSeconds: interval.seconds)
        }
        do {
            for (index, offset) in offsets.enumerated() {
                try await clock.sleep(until: start + offset)
                let guardPoints = failIf.map { $0.references.filter { environment[$0] == nil && !points.contains($0) } } ?? []
                let read = try await bus.read(points + guardPoints)
                let elapsed = (clock.now() - start).seconds
                var row: [Double] = []
                for (column, point) in points.enumerated() {
                    switch read[point] {
                    case let .quantity(quantity)?:
                        let unit = units[column] ?? quantity.unit
                        units[column] = unit
                        row.append((try? quantity.converted(to: unit).value) ?? .nan)
                    case let .number(number)?:
                        row.append(number)
                    default:
                        row.append(.nan)
                    }
                }
                times.append(elapsed)
                for (column, value) in row.enumerated() { columns[column].append(value) }
                emit(.sample(step, index: index, elapsed: elapsed, values: row, units: units.map { $0?.symbol ?? "" }))
                let latest = points.indices.map { column in
                    "\(points[column]) = \(Quantity.format(row[column]))\(units[column].map { " \($0.symbol)" } ?? "")"
                }.joined(separator: ", ")
                emit(.progress(step, elapsed: elapsed, total: length.seconds, detail: latest))
                if let failIf, case .bool(true) = try failIf.evaluate(environment.merging(read) { $1 }) {
                    try writeSeries(fileName, points: points, units: units, times: times, columns: columns)
                    let values = environment.merging(read) { $1 }
                    return StepResult(verdict: .fail, measurements: readingMeasurements(failIf, values),
                                      message: "stopped after \(Quantity.format(elapsed)) s: \(failIf.source)"
                                          + describeReadings(failIf, values),
                                      series: folder == nil ? nil : seriesRecord())
                }
            }
        } catch {
            // Keep what was sampled: the CSV beside the journal shows the series up to the interruption.
            try? writeSeries(fileName, points: points, units: units, times: times, columns: columns)
            throw error
        }
        try writeSeries(fileName, points: points, units: units, times: times, columns: columns)
        var results: [MeasurementRecord] = []
        var verdict = Verdict.pass
        for measurement in measurements {
            guard let column = points.firstIndex(of: measurement.point) else { continue }
            let statistic = Self.statistic(measurement.statistic, times: times, values: columns[column])
            guard statistic.isFinite else {
                throw StationError(description: "\(measurement.name): the \(measurement.statistic.rawValue) of "
                    + "\(measurement.point) is undefined (\(times.count) sample(s) or missing readings)")
            }
            let value: Value
            if let unit = units[column] {
                let statisticUnit = measurement.statistic == .slope ? (unit.per(.minute) ?? unit) : unit
                value = .quantity(Quantity(statistic, statisticUnit))
            } else {
                value = .number(statistic)
            }
            let isInterval = [.delta, .drop, .slope].contains(measurement.statistic)
            let judged = try judge(name: measurement.name, value, unit: measurement.unit, limits: measurement.limits,
                                   isInterval: isInterval, values: environment)
            verdict = Verdict.worst(verdict, judged.verdict)
            var recorded = judged
            recorded.of = measurement.point
            recorded.statistic = measurement.statistic.rawValue
            results.append(recorded)
        }
        return StepResult(verdict: verdict, measurements: results,
                          message: "\(times.count) samples over \(Quantity.format(length.seconds)) s",
                          series: folder == nil ? nil : seriesRecord())
    }

    func writeSeries(_ name: String, points: [String], units: [PhysicalUnit?], times: [Double], columns: [[Double]]) throws {
        guard let folder else { return }
        var csv = "t_s," + zip(points, units).map { point, unit in "\(point) [\(unit?.symbol ?? "1")]" }
            .joined(separator: ",") + "\n"
        for (row, time) in times.enumerated() {
            csv += JSONLine.exact(time)
            for column in columns { csv += "," + (column[row].isFinite ? JSONLine.exact(column[row]) : "") }
            csv += "\n"
        }
        try folder.writeAtomically(name, Data(csv.utf8))
    }

    /// A statistic of a series; times in seconds, slope per minute.
    public static func statistic(_ statistic: SeriesStatistic, times: [Double], values: [Double]) -> Double {
        guard let first = values.first, let last = values.last else { return .nan }
        switch statistic {
        case .first: return first
        case .last: return last
        case .min: return values.min() ?? .nan
        case .max: return values.max() ?? .nan
        case .mean: return values.reduce(0, +) / Double(values.count)
        case .delta: return last - first
        case .drop: return first - last
        case .slope:
            guard values.count >= 2 else { return .nan }
            let minutes = times.map { $0 / 60 }
            let meanT = minutes.reduce(0, +) / Double(minutes.count)
            let meanV = values.reduce(0, +) / Double(values.count)
            var numerator = 0.0, denominator = 0.0
            for (t, v) in zip(minutes, values) {
                numerator += (t - meanT) * (v - meanV)
                denominator += (t - meanT) * (t - meanT)
            }
            return denominator == 0 ? .nan : numerator / denominator
        }
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
