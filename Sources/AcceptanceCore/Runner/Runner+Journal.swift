import Foundation

/// The runner's journal: every event to the observer and, one line each, to `journal.jsonl` as it happens (the
/// line format is beside the events, in `RunEvent.describe(into:)`).
extension Runner {
    /// Sends an event to the observer and appends it to the journal, after a `held` event (one that happened
    /// earlier, at its own clock reading) if any, in one write. Sequence numbers are given as the lines are
    /// written, so the journal's order is always theirs.
    func emit(_ event: RunEvent, after held: (event: RunEvent, at: Duration)? = nil) {
        if !transportEvents.isEmpty { takeTransportEvents() }
        observer.handle(event)
        // Progress is for the live console line; the journal has the samples and results themselves.
        if case .progress = event { return }
        guard let journal = folder?.journal else { return }
        do {
            if let held {
                try journal.append([journalLine(held.event, at: held.at), journalLine(event)])
            } else {
                try journal.append([journalLine(event)])
            }
        } catch {
            state.withLock { if $0.journalFailure == nil { $0.journalFailure = error } }
        }
    }

    func journalLine(_ event: RunEvent, at now: Duration? = nil) -> JSONLine {
        let now = now ?? clock.now()
        var line = JSONLine()
        let sequence = state.withLock { state -> Int in
            state.sequence += 1
            return state.sequence
        }
        line.add("seq", sequence)
        line.add("time", Timestamp.string(clock.date(at: now)))
        line.add("clock_s", now.seconds)
        event.describe(into: &line)
        return line
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
}
