import Foundation
import Synchronization

// Devices that misbehave on purpose, on loopback, for the hostile-input tests (issue 10): a Modbus TCP device and an
// HTTP server (a BMC) that answer through raw sockets, so a test can script any byte they send and when.

/// A value shared between threads, behind a lock.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    public init(_ value: Value) { mutex = Mutex(value) }
    public func withLock<T>(_ body: (inout sending Value) throws -> sending T) rethrows -> sending T {
        try mutex.withLock(body)
    }
}

/// A TCP listener on 127.0.0.1 that hands each connection to `serve` on a thread of its own (blocking sockets).
/// `stop()` closes the listener and every connection, which ends any `serve` blocked on them.
public final class RawTCPServer: Sendable {
    public let port: Int
    private let listener: Int32
    private let state = Locked<(stopped: Bool, connections: [Int32], listenerClosed: Bool)>((false, [], false))

    public init(serve: @escaping @Sendable (RawConnection) -> Void) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PeerMissing(description: "socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw PeerMissing(description: "bind/listen: \(String(cString: strerror(errno)))")
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        listener = fd
        let state = self.state
        // Every descriptor is closed by the thread that uses it, once it is done: `stop()` only shuts sockets down
        // (which wakes those threads). Closing from `stop()` let a number be reused while a thread still wrote to it,
        // and one test's device answered another test's client.
        Thread.detachNewThread {
            defer {
                state.withLock { state in
                    state.listenerClosed = true
                    close(fd)
                }
            }
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return
                }
                let admitted = state.withLock { state -> Bool in
                    if state.stopped { return false }
                    state.connections.append(client)
                    return true
                }
                guard admitted else {
                    close(client)
                    return
                }
                Thread.detachNewThread {
                    serve(RawConnection(fd: client))
                    state.withLock { state in
                        state.connections.removeAll { $0 == client }
                        close(client)
                    }
                }
            }
        }
    }

    /// Shuts the listener and every open connection down; their threads then close them.
    public func stop() {
        // Under the lock that closing takes, so no descriptor shut down here can have been closed (and its number
        // reused) already.
        let listener = self.listener
        state.withLock { state in
            guard !state.stopped else { return }
            state.stopped = true
            if !state.listenerClosed { shutdown(listener, Int32(SHUT_RDWR)) }
            for connection in state.connections { shutdown(connection, Int32(SHUT_RDWR)) }
        }
    }

    deinit { stop() }
}

/// One accepted connection, for a `RawTCPServer`'s handler.
public struct RawConnection: Sendable {
    public let fd: Int32

    /// Exactly `count` bytes, or nil when the peer closed or `seconds` passed.
    public func read(_ count: Int, seconds: Double = 30) -> [UInt8]? {
        var buffer = [UInt8]()
        let deadline = Date().addingTimeInterval(seconds)
        while buffer.count < count {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remaining = Int32(max(0, deadline.timeIntervalSinceNow) * 1000)
            guard poll(&poller, 1, remaining) > 0 else { return nil }
            var chunk = [UInt8](repeating: 0, count: count - buffer.count)
            let got = recv(fd, &chunk, chunk.count, 0)
            guard got > 0 else { return nil }
            buffer += chunk[..<got]
        }
        return buffer
    }

    /// Reads until `terminator` has been seen (an HTTP header block), at most `limit` bytes.
    public func read(until terminator: [UInt8], limit: Int = 65536, seconds: Double = 30) -> [UInt8]? {
        var buffer = [UInt8]()
        while buffer.count < limit {
            guard let byte = read(1, seconds: seconds) else { return nil }
            buffer += byte
            if buffer.count >= terminator.count, Array(buffer.suffix(terminator.count)) == terminator { return buffer }
        }
        return nil
    }

    /// Sends every byte; false once the peer has gone.
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let result = bytes.withUnsafeBytes {
                send(fd, $0.baseAddress?.advanced(by: sent), bytes.count - sent, Int32(MSG_NOSIGNAL))
            }
            if result < 0, errno == EINTR { continue }
            guard result > 0 else { return false }
            sent += result
        }
        return true
    }

    /// Sends `bytes` one at a time, `interval` apart; stops early (false) when the peer goes away.
    @discardableResult
    public func drip(_ bytes: [UInt8], every interval: Duration) -> Bool {
        for byte in bytes {
            guard write([byte]) else { return false }
            usleep(
                UInt32(interval.components.seconds * 1_000_000 + interval.components.attoseconds / 1_000_000_000_000))
        }
        return true
    }
}

/// A Modbus TCP device that answers reads (each register holds `register(address)`, 0x0102 + its address unless
/// told otherwise; every bit is 0) and writes (echoed), misbehaving as `script` says for each request.
public final class HostileModbusDevice: Sendable {
    /// What the device does with one request.
    public enum Behaviour: Sendable {
        /// Answers correctly.
        case honest
        /// Sends the reply's header with this byte count, then data bytes one at a time, `interval` apart.
        case drip(byteCount: UInt8, interval: Duration)
        /// Sends the correct reply after `transform` has rewritten it (wrong unit, protocol id, length ...).
        case tamper(@Sendable ([UInt8]) -> [UInt8])
        /// Sends the first `count` bytes of the correct reply, then nothing.
        case partial(Int)
        /// Says nothing.
        case silent
    }

    private let server: RawTCPServer
    private let counter: Locked<Int>
    public var port: Int { server.port }
    /// How many requests arrived.
    public var requests: Int { counter.withLock { $0 } }

    public init(
        register: @escaping @Sendable (UInt16) -> UInt16 = { 0x0102 &+ $0 },
        script: @escaping @Sendable (_ index: Int, _ request: [UInt8]) -> Behaviour
    ) throws {
        let counter = Locked(0)
        self.counter = counter
        server = try RawTCPServer { connection in
            while let header = connection.read(7, seconds: 60) {
                let length = Int(header[4]) << 8 | Int(header[5])
                guard length >= 2, length <= 254, let pdu = connection.read(length - 1) else { return }
                let request = header + pdu
                let index = counter.withLock { count -> Int in
                    defer { count += 1 }
                    return count
                }
                let reply = Self.honestReply(to: request, register: register)
                switch script(index, request) {
                case .honest: connection.write(reply)
                case let .drip(byteCount, interval):
                    var head = Array(reply.prefix(9))
                    head[8] = byteCount
                    let total = 3 + Int(byteCount)
                    head[4] = UInt8(total >> 8)
                    head[5] = UInt8(total & 0xFF)
                    guard connection.write(head) else { return }
                    guard connection.drip(Array(repeating: 0x11, count: Int(byteCount)), every: interval) else {
                        return
                    }
                case let .tamper(transform): connection.write(transform(reply))
                case let .partial(count): connection.write(Array(reply.prefix(count)))
                case .silent: break
                }
            }
        }
    }

    /// The reply a correct device gives (MBAP header included).
    public static func honestReply(
        to request: [UInt8], register: (UInt16) -> UInt16 = { 0x0102 &+ $0 }
    ) -> [UInt8] {
        let function = request[7]
        let field = Int(request[10]) << 8 | Int(request[11])
        let address = Int(request[8]) << 8 | Int(request[9])
        var pdu: [UInt8]
        switch function {
        case 0x03, 0x04:
            pdu = [function, UInt8(field * 2)]
            for offset in 0..<field {
                let value = register(UInt16(truncatingIfNeeded: address + offset))
                pdu += [UInt8(value >> 8), UInt8(value & 0xFF)]
            }
        case 0x01, 0x02:
            pdu = [function, UInt8((field + 7) / 8)] + Array(repeating: 0, count: (field + 7) / 8)
        default:
            pdu = Array(request[7..<12])
        }
        let length = pdu.count + 1
        return [request[0], request[1], 0, 0, UInt8(length >> 8), UInt8(length & 0xFF), request[6]] + pdu
    }

    public func stop() { server.stop() }
}

/// An HTTP/1.1 server whose every answer a test writes by hand: a status line, headers and a body it may send slowly,
/// cut short, or with anything in it.
public final class HostileHTTPServer: Sendable {
    /// One answer: the raw header block (without the blank line) and body, and how to send the body.
    public struct Answer: Sendable {
        public var status: String
        public var headers: [(String, String)]
        public var body: [UInt8]
        /// Sends the body one byte per interval after sending the headers at once.
        public var drip: Duration?

        public init(
            status: String = "200 OK", headers: [(String, String)] = [], body: [UInt8] = [], drip: Duration? = nil
        ) {
            self.status = status
            self.headers = headers
            self.body = body
            self.drip = drip
        }

        public static func json(_ text: String, status: String = "200 OK", headers: [(String, String)] = []) -> Answer {
            Answer(status: status, headers: headers + [("Content-Type", "application/json")], body: Array(text.utf8))
        }
    }

    /// One request as it arrived.
    public struct Request: Sendable {
        public let method: String
        public let path: String
        public let headers: [String: String]
    }

    private let server: RawTCPServer
    private let log: Locked<[Request]>
    public var port: Int { server.port }
    public var requests: [Request] { log.withLock { $0 } }

    public init(answer: @escaping @Sendable (Request) -> Answer) throws {
        let log = Locked<[Request]>([])
        self.log = log
        server = try RawTCPServer { connection in
            while let head = connection.read(until: Array("\r\n\r\n".utf8), seconds: 60) {
                let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
                let parts = (lines.first ?? "").split(separator: " ")
                guard parts.count >= 2 else { return }
                var headers: [String: String] = [:]
                for line in lines.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                        .trimmingCharacters(in: .whitespaces)
                }
                if let length = headers["content-length"].flatMap(Int.init), length > 0 {
                    guard connection.read(length) != nil else { return }
                }
                let request = Request(method: String(parts[0]), path: String(parts[1]), headers: headers)
                log.withLock { $0.append(request) }
                let reply = answer(request)
                var text = "HTTP/1.1 \(reply.status)\r\n"
                var headerList = reply.headers
                if !headerList.contains(where: { $0.0.lowercased() == "content-length" }) {
                    headerList.append(("Content-Length", "\(reply.body.count)"))
                }
                for (name, value) in headerList { text += "\(name): \(value)\r\n" }
                text += "\r\n"
                guard connection.write(Array(text.utf8)) else { return }
                if let interval = reply.drip {
                    guard connection.drip(reply.body, every: interval) else { return }
                } else {
                    guard connection.write(reply.body) else { return }
                }
            }
        }
    }

    public func stop() { server.stop() }
}

/// Connects to 127.0.0.1:`port`, sends `bytes` and returns the first `replyLength` bytes answered (nil if the
/// server closed or said nothing within `seconds`): for speaking to a server below any client library.
public func rawExchange(port: Int, _ bytes: [UInt8], replyLength: Int, seconds: Double = 5) -> [UInt8]? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { return nil }
    let connection = RawConnection(fd: fd)
    guard connection.write(bytes) else { return nil }
    return connection.read(replyLength, seconds: seconds)
}

/// A loopback port held bound but not listening: connecting to it is refused, and no other socket (another test's
/// server on port 0) can be given it while this lives. `freePort()` only promises the port was free a moment ago.
public final class ClosedPort: Sendable {
    public let port: Int
    private let fd: Int32

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard fd >= 0, bound == 0 else {
            close(fd)
            throw PeerMissing(description: "cannot hold a closed port")
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }
}
