import AcceptanceCore
import Foundation
import InstrumentCore

/// An instrument on the LAN speaking raw SCPI over TCP (the socket LXI instruments serve on port 5025): one line per
/// message, one line per answer. Blocking socket calls run on the instrument's own thread. After a timeout the
/// connection is closed, so a late answer can never be read as the next one; the next exchange reconnects.
public final class SCPISocketPort: SCPIPort {
    /// The socket; touched only by jobs on `thread`, one at a time.
    final class Confined: @unchecked Sendable {
        var descriptor: Int32 = -1
        var buffer: [UInt8] = []

        func close() {
            if descriptor >= 0 { Glibc.close(descriptor) }
            descriptor = -1
            buffer = []
        }

        deinit { close() }
    }

    public let host: String
    public let port: Int
    let thread: ConnectionThread
    let confined = Confined()

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
        thread = ConnectionThread(name: "scpi \(host):\(port)")
    }

    public var summary: String { "LAN \(host):\(port)" }

    public func transact(_ messages: [SCPIMessage], timeout: Duration) async throws(InstrumentError) -> [String] {
        let (host, port, confined) = (self.host, self.port, self.confined)
        return try await thread.run { () -> Result<[String], InstrumentError> in
            var answers: [String] = []
            for message in messages {
                // A connection kept from earlier may have been closed by the instrument since (an idle timeout, a
                // restart): one fresh connection is tried before the exchange counts as failed.
                // Between exchanges nothing should arrive: a connection with something to read (the instrument
                // closed it, or a late answer) is replaced before the message is sent.
                if confined.descriptor >= 0 {
                    var watched = pollfd(fd: confined.descriptor, events: Int16(POLLIN), revents: 0)
                    if poll(&watched, 1, 0) != 0 { confined.close() }
                }
                for attempt in 1...2 {
                    let reused = confined.descriptor >= 0
                    var sent = false
                    do throws(InstrumentError) {
                        if !reused { confined.descriptor = try Self.connect(host: host, port: port, timeout: timeout) }
                        try Self.send(confined.descriptor, Array((message.text + "\n").utf8), timeout: timeout)
                        sent = true
                        if message.expectsAnswer { answers.append(try Self.line(confined, timeout: timeout)) }
                        break
                    } catch {
                        // Whatever the instrument still sends for this message must not answer the next one.
                        confined.close()
                        // Sent again only if it never left: a command the instrument took is not repeated.
                        if attempt == 1, reused, !sent, error.kind == .gone { continue }
                        return .failure(error.about(message.text))
                    }
                }
            }
            return .success(answers)
        }.get()
    }

    /// A LAN instrument has no USBTMC clear: a new connection starts clean.
    public func clear() async throws(InstrumentError) {
        let confined = self.confined
        await thread.run { confined.close() }
    }

    public func close() async {
        let confined = self.confined
        await thread.run { confined.close() }
    }

    static func milliseconds(_ timeout: Duration) -> Int32 { Int32(min(max(timeout.seconds * 1000, 1), 600_000)) }

    static func connect(host: String, port: Int, timeout: Duration) throws(InstrumentError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &found)
        guard resolved == 0, let first = found else {
            throw InstrumentError(.gone, "cannot resolve \(host): \(String(cString: gai_strerror(resolved)))")
        }
        defer { freeaddrinfo(first) }
        var failure = InstrumentError(.gone, "\(host):\(port) refused the connection")
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let address = candidate {
            candidate = address.pointee.ai_next
            let descriptor = socket(
                address.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard descriptor >= 0 else { continue }
            let flags = fcntl(descriptor, F_GETFL)
            _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
            var code: Int32 = 0
            if Glibc.connect(descriptor, address.pointee.ai_addr, address.pointee.ai_addrlen) != 0 {
                code = errno
                if code == EINPROGRESS {
                    var watched = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                    let ready = poll(&watched, 1, milliseconds(timeout))
                    var result: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &result, &length)
                    code = ready == 0 ? ETIMEDOUT : ready < 0 ? errno : result
                }
            }
            guard code == 0 else {
                Glibc.close(descriptor)
                failure = InstrumentError(
                    code == ETIMEDOUT ? .timeout : .gone,
                    "connecting to \(host):\(port): \(String(cString: strerror(code)))")
                continue
            }
            var on: Int32 = 1
            setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
            return descriptor
        }
        throw failure
    }

    static func send(_ descriptor: Int32, _ bytes: [UInt8], timeout: Duration) throws(InstrumentError) {
        var offset = 0
        while offset < bytes.count {
            var watched = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            guard poll(&watched, 1, milliseconds(timeout)) > 0 else {
                throw InstrumentError(.timeout, "the instrument took no message within \(timeout)")
            }
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw InstrumentError(.gone, "sending: \(String(cString: strerror(errno)))")
            }
            offset += sent
        }
    }

    /// One answer line, without its newline, within `timeout`; at most 1 MiB.
    static func line(_ confined: Confined, timeout: Duration) throws(InstrumentError) -> String {
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let newline = confined.buffer.firstIndex(of: 0x0A) {
                var line = Array(confined.buffer[..<newline])
                confined.buffer.removeFirst(newline + 1)
                if line.last == 0x0D { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            if confined.buffer.count > 1 << 20 {
                throw InstrumentError(.protocolError, "an answer longer than 1 MiB without a newline")
            }
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else {
                throw InstrumentError(.timeout, "no answer within \(timeout); the connection was closed")
            }
            var watched = pollfd(fd: confined.descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&watched, 1, milliseconds(left))
            if ready == 0 { continue }
            let count = chunk.withUnsafeMutableBytes { recv(confined.descriptor, $0.baseAddress, $0.count, 0) }
            if count == 0 { throw InstrumentError(.gone, "the instrument closed the connection") }
            if count < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw InstrumentError(.gone, "reading: \(String(cString: strerror(errno)))")
            }
            confined.buffer += chunk.prefix(count)
        }
    }
}
