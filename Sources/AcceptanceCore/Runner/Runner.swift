import Foundation
import Synchronization

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
    /// The devices as the safety supervisor reaches them: its own connections where the transport allows a second
    /// one, so a step waiting on a slow device never delays a poll.
    public let supervisorBus: DeviceBus
    let separateSupervisor: Bool

    struct State {
        var record: RunRecord
        /// Parameter and input values visible to expressions.
        var environment: [String: Value]
        var journalFailure: RecordWriteError?
        /// Retries reported since the current step began.
        var retries: [String] = []
        /// Devices the run moved (or tried to), in the order first moved, with the commands sent to each.
        var actuated: [String: [String]] = [:]
        var actuatedOrder: [String] = []
        /// Interlocks that tripped.
        var trips: [InterlockTrip] = []
    }

    let state: Mutex<State>
    /// The last timestamp formatted, by millisecond.
    let lastStamp = Mutex(FormattedTimestamp(millisecond: .min, text: ""))
    private let wallStart = ContinuousClock.now
    /// The clock when the run began: a clock shared by several runs (a suite's, on one simulated rack) does not start
    /// at zero for the second.
    private let clockStart: Duration

    public init(
        settings: RunSettings, bus: DeviceBus, clock: any RunClock, console: any OperatorConsole,
        observer: any RunObserver = SilentObserver(), folder: RunFolder? = nil, stop: StopController = StopController(),
        transportEvents: TransportEventLog = TransportEventLog(), supervisorBus: DeviceBus? = nil
    ) {
        self.transportEvents = transportEvents
        self.supervisorBus = supervisorBus ?? bus
        self.separateSupervisor = supervisorBus != nil
        self.settings = settings
        self.bus = bus
        self.clock = clock
        self.console = console
        self.observer = observer
        self.folder = folder
        self.stop = stop
        clockStart = clock.now()
        var environment: [String: Value] = [:]
        for (name, value) in settings.parameters { environment[name] = .quantity(value) }
        for (name, value) in settings.textParameters { environment[name] = .text(value) }
        let procedure = settings.procedure
        let record = RunRecord(
            runID: settings.runID,
            procedure: .init(
                id: procedure.id, title: procedure.title, version: procedure.version,
                file: (procedure.file as NSString).lastPathComponent, sha256: procedure.sha256),
            parameters: settings.parameters.mapValues(\.description).merging(settings.textParameters) { $1 },
            rackProfile: procedure.rack,
            rackSerial: settings.inputs["rack_serial"], operator: settings.operatorName, station: settings.station,
            scenario: settings.scenario, inputs: [:],
            clock: .init(
                kind: clock.kind, timeScale: clock.timeScale, elapsedSeconds: 0,
                wallSeconds: 0),
            started: Timestamp.string(clock.date(at: clock.now())), ended: nil, verdict: .pass, message: nil,
            cleanupCompleted: false, steps: [])
        var withTransport = record
        if !settings.endpoints.isEmpty { withTransport.endpoints = settings.endpoints }
        if !settings.models.isEmpty { withTransport.models = settings.models }
        if !settings.instruments.isEmpty { withTransport.instruments = settings.instruments }
        if !settings.deviations.isEmpty { withTransport.deviations = settings.deviations }
        withTransport.limitSet = settings.limitSet
        withTransport.simulator = settings.simulator
        if !settings.warnings.isEmpty { withTransport.warnings = settings.warnings }
        withTransport.harness = settings.harness
        state = Mutex(State(record: withTransport, environment: environment))
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
            let message =
                "stopped by \(stop.reason?.rawValue ?? "the operator") while connecting, before anything was actuated"
            for step in procedure.allSteps {
                record(skipped(step, because: "not run: \(message)"))
            }
            return finish(verdict: .aborted, message: message, cleanupCompleted: false)
        }

        // From here until the safe-state check, the supervisor watches the interlocks apart from the steps.
        let watching = startSupervisor()

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
        if stopReason == .interlock, let trip = state.withLock({ $0.trips.first }) {
            // Not an abort: the rack did something unsafe (FAIL), or the station lost the sensor (ERROR).
            verdict = state.withLock { state in
                state.record.steps.filter { $0.group != .cleanup && $0.verdict != .aborted }.map(\.verdict)
                    .reduce(trip.verdict, Verdict.worst)
            }
            message = trip.summary
        } else if let stopReason {
            let during = state.withLock { state in state.record.steps.first { $0.verdict == .aborted }?.name }
            message =
                "stopped by \(stopReason == .operatorAbort ? "the operator" : stopReason.rawValue)"
                + (during.map { " during '\($0)'" } ?? "")
        }

        let reason =
            switch verdict {
            case .pass: "procedure complete"
            case .aborted: "run stopped"
            default: "procedure ended with \(verdict)"
            }
        // Cleanup returns the rack from what this run did to it. If no step that moves the rack (a `set`, an action,
        // a manual action) ever started, there is nothing to return: an unreachable CDU used to get 35 s of cleanup retries and a
        // "may NOT be in a safe state" though nothing had been written to it.
        // A write or action counts once it was journaled as sent (a hazardous step refused before it wrote moved
        // nothing); a prompt that has the operator change the rack by hand (`manual_action`) moves it as surely.
        let byHand = Set((procedure.setup + procedure.main).filter { $0.manualAction != nil }.map(\.id))
        let actuated = state.withLock { state in
            !state.actuated.isEmpty || !state.trips.isEmpty
                || state.record.steps.contains {
                    $0.group != .cleanup && byHand.contains($0.id) && $0.verdict != .skipped
                }
        }
        guard actuated || procedure.cleanup.isEmpty else {
            emit(.groupStarted(.cleanup, stepCount: procedure.cleanup.count))
            for step in procedure.cleanup {
                record(skipped(step, because: "not needed: nothing was actuated"))
            }
            return await finishSafely(
                verdict: verdict, message: message, cleanupCompleted: true, watching: watching)
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
            let failed = state.withLock { state in
                state.record.steps.first { $0.group == .cleanup && $0.verdict != .pass }
            }
            message = "cleanup did not complete: " + (failed.map(Self.summary) ?? "")
        } else if !cleanupCompleted {
            message = (message.map { "\($0); " } ?? "") + "cleanup did not complete"
        }
        return await finishSafely(
            verdict: verdict, message: message, cleanupCompleted: cleanupCompleted, watching: watching)
    }

    /// Ends a run that connected its devices: the safe-state check (the supervisor still watching), then the
    /// supervisor stopped, trips found during cleanup counted, and the record written.
    func finishSafely(
        verdict: Verdict, message: String?, cleanupCompleted: Bool, watching: (Supervisor, Task<Void, Never>)?
    ) async -> RunRecord {
        var verdict = verdict
        var message = message
        let safe = await checkSafeState()
        if let (_, task) = watching {
            task.cancel()
            await task.value
        }
        // A trip while cleanup ran (the steps had already stopped) still decides the verdict.
        let trips = state.withLock { $0.trips }
        if let trip = trips.first, message?.contains(trip.summary) != true {
            if verdict == .pass || verdict == .aborted && trip.verdict == .fail { verdict = trip.verdict }
            message = (message.map { "\($0); " } ?? "") + trip.summary
        }
        if !safe.verified {
            verdict = Verdict.worst(verdict, .error)
            message = (message.map { "\($0); " } ?? "") + safe.summary
        }
        state.withLock { state in
            state.record.safeState = safe
        }
        let interlocks = interlockRecords(watching?.0)
        state.withLock { $0.record.interlocks = interlocks }
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
                        for remaining in settings.procedure.main {
                            record(skipped(remaining, because: "not run: the run was stopped"))
                        }
                    }
                    return stop.reason ?? .interrupt
                }
                let result = await runStep(step)
                // SKIPPED here is a step its skip_if/only_if ruled out: the run goes on.
                if result.verdict != .pass, result.verdict != .skipped {
                    let reason = result.verdict == .aborted ? (stop.reason ?? .operatorAbort) : nil
                    for remaining in steps[(index + 1)...] {
                        record(
                            skipped(
                                remaining, because: "skipped after \(step.id) (\(step.name)) ended \(result.verdict)"))
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
        StepRecord(
            id: step.id, group: step.group, number: step.number, name: step.name, kind: step.kind.keyword,
            verdict: .skipped, measurements: [], message: message, source: step.location.description)
    }

    func record(_ stepRecord: StepRecord) {
        state.withLock { $0.record.steps.append(stepRecord) }
    }

    /// - Parameter adjust: last changes to the record before it is written (recovery sets when the run ended).
    func finish(
        verdict: Verdict, message: String?, cleanupCompleted: Bool, adjust: (inout RunRecord) -> Void = { _ in }
    ) -> RunRecord {
        stop.finish()
        if state.withLock({ $0.record.interlocks == nil }) {
            let interlocks = interlockRecords(nil)
            state.withLock { $0.record.interlocks = interlocks }
        }
        takeTransportEvents()
        var record = state.withLock { state -> RunRecord in
            if !state.retries.isEmpty { state.record.retries = (state.record.retries ?? []) + state.retries }
            state.retries.removeAll()
            let now = clock.now()
            state.record.ended = Timestamp.string(clock.date(at: now))
            state.record.clock.elapsedSeconds = (now - clockStart).seconds
            state.record.clock.wallSeconds = (ContinuousClock.now - wallStart).seconds
            state.record.verdict = verdict
            state.record.message = message
            state.record.cleanupCompleted = cleanupCompleted
            state.record.inputs = state.environment.compactMapValues { value in
                if case let .text(text) = value { return text }
                return nil
            }
            if let serial = state.record.inputs["rack_serial"] { state.record.rackSerial = serial }
            adjust(&state.record)
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

    /// Runs one step, turning every outcome, including errors and cancellation, into a recorded verdict.
    @discardableResult
    func runStep(_ step: Step) async -> StepRecord {
        // Shared equipment first (a line's one gauge): the step starts, and its time runs, once it has it. A stop
        // while waiting ends the step ABORTED before it started.
        var release: (@Sendable () -> Void)?
        var waited: String?
        if let gate = settings.gate {
            do {
                (release, waited) = try await gate.enter(step, of: settings.procedure) { what in
                    self.emit(.notice("\(step.name): waiting for \(what)"))
                }
            } catch {
                emit(.stepStarted(step))
                var stopped = skipped(step, because: "stopped while waiting for shared equipment")
                stopped.verdict = .aborted
                let now = clock.now()
                stopped.started = stamp(now)
                return finishStep(step, stopped, started: now, wallStarted: ContinuousClock.now, heldStart: nil)
            }
        }
        // Released once the step has ended and said so (after the return value below is made).
        defer { release?() }
        // A step that only reads, at one instant, journals its start together with its end (one write): a crash
        // in between loses nothing. Steps that move the rack or take time journal their start at once.
        var heldStart: HeldEvent?
        let startedEvent = RunEvent.stepStarted(step)
        switch step.kind {
        // (A retried step journals its start at once: its failed attempts are journaled before it ends.)
        case .check where step.retry == nil, .measure where step.retry == nil:
            observer.handle(startedEvent)
            if folder != nil { heldStart = HeldEvent(step: step, at: StampedReading(clock.now())) }
        default:
            emit(startedEvent)
        }
        let started = heldStart?.at.reading ?? clock.now()
        let wallStarted = ContinuousClock.now
        if !transportEvents.isEmpty { takeTransportEvents() }
        // Retries since the last step (while connecting, or between steps) belong to the run, not to this step.
        state.withLock { state in
            guard !state.retries.isEmpty else { return }
            state.record.retries = (state.record.retries ?? []) + state.retries
            state.retries.removeAll()
        }
        var stepRecord = StepRecord(
            id: step.id, group: step.group, number: step.number, name: step.name,
            kind: step.kind.keyword, verdict: .pass,
            started: stamp(started), measurements: [],
            source: step.source)
        do {
            try Task.checkCancellation()
            if let condition = step.condition, let reason = try await ruledOut(step, by: condition) {
                stepRecord.verdict = .skipped
                stepRecord.message = reason
                return finishStep(step, stepRecord, started: started, wallStarted: wallStarted, heldStart: heldStart)
            }
            stepRecord.waited = waited
            if let hazard = step.hazard { stepRecord.hazard = try await confirmHazard(step, hazard) }
            let result = try await attempts(of: step, into: &stepRecord)
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
            stepRecord.message =
                "stopped by \(stop.reason?.rawValue ?? "the operator") while waiting for \(error.device)"
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
        return finishStep(step, stepRecord, started: started, wallStarted: wallStarted, heldStart: heldStart)
    }

    /// Times a step's record, adds it to the run's record and announces (and journals) its end.
    private func finishStep(
        _ step: Step, _ stepRecord: StepRecord, started: Duration, wallStarted: ContinuousClock.Instant,
        heldStart: HeldEvent?
    ) -> StepRecord {
        var stepRecord = stepRecord
        var heldStart = heldStart
        if !transportEvents.isEmpty { takeTransportEvents(after: &heldStart) }
        let ended = clock.now()
        stepRecord.ended = stamp(ended)
        stepRecord.durationSeconds = (ended - started).seconds
        stepRecord.wallSeconds = (ContinuousClock.now - wallStarted).seconds
        // One lock for the end of a step: the step's retries go on it, and it joins the record. A journal that
        // cannot be written does not change the step: it is judged by what the devices did (a cleanup step that
        // reopened the valve did reopen it); the run's record says the journal is incomplete.
        state.withLock { state in
            if !state.retries.isEmpty {
                stepRecord.retries = state.retries
                state.retries.removeAll()
            }
            state.record.steps.append(stepRecord)
        }
        heldStart?.at.stamp = stepRecord.started
        emit(.stepFinished(step, stepRecord), at: StampedReading(ended, stamp: stepRecord.ended), after: heldStart)
        if let journal = folder?.journal {
            do { try journal.syncIfDue() } catch { noteJournalFailure(error) }
        }
        return stepRecord
    }
}
