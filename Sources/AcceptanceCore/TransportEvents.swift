import Synchronization

/// Something a transport did that the run's record must show though no step asked for it: a request retried after
/// a timeout, a session logged in again.
public struct TransportEvent: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case retry
    }

    public var kind: Kind
    /// The device instance (`cdu`, `compute05`).
    public var device: String
    public var message: String

    public init(_ kind: Kind, device: String, message: String) {
        self.kind = kind
        self.device = device
        self.message = message
    }
}

/// Where transports report their events. Passed down to every client a run connects, made before them.
public protocol TransportEventSink: Sendable {
    func record(_ event: TransportEvent)
}

/// Drops transport events (tools that read a point once, tests that do not look).
public struct DiscardingTransportEvents: TransportEventSink {
    public init() {}
    public func record(_ event: TransportEvent) {}
}

/// The transport events of one run, kept in order until the runner takes them: made before any device is
/// connected and handed to the runner, so no event is lost and no client needs to know the runner.
public final class TransportEventLog: TransportEventSink {
    private let pending = Mutex<[TransportEvent]>([])
    /// How many are pending, readable without the lock (the runner asks before every event it emits).
    private let count = Atomic<Int>(0)
    /// Called for each event as it happens (the runner journals it at once); set when the log is made.
    private let onEvent: (@Sendable (TransportEvent) -> Void)?

    public init(onEvent: (@Sendable (TransportEvent) -> Void)? = nil) {
        self.onEvent = onEvent
    }

    public func record(_ event: TransportEvent) {
        pending.withLock { pending in
            pending.append(event)
            count.store(pending.count, ordering: .releasing)
        }
        onEvent?(event)
    }

    /// The events since the last call, oldest first.
    public func take() -> [TransportEvent] {
        pending.withLock { events in
            defer {
                events.removeAll(keepingCapacity: true)
                count.store(0, ordering: .releasing)
            }
            return events
        }
    }

    /// Whether any event is waiting (an atomic read: no lock, no copy).
    public var isEmpty: Bool { count.load(ordering: .acquiring) == 0 }
}

/// Hands each transport event to a closure (tests, and tools that print retries as they happen).
public struct TransportEventHandler: TransportEventSink {
    let handle: @Sendable (TransportEvent) -> Void

    public init(_ handle: @escaping @Sendable (TransportEvent) -> Void) {
        self.handle = handle
    }

    public func record(_ event: TransportEvent) { handle(event) }
}
