import Synchronization

/// At most `limit` bodies at once, the rest waiting their turn in order (no polling, no sleeps).
public final class AsyncGate: Sendable {
    private struct State {
        var free: Int
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>

    public init(limit: Int) { state = Mutex(State(free: limit)) }

    public func withSlot<Result: Sendable>(_ body: () async throws -> Result) async rethrows -> Result {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                guard state.free == 0 else {
                    state.free -= 1
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}

/// Whole racks served on loopback (35 HTTPS BMCs, the CDU over Modbus TCP: a few hundred sockets each) at once in
/// this test process. libmodbus waits with select(), which cannot watch a descriptor numbered 1024 or more; when
/// every suite starts a rack at the same moment, the process passes that, and a CDU connection is refused. Tests
/// that serve a rack take a slot.
public let loopbackRacks = AsyncGate(limit: 3)
