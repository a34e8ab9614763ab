import Foundation
import Synchronization

/// What the libmodbus wrapper needs beside libmodbus: plain socket writes and small helpers. Nothing here touches a
/// libmodbus pointer (those stay in `LibModbus.swift`).
enum SocketIO {
    /// Whether a new descriptor would be numbered below FD_SETSIZE (libmodbus's select() cannot watch one above; glibc
    /// aborts the process if asked to).
    static var lowDescriptorFree: Bool {
        let probe = open("/dev/null", O_RDONLY | O_CLOEXEC)
        if probe >= 0 { close(probe) }
        return probe < FD_SETSIZE - 1
    }

    /// Moves a descriptor numbered FD_SETSIZE or above to the lowest free number, closing the original. Nil, with the
    /// original closed, if every lower number is in use.
    static func lowDescriptor(_ descriptor: Int32) -> Int32? {
        let low = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
        close(descriptor)
        guard low >= 0 else { return nil }
        guard low < FD_SETSIZE else {
            close(low)
            return nil
        }
        return low
    }

    /// Accepts a client on a server's listener, for libmodbus to serve: nil if refused (too many clients, or no
    /// descriptor low enough for libmodbus's own select()) or if accepting failed (then after a short back-off, so a
    /// listener that stays readable is not spun on).
    static func accept(on listener: Int32, holding clients: Int) -> Int32? {
        let client = Glibc.accept(listener, nil, nil)
        guard client >= 0 else {
            usleep(10_000)
            return nil
        }
        guard clients < 64 else {
            close(client)
            return nil
        }
        return client < FD_SETSIZE ? client : lowDescriptor(client)
    }
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
