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
}

extension RunClock {
    public var minimumResolution: Duration { .nanoseconds(1) }

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
            advance(to: deadline)
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
                advance(to: deadline)
                return
            }
            try await pacer.sleep(.seconds(sliceSeconds))
            advance(to: min(startReading + .seconds((pacer.now() - startWall).seconds * timeScale), deadline))
        }
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
