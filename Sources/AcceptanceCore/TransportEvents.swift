import Synchronization

/// Something a transport did that the run's record must show though no step asked for it: a request retried after
/// a timeout, a session logged in again.
public struct TransportEvent: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case retry
        /// Something the device did that the record must show though the run goes on (a session location off the
        /// BMC, a value cut to its bound).
        case warning
    }

    /// The event as the journal and the console show it.
    public var runEvent: RunEvent {
        switch kind {
        case .retry: .retry(device: device, message: message)
        case .warning: .notice("\(device): \(message)")
        }
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

/// The transport events of one run, kept in order until the runner takes them (for the step they happened in, and
/// the console): made before any device is connected and handed to the runner, so no event is lost and no client
/// needs to know the runner. Given the run's journal, it writes each event there the moment it happens, so a crash
/// during a long step loses no retry.
public final class TransportEventLog: TransportEventSink {
    private let pending = Mutex<[TransportEvent]>([])
    /// How many are pending, readable without the lock (the runner asks before every event it emits).
    private let count = Atomic<Int>(0)
    /// Where events are journaled as they happen, and the clock that dates them; nil leaves journaling to the runner.
    private let journal: Journal?
    private let clock: (any RunClock)?

    public init(journal: Journal? = nil, clock: (any RunClock)? = nil) {
        self.journal = journal
        self.clock = clock
    }

    /// Whether this log writes its events to the journal itself.
    public var journalsEvents: Bool { journal != nil }

    public func record(_ event: TransportEvent) {
        pending.withLock { pending in
            pending.append(event)
            count.store(pending.count, ordering: .releasing)
        }
        guard let journal else { return }
        let reading = clock?.now() ?? .zero
        let time = clock.map { Timestamp.string($0.date(at: reading)) }
        // A journal that cannot be written is the runner's to report, at its next write.
        try? journal.append(count: 1) { _, line in
            line.add("time", time)
            line.add("clock_s", reading.seconds)
            event.runEvent.describe(into: &line)
        }
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
