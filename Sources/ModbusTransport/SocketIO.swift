import Foundation
import Synchronization

/// What the libmodbus wrapper needs beside libmodbus: plain socket writes and small helpers. Nothing here touches a
/// libmodbus pointer (those stay in `LibModbus.swift`).
enum SocketIO {
    /// Sends every byte of `frame` on `socket`, retrying after interrupts and short writes; the errno if that failed.
    /// `MSG_NOSIGNAL`: a peer that has gone makes this fail, never raises SIGPIPE.
    static func sendAll(_ frame: [UInt8], on socket: Int32) -> Int32? {
        var sent = 0
        while sent < frame.count {
            let result = frame.withUnsafeBytes { bytes in
                send(socket, bytes.baseAddress?.advanced(by: sent), frame.count - sent, Int32(MSG_NOSIGNAL))
            }
            if result < 0 {
                if errno == EINTR { continue }
                return errno
            }
            sent += result
        }
        return nil
    }

    /// A duration as libmodbus's seconds and microseconds, clamped to what they can hold.
    static func timeoutParts(_ duration: Duration) -> (UInt32, UInt32) {
        let micros = max(0, min(Int64(duration.seconds * 1e6), Int64(UInt32.max) * 1_000_000))
        return (UInt32(micros / 1_000_000), UInt32(micros % 1_000_000))
    }
}

/// A flag that can be set once, from any thread.
final class ManagedAtomicFlag: Sendable {
    private let state = Mutex(false)

    /// Sets the flag; true if this call set it.
    func setOnce() -> Bool {
        state.withLock { isSet in
            defer { isSet = true }
            return !isSet
        }
    }
}
