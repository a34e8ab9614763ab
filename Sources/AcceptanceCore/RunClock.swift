import Foundation
import Synchronization

public enum ClockKind: String, Sendable, Codable {
    /// Real time: a station wired to a real rack.
    case wall
    /// Simulated time: waits advance the clock instead of passing.
    case simulated
}

/// The time source shared by the runner and the simulator.
///
/// Every wait, poll and sample goes through it, never through `Task.sleep`, so a simulated rack runs a 10-minute
/// hold in milliseconds and tests control time exactly.
public protocol RunClock: Sendable {
    var kind: ClockKind { get }
    /// Time elapsed since the clock's origin.
    func now() -> Duration
    /// The calendar date at the origin. A simulated clock starts at the real start time and runs on from there.
    var originDate: Date { get }
    /// Returns when `now()` has reached `deadline`; throws `CancellationError` if the task is cancelled first.
    func sleep(until deadline: Duration) async throws
}

extension RunClock {
    public func sleep(for duration: Duration) async throws {
        try await sleep(until: now() + duration)
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
    public let timeScale: Double
    private let origin: ContinuousClock.Instant

    public init(timeScale: Double = 1) {
        originDate = Date()
        origin = ContinuousClock.now
        self.timeScale = timeScale.isFinite && timeScale > 0 ? timeScale : 1
    }

    /// Real time is `wall`; anything sped up is simulated time, and the record says so.
    public var kind: ClockKind { timeScale == 1 ? .wall : .simulated }

    public func now() -> Duration { (ContinuousClock.now - origin) * timeScale }

    public func sleep(until deadline: Duration) async throws {
        let wait = (deadline - now()).seconds / timeScale
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
    private let current: Mutex<Duration>

    public init(originDate: Date = Date(), timeScale: Double? = nil) {
        self.originDate = originDate
        self.timeScale = timeScale.flatMap { $0 > 0 && $0.isFinite ? $0 : nil }
        current = Mutex(.zero)
    }

    public func now() -> Duration { current.withLock { $0 } }

    /// Moves time forward without waiting (for tests and for the simulator's own scheduling).
    public func advance(to reading: Duration) {
        current.withLock { $0 = max($0, reading) }
    }

    public func sleep(until deadline: Duration) async throws {
        try Task.checkCancellation()
        guard let timeScale else {
            advance(to: deadline)
            return
        }
        // Paced: advance in small wall-clock slices so progress is visible and cancellation is prompt. Each sleeper
        // moves the clock to where wall time since its own start says it should be, never past its deadline, so
        // many concurrent sleepers (a for_each step's members) advance it at the paced rate, not many times faster.
        let wall = ContinuousClock()
        let startWall = wall.now
        let startReading = now()
        while true {
            let remaining = (deadline - now()).seconds
            guard remaining > 0 else { return }
            let sliceSeconds = min(remaining / timeScale, 0.05)
            guard sliceSeconds >= 1e-6 else {
                advance(to: deadline)
                return
            }
            try await wall.sleep(for: .seconds(sliceSeconds))
            let target = min(startReading + .seconds((wall.now - startWall).seconds * timeScale), deadline)
            current.withLock { $0 = max($0, target) }
        }
    }
}
