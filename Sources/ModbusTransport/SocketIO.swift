import Foundation
import ModbusCore
import Synchronization

/// What the libmodbus wrapper needs beside libmodbus: plain socket writes and small helpers. Nothing here touches a
/// libmodbus pointer (those stay in `LibModbus.swift`).
enum SocketIO {
    /// A descriptor libmodbus can wait on with select(): `descriptor` itself if it is numbered below FD_SETSIZE,
    /// else moved to the lowest free number below it, else onto one of the numbers kept in reserve
    /// (`LowDescriptors`), the original closed. Nil, with the original closed, if none is left.
    static func lowDescriptor(_ descriptor: Int32) -> Int32? {
        guard descriptor >= FD_SETSIZE else { return descriptor }
        let low = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
        if low >= 0, low < FD_SETSIZE {
            close(descriptor)
            return low
        }
        if low >= 0 { close(low) }
        let reserved = LowDescriptors.shared.take(descriptor)
        close(descriptor)
        return reserved
    }

    /// Closes a descriptor `lowDescriptor` gave out (a reserved number goes back to the reserve, still held).
    static func closeLow(_ descriptor: Int32) {
        if !LowDescriptors.shared.give(descriptor) { close(descriptor) }
    }

    /// Connects a TCP socket to `host:port` within `timeout` (a non-blocking connect, waited for with poll()), on a
    /// descriptor libmodbus can wait on. libmodbus's own connect waits with select(), which glibc aborts on when the
    /// process has a thousand files open; libmodbus then uses this socket (`modbus_set_socket`). Returns the
    /// descriptor, or the errno.
    static func connectTCP(host: String, port: Int, timeout: Duration) -> Result<Int32, ConnectFailure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &found)
        guard resolved == 0, let first = found else {
            return .failure(ConnectFailure(code: EHOSTUNREACH, message: String(cString: gai_strerror(resolved))))
        }
        defer { freeaddrinfo(first) }
        var failure = ConnectFailure(code: ECONNREFUSED, message: String(cString: strerror(ECONNREFUSED)))
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let address = candidate {
            candidate = address.pointee.ai_next
            let made = socket(address.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard made >= 0, let descriptor = lowDescriptor(made) else {
                failure = ConnectFailure(
                    code: EMFILE, message: "no descriptor below \(FD_SETSIZE) is free for libmodbus")
                continue
            }
            let flags = fcntl(descriptor, F_GETFL)
            _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
            var code: Int32 = 0
            if connect(descriptor, address.pointee.ai_addr, address.pointee.ai_addrlen) != 0 {
                code = errno
                if code == EINPROGRESS {
                    var watched = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                    let milliseconds = Int32(min(max(timeout.seconds * 1000, 1), 3_600_000))
                    let ready = poll(&watched, 1, milliseconds)
                    if ready == 0 {
                        code = ETIMEDOUT
                    } else {
                        var result: Int32 = 0
                        var length = socklen_t(MemoryLayout<Int32>.size)
                        getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &result, &length)
                        code = ready < 0 ? errno : result
                    }
                }
            }
            guard code == 0 else {
                closeLow(descriptor)
                failure = ConnectFailure(code: code, message: String(cString: strerror(code)))
                continue
            }
            _ = fcntl(descriptor, F_SETFL, flags & ~O_NONBLOCK)
            var on: Int32 = 1
            setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
            return .success(descriptor)
        }
        return .failure(failure)
    }

    struct ConnectFailure: Error {
        var code: Int32
        var message: String

        /// The failure as the transaction that needed the connection reports it.
        func error(_ function: ModbusFunction, _ address: UInt16, _ count: Int, _ endpoint: String) -> ModbusError {
            ModbusError(
                .connection(code: code, message: message), function: function, address: address, count: count,
                endpoint: endpoint)
        }
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
        return lowDescriptor(client)
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

/// Descriptor numbers below FD_SETSIZE, held open on /dev/null from the first Modbus connection or server on, for
/// libmodbus when the process has so many files open that no low number is free (a test process serving racks by the
/// dozen; a line station with many bays). A socket is moved onto one with `dup2` (which closes the /dev/null there
/// in the same step); giving it back puts /dev/null on the number again, so no one else can be handed it meanwhile.
final class LowDescriptors: Sendable {
    static let shared = LowDescriptors(count: 64)

    /// Takes the reserve now, while low numbers are free: the first Modbus connection or server does.
    static func reserve() { _ = shared }

    private struct State {
        var free: [Int32] = []
        var lent: Set<Int32> = []
    }

    private let state = Mutex(State())
    private let null: Int32

    init(count: Int) {
        null = open("/dev/null", O_RDWR | O_CLOEXEC)
        var held: [Int32] = []
        // Copies of one open /dev/null, not 64 opens: a process under umockdev's preload (the USB tests) may track
        // only 50 files opened under /dev at once.
        for _ in 0..<count where null >= 0 {
            let descriptor = fcntl(null, F_DUPFD_CLOEXEC, 0)
            guard descriptor >= 0 else { break }
            guard descriptor < FD_SETSIZE else {
                close(descriptor)
                break
            }
            held.append(descriptor)
        }
        state.withLock { $0.free = held }
    }

    /// Puts `descriptor` onto a reserved number (the caller closes the original); nil if none is left.
    func take(_ descriptor: Int32) -> Int32? {
        guard let slot = state.withLock({ $0.free.popLast() }) else { return nil }
        guard dup2(descriptor, slot) == slot, fcntl(slot, F_SETFD, FD_CLOEXEC) == 0 else {
            state.withLock { $0.free.append(slot) }
            return nil
        }
        state.withLock { _ = $0.lent.insert(slot) }
        return slot
    }

    /// Closes a lent number by putting /dev/null back on it; false if it was not lent from here.
    func give(_ descriptor: Int32) -> Bool {
        let lent = state.withLock { $0.lent.remove(descriptor) != nil }
        guard lent else { return false }
        if null >= 0, dup2(null, descriptor) == descriptor, fcntl(descriptor, F_SETFD, FD_CLOEXEC) == 0 {
            state.withLock { $0.free.append(descriptor) }
        } else {
            close(descriptor)
        }
        return true
    }
}
