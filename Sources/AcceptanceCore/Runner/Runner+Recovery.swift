import Foundation

/// Recovery of a run the station did not finish: the rack driven to its safe state and checked, and the run's
/// record written from its journal, so nothing it measured is lost and QA sees that it stopped.
extension Runner {
    /// The verdict's reason for every recovered run.
    public static let stoppedUnexpectedly = "station stopped unexpectedly"

    /// Drives every device the journal says the run moved (a step's write or action, an interlock's reaction) to
    /// its safe state and reads it back. The runner's folder must be the run's own, reopened: its journal is
    /// appended to.
    public func makeSafe(after replay: JournalReplay) async -> SafeStateRecord {
        state.withLock { state in
            state.actuated = replay.actuated
            state.actuatedOrder = replay.actuatedOrder
            state.trips = replay.trips
        }
        let interrupted = replay.interrupted.map { events in
            settings.procedure.allSteps.first { $0.id == events.id }?.name ?? events.id
        }
        emit(
            .notice(
                "recovering run \(settings.runID): the station stopped"
                    + (interrupted.map { " during '\($0)'" } ?? "")
                    + (replay.lastTime.map { " after \($0)" } ?? "") + "; driving "
                    + (replay.actuatedOrder.isEmpty
                        ? "nothing (nothing was actuated)" : replay.actuatedOrder.joined(separator: ", "))
                    + " to the safe state"))
        return await checkSafeState(driveFirst: true)
    }

    /// Writes the record of a run the station did not finish, from its journal: the steps the journal finished as
    /// they ended, the step it was in as ABORTED (with every sample it took, as its series), the rest SKIPPED;
    /// verdict ABORTED "station stopped unexpectedly" (FAIL if an interlock had found the rack unsafe), with the
    /// safe state `makeSafe` found.
    public func writeRecovered(
        _ replay: JournalReplay, safe: SafeStateRecord, recoveredBy: String?
    ) -> RunRecord {
        let procedure = settings.procedure
        var byID: [String: Step] = [:]
        for step in procedure.allSteps where byID[step.id] == nil { byID[step.id] = step }
        var steps: [StepRecord] = []
        var inputs: [String: String] = [:]
        for events in replay.steps {
            let step = byID[events.id]
            var record =
                events.finished
                ?? StepRecord(
                    id: events.id, group: .main, number: 0, name: "", kind: "", verdict: .aborted,
                    started: events.started, ended: replay.lastTime,
                    message: "\(Self.stoppedUnexpectedly) during this step", source: "")
            if events.finished == nil, let started = events.startedClock {
                record.durationSeconds = max(0, replay.lastClock - started)
            }
            if record.hazard == nil { record.hazard = events.hazard }
            if let step {
                record.group = step.group
                record.number = step.number
                record.name = step.name
                record.kind = step.kind.keyword
                record.source = step.source
                if case let .sample(points, _, _, _, _) = step.kind, !events.samples.isEmpty {
                    record.series = writeSeries(of: step, points: points, samples: events.samples)
                }
                if case let .prompt(_, input?, _) = step.kind, let message = record.message,
                    message.hasPrefix("\(input) = ")
                {
                    inputs[input] = String(message.dropFirst(input.count + 3))
                }
            } else {
                record.name = events.id
                record.message = (record.message.map { "\($0); " } ?? "") + "no longer in \(procedure.file)"
            }
            steps.append(record)
        }
        let journaled = Set(steps.map(\.id))
        for step in procedure.allSteps where !journaled.contains(step.id) {
            steps.append(skipped(step, because: "not run: the \(Self.stoppedUnexpectedly)"))
        }
        state.withLock { state in
            state.record.steps = steps
            if let started = replay.started { state.record.started = started }
            for (name, value) in inputs { state.environment[name] = .text(value) }
            state.trips = replay.trips
        }
        let interrupted = replay.interrupted.map { events in byID[events.id]?.name ?? events.id }

        var verdict = Verdict.aborted
        var message = Self.stoppedUnexpectedly + (interrupted.map { " during '\($0)'" } ?? "")
        if let trip = replay.trips.first {
            if trip.verdict == .fail { verdict = .fail }
            message += "; " + trip.summary
        }
        if !safe.verified { message += "; " + safe.summary }
        let recovery = RecoveryRecord(
            recoveredAt: Timestamp.string(Date()), recoveredBy: recoveredBy,
            lastJournalEvent: replay.lastEvent.map { event in
                event + (replay.lastTime.map { " at \($0)" } ?? "")
            },
            lastCommanded: replay.actuated)
        let interlocks = interlockRecords(nil)
        state.withLock { state in
            state.record.safeState = safe
            state.record.interlocks = interlocks
            state.record.recovery = recovery
            if replay.unreadableLines > 0 {
                state.record.warnings =
                    (state.record.warnings ?? [])
                    + ["\(replay.unreadableLines) journal line(s) could not be read (cut when the station stopped)"]
            }
        }
        let scale = clock.timeScale ?? 1
        return finish(verdict: verdict, message: message, cleanupCompleted: false) { record in
            // The run ended when its journal did; the recovery's own time is in `recovery`.
            if let ended = replay.lastTime { record.ended = ended }
            record.clock.elapsedSeconds = replay.lastClock
            // The run's clock ran at the station's pace: its wall time follows from how far its clock got.
            record.clock.wallSeconds = replay.lastClock / (scale > 0 ? scale : 1)
        }
    }

    /// A sample step's series, as the journal has it, written beside the journal as the step would have.
    private func writeSeries(of step: Step, points: [String], samples: [JournalReplay.Sample]) -> SeriesRecord? {
        let units = points.map { point in samples.lazy.compactMap { $0.units[point] }.first ?? "" }
        let name = SampleStep.seriesFile(of: step)
        do {
            try SampleStep.writeSeries(
                folder, name, points: points, units: units, times: samples.map(\.elapsed),
                columns: points.map { point in samples.map { $0.values[point] ?? .nan } })
        } catch {
            observer.handle(.notice("could not write \(name): \(error)"))
            return nil
        }
        let interval = samples.count > 1 ? samples[1].elapsed - samples[0].elapsed : 0
        return SeriesRecord(
            file: name, points: points, units: units, samples: samples.count, intervalSeconds: interval)
    }
}
