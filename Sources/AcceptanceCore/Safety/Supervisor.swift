import Foundation
import Synchronization

/// What happened when an interlock tripped: which, why, what it read, when, and what was done about it.
public struct InterlockTrip: Sendable, Codable, Hashable {
    public enum Cause: String, Sendable, Codable, Hashable {
        /// The condition was true: the rack is unsafe (a wet cold plate): FAIL.
        case condition
        /// The points could not be read for longer than the interlock allows: the station has lost the sensor
        /// and cannot say the rack is safe: ERROR.
        case stale
    }

    public struct ActionResult: Sendable, Codable, Hashable {
        public var action: String
        public var succeeded: Bool
        public var error: String?
    }

    public var interlock: String
    public var description: String
    public var condition: String
    public var cause: Cause
    /// When it was found (calendar, and run clock seconds).
    public var at: String
    public var clockSeconds: Double
    /// What it read: `compute07.coldplate_leak = Critical`; for a stale trip, the last error.
    public var readings: [String]
    /// The members or devices that made it trip (`compute07`), for the verdict's message.
    public var culprits: [String]
    public var reaction: [ActionResult]
    /// When the reaction had been done (run clock seconds).
    public var reactedClockSeconds: Double

    public var verdict: Verdict { cause == .condition ? .fail : .error }

    /// One line for the verdict: `interlock 'coldplate-leak' tripped: compute07.coldplate_leak = Critical`.
    public var summary: String {
        switch cause {
        case .condition:
            "interlock '\(interlock)' tripped (\(description))"
                + (culprits.isEmpty ? "" : " at \(culprits.joined(separator: ", "))") + ": "
                + readings.joined(separator: ", ")
        case .stale:
            "interlock '\(interlock)' lost its sensor: " + (readings.first ?? "no reading")
                + "; its reaction was run (ERROR: the station cannot say the rack is sound)"
        }
    }

    enum CodingKeys: String, CodingKey {
        case interlock, description, condition, cause, at, readings, culprits, reaction
        case clockSeconds = "clock_s"
        case reactedClockSeconds = "reacted_clock_s"
    }
}

/// Watches a rack's interlocks apart from the steps: each polled on the run clock at its own rate, on the
/// supervisor's own connections, from the moment the devices are connected until the run's safe-state check. A
/// trip runs the interlock's reaction at once and reports it (the runner stops the steps and cleans up).
public final class Supervisor: Sendable {
    public let interlocks: [Interlock]
    let bus: DeviceBus
    let clock: any RunClock
    let onTrip: @Sendable (InterlockTrip) -> Void
    /// The calendar timestamp of a clock reading, as the run writes them.
    let stamp: @Sendable (Duration) -> String

    struct State {
        /// Clock seconds of every poll, by interlock (for the record's count and for tests).
        var polls: [String: [Double]] = [:]
        var trips: [InterlockTrip] = []
    }

    private let state = Mutex(State())

    public init(
        interlocks: [Interlock], bus: DeviceBus, clock: any RunClock,
        stamp: @escaping @Sendable (Duration) -> String = { Timestamp.string(Date(timeIntervalSince1970: $0.seconds)) },
        onTrip: @escaping @Sendable (InterlockTrip) -> Void
    ) {
        self.interlocks = interlocks
        self.bus = bus
        self.clock = clock
        self.stamp = stamp
        self.onTrip = onTrip
    }

    /// Clock seconds of each poll of an interlock so far.
    public func polls(of interlock: String) -> [Double] { state.withLock { $0.polls[interlock] ?? [] } }

    public var trips: [InterlockTrip] { state.withLock { $0.trips } }

    /// Starts watching every interlock, until the returned task is cancelled. Each interlock's observer is at
    /// work on the clock before this returns, so no step can move simulated time past its first poll.
    public func start() -> Task<Void, Never> {
        let watchers = interlocks.map { interlock in
            let observer = ClockObserver()
            clock.beginObserving(observer)
            return (interlock, observer)
        }
        return Task {
            await withTaskGroup(of: Void.self) { group in
                for (interlock, observer) in watchers {
                    group.addTask {
                        await ClockObserver.$current.withValue(observer) { await self.watch(interlock, as: observer) }
                    }
                }
            }
        }
    }

    /// Polls one interlock until it trips or the task is cancelled.
    func watch(_ interlock: Interlock, as observer: ClockObserver) async {
        defer { clock.endObserving(observer) }
        var next = clock.now()
        var lastGood = clock.now()
        var lastProblem = "no reading yet"
        // A read is cut off at the staleness bound where time passes by itself (real time, or paced simulation). On
        // simulated time that runs as fast as the steps allow, a timer would jump time to its deadline: there the
        // transports' own (simulated) timeouts end a read of a silent device, and staleness is judged after it.
        let timeRuns = clock.kind == .wall || clock.timeScale != nil
        while !Task.isCancelled {
            do {
                try await clock.observe(until: next, as: observer)
            } catch {
                return
            }
            let polled = clock.now()
            state.withLock { $0.polls[interlock.name, default: []].append(polled.seconds) }
            let deadline = lastGood + interlock.staleAfter
            let outcome = await read(interlock, deadline: timeRuns ? deadline : nil)
            if Task.isCancelled { return }
            var good = false
            switch outcome {
            case let .read(values):
                do {
                    let tripped = try interlock.condition.evaluate(values)
                    good = true
                    lastGood = polled
                    if case .bool(true) = tripped {
                        await trip(interlock, cause: .condition, at: polled, values: values, problem: nil)
                        return
                    }
                } catch {
                    // A reading the condition cannot use (a sensor reporting itself failed) is no reading.
                    lastProblem = "a reading it cannot use: \(error.message)"
                }
            case let .failed(problem):
                lastProblem = problem
            }
            if !good, clock.now() - lastGood >= interlock.staleAfter {
                await trip(
                    interlock, cause: .stale, at: clock.now(), values: [:],
                    problem: "no usable reading for \(Quantity.format((clock.now() - lastGood).seconds)) s (allowed "
                        + "\(Quantity.format(interlock.staleAfter.seconds)) s): \(lastProblem)")
                return
            }
            next = max(next + interlock.poll, clock.now())
        }
    }

    enum ReadOutcome {
        case read([String: Value])
        case failed(String)
    }

    /// Reads the interlock's points, or gives up when the clock reaches `deadline` (the staleness bound): a device
    /// that never answers trips the interlock on time, not when its transport gives up.
    func read(_ interlock: Interlock, deadline: Duration?) async -> ReadOutcome {
        let points = interlock.points
        let bus = self.bus
        let clock = self.clock
        guard let deadline else {
            do { return .read(try await bus.read(points)) } catch { return .failed("\(error)") }
        }
        return await withTaskGroup(of: ReadOutcome?.self) { group in
            group.addTask {
                do { return .read(try await bus.read(points)) } catch { return .failed("\(error)") }
            }
            group.addTask {
                do { try await clock.sleep(until: deadline) } catch { return nil }
                return .failed("no answer within the interlock's staleness bound")
            }
            var outcome: ReadOutcome = .failed("cancelled")
            while let next = await group.next() {
                if let next {
                    outcome = next
                    break
                }
            }
            group.cancelAll()
            return outcome
        }
    }

    /// Runs the reaction (every action, each once, whatever the others did), then reports the trip.
    func trip(
        _ interlock: Interlock, cause: InterlockTrip.Cause, at reading: Duration, values: [String: Value],
        problem: String?
    ) async {
        var readings: [String] = []
        var culprits: [String] = []
        if let problem {
            readings = [problem]
        } else {
            for point in interlock.points {
                guard let value = values[point] else { continue }
                readings.append("\(point) = \(value)")
            }
            culprits = Self.culprits(interlock, values)
            // Only the readings that matter when a group is watched: the members that tripped it.
            if !culprits.isEmpty {
                readings = interlock.points.filter { point in culprits.contains { point.hasPrefix("\($0).") } }
                    .compactMap { point in values[point].map { "\(point) = \($0)" } }
            }
        }
        // The reaction runs in its own task: a stop of whoever watches must not cut it short.
        let bus = self.bus
        let results = await Task {
            var results: [InterlockTrip.ActionResult] = []
            for action in interlock.reaction {
                do {
                    try await action.apply(on: bus)
                    results.append(.init(action: action.description, succeeded: true, error: nil))
                } catch {
                    results.append(.init(action: action.description, succeeded: false, error: "\(error)"))
                }
            }
            return results
        }.value
        let trip = InterlockTrip(
            interlock: interlock.name, description: interlock.description, condition: interlock.condition.source,
            cause: cause, at: stamp(reading), clockSeconds: reading.seconds, readings: readings, culprits: culprits,
            reaction: results, reactedClockSeconds: clock.now().seconds)
        state.withLock { $0.trips.append(trip) }
        onTrip(trip)
    }

    /// The devices whose own readings make the condition true on their own (compute07 of 18 trays), when it reads
    /// several devices; empty when it reads one.
    static func culprits(_ interlock: Interlock, _ values: [String: Value]) -> [String] {
        let devices = interlock.devices
        guard devices.count > 1 else { return [] }
        let words = Set(interlock.condition.source.split { !$0.isLetter && !$0.isNumber && $0 != "_" }.map(String.init))
        return devices.filter { device in
            // A device is a culprit when one of its readings is a flag that is true, or a state the condition names
            // (Critical): what made an `any(...)` over a group true.
            interlock.points.filter { $0.hasPrefix("\(device).") }.contains { point in
                guard let value = values[point] else { return false }
                switch value {
                case .bool(true): return true
                case let .text(text): return words.contains(text)
                default: return false
                }
            }
        }
    }
}
