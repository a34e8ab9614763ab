import Foundation
import Synchronization

public enum ClockKind: String, Sendable, Codable {
    /// Real time: a station wired to a real rack.
    case wall
    /// Simulated time: waits advance the clock instead of passing.
    case simulated
}

/// A reading of a run's clock: the time since the clock's origin (the start of the run or the simulation).
public struct RunInstant: InstantProtocol, Sendable, Hashable {
    public var sinceOrigin: Duration

    public init(sinceOrigin: Duration) {
        self.sinceOrigin = sinceOrigin
    }

    public func advanced(by duration: Duration) -> RunInstant { RunInstant(sinceOrigin: sinceOrigin + duration) }
    public func duration(to other: RunInstant) -> Duration { other.sinceOrigin - sinceOrigin }
    public static func < (lhs: RunInstant, rhs: RunInstant) -> Bool { lhs.sinceOrigin < rhs.sinceOrigin }
}

/// The time source shared by the runner and the simulator: a Swift `Clock` whose instants count from its origin.
///
/// Every wait, poll and sample goes through it, never through `Task.sleep`, so a simulated rack runs a 10-minute
/// hold in milliseconds and tests control time exactly. Code written against `Clock` (`sleep(for:)`, `measure`)
/// works with it as it is.
public protocol RunClock: Clock where Instant == RunInstant {
    var kind: ClockKind { get }
    /// The calendar date at the origin. A simulated clock starts at the real start time and runs on from there.
    var originDate: Date { get }
    /// Clock seconds per wall second when it runs faster or slower than real time; nil for real time, or for
    /// simulated time that runs as fast as it can.
    var timeScale: Double? { get }
    /// An observer's sleep (the safety supervisor's polls): returns when the clock reaches `deadline`. On a simulated
    /// clock an observer never moves time itself, and time does not pass its deadline until it has woken and done its
    /// work (until its next `observe` or `endObserving`), so a poll due at 3:00 reads the rack at 3:00 however fast
    /// the steps make time run. On real time it is an ordinary sleep.
    func observe(until deadline: Duration, as observer: ClockObserver) async throws
    /// The observer is at work from now on (before its task has even started): time waits for its first `observe`.
    func beginObserving(_ observer: ClockObserver)
    /// The observer is done: time no longer waits for it.
    func endObserving(_ observer: ClockObserver)
}

/// Who is observing a clock (one per interlock).
public struct ClockObserver: Hashable, Sendable {
    let id: Int
    /// The observer the current task works for: time waits for every observer at work except one whose own work is
    /// sleeping on the clock (a read of a simulated device that takes time to answer must not wait for itself).
    @TaskLocal public static var current: ClockObserver?
    private static let counter = Atomic<Int>(0)

    public init() {
        id = Self.counter.add(1, ordering: .relaxed).newValue
    }
}

extension RunClock {
    public var minimumResolution: Duration { .nanoseconds(1) }

    public func observe(until deadline: Duration, as observer: ClockObserver) async throws {
        try await sleep(until: deadline)
    }

    public func beginObserving(_ observer: ClockObserver) {}

    public func endObserving(_ observer: ClockObserver) {}

    /// Time elapsed since the clock's origin.
    public func now() -> Duration { now.sinceOrigin }

    /// Returns when the clock has reached `deadline` (time since origin); throws `CancellationError` if the task is
    /// cancelled first.
    public func sleep(until deadline: Duration) async throws {
        try await sleep(until: RunInstant(sinceOrigin: deadline), tolerance: nil)
    }

    /// The calendar date of a clock reading.
    public func date(at reading: Duration) -> Date {
        originDate.addingTimeInterval(reading.seconds)
    }
}

extension Duration {
    /// The duration in seconds as a floating-point number.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }

    /// A duration from seconds, saturating at about ±292 years instead of trapping on huge or invalid values.
    public static func seconds(_ value: Double) -> Duration {
        guard value.isFinite else { return value > 0 ? .seconds(Int64.max / 1_000_000_000) : .zero }
        return exactly(seconds: max(min(value, 9e9), -9e9)) ?? .zero
    }

    /// A duration from seconds, or nil if it is not finite or beyond about ±285 years.
    public static func exactly(seconds: Double) -> Duration? {
        guard seconds.isFinite, abs(seconds) <= 9e9 else { return nil }
        return .nanoseconds(Int64((seconds * 1e9).rounded()))
    }
}

/// Real time, from the monotonic clock; optionally sped up (`timeScale` seconds per wall second) to run against a
/// simulator that runs its physics at the same pace.
public struct WallClock: RunClock {
    public let originDate: Date
    /// Clock seconds per wall second (1: real time).
    public let scale: Double
    private let origin: ContinuousClock.Instant

    public init(timeScale: Double = 1) {
        originDate = Date()
        origin = ContinuousClock.now
        scale = timeScale.isFinite && timeScale > 0 ? timeScale : 1
    }

    /// Real time is `wall`; anything sped up is simulated time, and the record says so.
    public var kind: ClockKind { scale == 1 ? .wall : .simulated }

    public var timeScale: Double? { scale == 1 ? nil : scale }

    public var now: RunInstant { RunInstant(sinceOrigin: (ContinuousClock.now - origin) * scale) }

    public func sleep(until deadline: RunInstant, tolerance: Duration? = nil) async throws {
        let wait = (deadline.sinceOrigin - now()).seconds / scale
        if wait > 0 { try await ContinuousClock().sleep(for: .seconds(wait)) } else { try Task.checkCancellation() }
    }
}

/// Simulated time. A sleep advances the clock to its deadline at once, or, with a time scale, at that many
/// simulated seconds per wall second (so a person or a test can watch and interrupt a run).
///
/// Concurrent sleepers each move the clock to their own deadline and never backwards, so tasks that sleep in
/// parallel from the same reading wake together.
public final class SimulationClock: RunClock {
    public let kind = ClockKind.simulated
    public let originDate: Date
    /// Simulated seconds per wall second; nil for as fast as possible.
    public let timeScale: Double?
    /// The reading, in whole nanoseconds (a deadline between two is rounded up, so a sleeper always wakes at or
    /// after it). Atomic: the runner reads the clock several times a step.
    private let current = Atomic<Int64>(0)

    /// Real time, for pacing: how long a paced sleep waits between steps of the simulated clock.
    private let pacer: Pacer

    /// - Parameter pacer: the real-time clock paced sleeps wait on (tests pass a manual one).
    public init(originDate: Date = Date(), timeScale: Double? = nil, pacer: some Clock<Duration> = ContinuousClock()) {
        self.pacer = Pacer(pacer)
        self.originDate = originDate
        self.timeScale = timeScale.flatMap { $0 > 0 && $0.isFinite ? $0 : nil }
    }

    public var now: RunInstant { RunInstant(sinceOrigin: .nanoseconds(current.load(ordering: .acquiring))) }

    /// Moves time forward without waiting (for tests and for the simulator's own scheduling); never backwards.
    public func advance(to reading: Duration) {
        let target = Self.nanosecondsRoundedUp(reading)
        var seen = current.load(ordering: .relaxed)
        while seen < target {
            let (exchanged, original) = current.compareExchange(
                expected: seen, desired: target, ordering: .acquiringAndReleasing)
            if exchanged { return }
            seen = original
        }
    }

    /// A duration in whole nanoseconds, rounded up, saturating at about ±292 years.
    static func nanosecondsRoundedUp(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let limit = Int64.max / 1_000_000_000 - 1
        guard seconds < limit else { return Int64.max }
        guard seconds > -limit else { return Int64.min }
        let (whole, fraction) = attoseconds.quotientAndRemainder(dividingBy: 1_000_000_000)
        return seconds * 1_000_000_000 + whole + (fraction > 0 ? 1 : 0)
    }

    public func sleep(until instant: RunInstant, tolerance: Duration? = nil) async throws {
        let deadline = instant.sinceOrigin
        try Task.checkCancellation()
        guard let timeScale else {
            try await advanceWakingObservers(to: deadline)
            return
        }
        // Paced: advance in small wall-clock slices so progress is visible and cancellation is prompt. Each sleeper
        // moves the clock to where wall time since its own start says it should be, never past its deadline, so
        // many concurrent sleepers (a for_each step's members) advance it at the paced rate, not many times faster.
        let startWall = pacer.now()
        let startReading = now()
        while true {
            let remaining = (deadline - now()).seconds
            guard remaining > 0 else { return }
            let sliceSeconds = min(remaining / timeScale, 0.05)
            guard sliceSeconds >= 1e-6 else {
                try await advanceWakingObservers(to: deadline)
                return
            }
            try await pacer.sleep(.seconds(sliceSeconds))
            try await advanceWakingObservers(
                to: min(startReading + .seconds((pacer.now() - startWall).seconds * timeScale), deadline))
        }
    }

    // MARK: Observers

    typealias Waiter = CheckedContinuation<Void, any Error>

    /// Observers waiting for their deadline, observers at work, and sleepers waiting for observers to finish.
    struct Observers {
        var parked: [ClockObserver: (deadline: Int64, continuation: Waiter)] = [:]
        var busy: Set<ClockObserver> = []
        /// Observers at work whose work is itself sleeping on the clock.
        var sleeping: Set<ClockObserver> = []
        var waiters: [Int: (observers: Set<ClockObserver>, continuation: Waiter)] = [:]
        var nextWaiter = 0

        /// Sleepers whose observers are all done now, removed.
        mutating func releasedWaiters() -> [Waiter] {
            let done = waiters.filter { $0.value.observers.isDisjoint(with: busy) }
            for key in done.keys { waiters.removeValue(forKey: key) }
            return done.map(\.value.continuation)
        }
    }

    private let observers = Mutex(Observers())

    /// How long (real time) a sleeper waits for observers at work before going on without them. Observers read
    /// devices: in memory that takes microseconds, over loopback milliseconds. The bound matters when an observer's
    /// read waits on the very sleeper that would wait for it (a device both use, answering after a simulated delay):
    /// time then goes on rather than stopping.
    static let observerGrace = Duration.milliseconds(250)

    /// Moves the clock to `deadline`, stopping at each observer's deadline on the way to let it do its work.
    func advanceWakingObservers(to deadline: Duration) async throws {
        let target = Self.nanosecondsRoundedUp(deadline)
        let me = ClockObserver.current
        // An observer whose own work sleeps (a read of a slow simulated device) is waiting on time, not working:
        // time must not wait for it meanwhile (two such observers would wait for each other).
        if let me {
            let released = observers.withLock { state -> [Waiter] in
                guard state.busy.remove(me) != nil else { return [] }
                state.sleeping.insert(me)
                return state.releasedWaiters()
            }
            for waiter in released { waiter.resume() }
        }
        defer {
            if let me {
                observers.withLock { state in
                    if state.sleeping.remove(me) != nil { state.busy.insert(me) }
                }
            }
        }
        // Observers that did not finish within the grace period: this sleeper goes on without them.
        var late = Set<ClockObserver>()
        while true {
            try Task.checkCancellation()
            let step = observers.withLock { state -> (woken: [Waiter], waitFor: Set<ClockObserver>) in
                // Observers still at work (woken earlier, reading): time waits for them before it moves on.
                let atWork = state.busy.subtracting(late)
                if !atWork.isEmpty, current.load(ordering: .acquiring) < target { return ([], atWork) }
                guard let next = state.parked.values.map(\.deadline).min(), next <= target else {
                    advance(to: .nanoseconds(target))
                    return ([], [])
                }
                advance(to: .nanoseconds(next))
                let reached = current.load(ordering: .acquiring)
                let due = state.parked.filter { $0.value.deadline <= reached }
                for observer in due.keys {
                    state.parked.removeValue(forKey: observer)
                    state.busy.insert(observer)
                }
                return (due.values.map(\.continuation), Set(due.keys))
            }
            for continuation in step.woken { continuation.resume() }
            if step.waitFor.isEmpty { return }
            late.formUnion(try await waitForObservers(step.waitFor))
        }
    }

    /// Returns once none of `watched` is at work (each has parked again or ended), or after `observerGrace` with
    /// those still at work.
    private func waitForObservers(_ watched: Set<ClockObserver>) async throws -> Set<ClockObserver> {
        let id = observers.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let timedOut = try await withThrowingTaskGroup(of: Bool.self) { group -> Bool in
            group.addTask {
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { (continuation: Waiter) in
                        let ready = self.observers.withLock { state -> Bool in
                            if watched.isDisjoint(with: state.busy) || Task.isCancelled { return true }
                            state.waiters[id] = (watched, continuation)
                            return false
                        }
                        if ready { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = self.observers.withLock { state -> Waiter? in
                        state.waiters.removeValue(forKey: id)?.continuation
                    }
                    waiter?.resume(throwing: CancellationError())
                }
                return false
            }
            group.addTask {
                try await self.pacer.sleep(Self.observerGrace)
                return true
            }
            let first: Bool? = try await group.next()
            group.cancelAll()
            return first == true
        }
        try Task.checkCancellation()
        // Only observers still at work when the grace ran out are late (one that finished may have been woken again
        // by another sleeper since).
        guard timedOut else { return [] }
        let stillBusy: Set<ClockObserver> = observers.withLock { state in state.busy.intersection(watched) }
        return stillBusy
    }

    public func observe(until deadline: Duration, as observer: ClockObserver) async throws {
        let target = Self.nanosecondsRoundedUp(deadline)
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Waiter) in
                let outcome = observers.withLock { state -> (released: [Waiter], now: Bool) in
                    if Task.isCancelled {
                        state.busy.remove(observer)
                        return (state.releasedWaiters(), true)
                    }
                    if current.load(ordering: .acquiring) >= target {
                        // Already due: it stays at work.
                        state.busy.insert(observer)
                        return ([], true)
                    }
                    state.busy.remove(observer)
                    state.sleeping.remove(observer)
                    state.parked[observer] = (target, continuation)
                    return (state.releasedWaiters(), false)
                }
                for waiter in outcome.released { waiter.resume() }
                if outcome.now {
                    if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                    } else {
                        continuation.resume()
                    }
                }
            }
        } onCancel: {
            let parked = observers.withLock { state -> Waiter? in
                state.parked.removeValue(forKey: observer)?.continuation
            }
            parked?.resume(throwing: CancellationError())
        }
    }

    public func beginObserving(_ observer: ClockObserver) {
        observers.withLock { _ = $0.busy.insert(observer) }
    }

    public func endObserving(_ observer: ClockObserver) {
        let (parked, released) = observers.withLock { state -> (Waiter?, [Waiter]) in
            let parked = state.parked.removeValue(forKey: observer)?.continuation
            state.busy.remove(observer)
            state.sleeping.remove(observer)
            return (parked, state.releasedWaiters())
        }
        parked?.resume(throwing: CancellationError())
        for waiter in released { waiter.resume() }
    }
}

/// Any `Clock` of durations, as the simulation clock paces itself on it: elapsed time since it was made, and sleeps.
struct Pacer: Sendable {
    let now: @Sendable () -> Duration
    let sleep: @Sendable (Duration) async throws -> Void

    init<C: Clock<Duration>>(_ clock: C) {
        let start = clock.now
        now = { start.duration(to: clock.now) }
        sleep = { try await clock.sleep(for: $0) }
    }
}
