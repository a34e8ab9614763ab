import Foundation

/// The runner's journal: every event to the observer and, one line each, to `journal.jsonl` as it happens (the
/// line format is beside the events, in `RunEvent.describe(into:)`).
extension Runner {
    /// Sends an event to the observer and appends it to the journal, after a `held` event (one that happened
    /// earlier, at its own clock reading) if any, in one write. The journal numbers the lines as it writes them, so
    /// its order is always theirs.
    /// - Parameter at: the clock reading the event happened at, with its timestamp, when the caller has them already
    ///   (a step's end); otherwise the clock is read now.
    func emit(_ event: RunEvent, at reading: StampedReading? = nil, after held: HeldEvent? = nil) {
        if !transportEvents.isEmpty {
            // Rare: retries came in. The held event is journaled before them, and not again.
            var pending = held
            takeTransportEvents(after: &pending)
            write(event, at: reading, after: pending)
        } else {
            write(event, at: reading, after: held)
        }
    }

    private func write(_ event: RunEvent, at reading: StampedReading?, after held: HeldEvent?) {
        observer.handle(event)
        // Progress is for the live console line; the journal has the samples and results themselves.
        if case .progress = event { return }
        guard let journal = folder?.journal else { return }
        let now = reading ?? StampedReading(clock.now())
        do {
            try journal.append(count: held == nil ? 1 : 2) { index, line in
                if let held, index == 0 {
                    describe(.stepStarted(held.step), at: held.at, into: &line)
                } else {
                    describe(event, at: now, into: &line)
                }
            }
        } catch {
            noteJournalFailure(error)
        }
    }

    /// The first time the journal cannot be written: remembered for the record and said once on the console. The run
    /// goes on (the rack is still judged by what its devices did, and cleaned up); only a PASS becomes an ERROR at the
    /// end, since a run whose evidence is incomplete proves nothing.
    func noteJournalFailure(_ error: RecordWriteError) {
        let first = state.withLock { state -> Bool in
            guard state.journalFailure == nil else { return false }
            state.journalFailure = error
            return true
        }
        if first {
            observer.handle(
                .notice(
                    "the journal can no longer be written (\(error)); the run goes on and cleanup still runs, "
                        + "but this run's evidence is incomplete"))
        }
    }

    /// An event's journal line after its sequence number: when (calendar and clock), then the event's own fields.
    func describe(_ event: RunEvent, at reading: StampedReading, into line: inout JSONLine) {
        line.add("time", reading.stamp ?? stamp(reading.reading))
        line.add("clock_s", reading.reading.seconds)
        event.describe(into: &line)
    }

    /// The calendar time of a clock reading as the record and journal write it. Formatted once per millisecond:
    /// steps that take no time (every check on a simulated clock) share one string.
    func stamp(_ reading: Duration) -> String {
        let date = clock.date(at: reading)
        let millisecond = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        if let cached = lastStamp.withLock({ $0.millisecond == millisecond ? $0.text : nil }) { return cached }
        let text = Timestamp.string(date)
        lastStamp.withLock { $0 = FormattedTimestamp(millisecond: millisecond, text: text) }
        return text
    }

    /// Takes what the transports reported since last time: each retry goes to the journal and the console, and on
    /// the running step. Called before every event the runner emits and when a step ends, so a retry is journaled
    /// no later than the next progress tick.
    func takeTransportEvents() {
        var none: HeldEvent?
        takeTransportEvents(after: &none)
    }

    /// `takeTransportEvents`, journaling a held event (a reading step's start) first if there is one, so the journal
    /// keeps the order things happened in. Events the log journaled itself as they happened are only announced.
    func takeTransportEvents(after held: inout HeldEvent?) {
        for event in transportEvents.take() {
            if event.kind == .retry {
                state.withLock { $0.retries.append("\(event.device): \(event.message)") }
            }
            if transportEvents.journalsEvents {
                observer.handle(event.runEvent)
            } else {
                emit(event.runEvent, after: held)
                held = nil
            }
        }
    }

}

/// A reading step's start, journaled later with its own clock reading, together with the step's end. (The step,
/// not a whole event: an event is large, and this is passed along on every trivial step.)
struct HeldEvent: Sendable {
    var step: Step
    var at: StampedReading
}

/// A clock reading, with its calendar timestamp if it has been formatted already.
struct StampedReading: Sendable {
    var reading: Duration
    var stamp: String?

    init(_ reading: Duration, stamp: String? = nil) {
        self.reading = reading
        self.stamp = stamp
    }
}

/// A timestamp and the millisecond it stands for. (A struct, not a tuple: generic code over tuples looks their
/// metadata up at run time, on every step.)
struct FormattedTimestamp: Sendable {
    var millisecond: Int64
    var text: String
}

extension Runner {
    /// Serial numbers (points named `serial`, `serial_number` or `*_serial`) and firmware versions (`*_version`)
    /// read anywhere in the run, by `device.point`.
    static func partsAndFirmware(_ steps: [StepRecord]) -> (parts: [String: String], firmware: [String: String]) {
        var parts: [String: String] = [:]
        var firmware: [String: String] = [:]
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
}
