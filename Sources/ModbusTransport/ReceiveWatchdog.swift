import Foundation
import Synchronization

/// Shuts a socket for reading once `after` has passed on the wall clock, unless disarmed first: the wait for a reply
/// then ends (recv() sees the end of the stream) at the deadline, however the bytes before it trickled in.
///
/// libmodbus gives each select() what is left of the response timeout, but not the time its thread then waits for a
/// CPU: on a busy machine a reply dripped a byte every 120 ms outlived a 1 s timeout fifteen times over (each
/// select() found its byte already there and used up nothing). The connection is then closed and reopened, as after
/// any timeout.
final class ReceiveWatchdog: Sendable {
    private struct State {
        var armed = true
        var fired = false
    }

    private let state = Mutex(State())

    init(socket: Int32, after timeout: Duration) {
        let nanoseconds = Int(min(max(timeout.seconds, 0), 86_400) * 1e9)
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) { [self] in
            state.withLock { state in
                guard state.armed else { return }
                state.armed = false
                state.fired = true
                // While armed the exchange is still receiving, so the socket is open and still this connection's.
                _ = Glibc.shutdown(socket, Int32(SHUT_RD))
            }
        }
    }

    /// Stops it; whether it had already cut the wait off.
    func disarm() -> Bool {
        state.withLock { state in
            state.armed = false
            return state.fired
        }
    }
}
