import AcceptanceCore
import CModbus
import Foundation
import ModbusCore
import Synchronization

// The only file that touches libmodbus's pointers. Every `modbus_t` here has one owner that frees it in `deinit`,
// and is used from one thread only: a client's `ConnectionThread`, or the server's own thread.

/// libmodbus's error numbers for protocol faults, above its errno base.
private enum LibModbusErrno {
    static let base = Int32(acceptance_modbus_errno_base)
    static let badCRC = base + 12
    static let tooManyData = base + 16  // EMBMDATA: refused locally, nothing was sent
    static let lastProtocolFault = base + 17  // EMBBADSLAVE
}

/// A `ModbusError` for the call that just failed, from `errno` as it was right after the call.
private func modbusError(
    _ code: Int32, _ function: ModbusFunction, _ address: UInt16, _ count: Int, _ endpoint: String
)
    -> ModbusError
{
    let kind: ModbusError.Kind
    if code == LibModbusErrno.tooManyData {
        kind = .invalidRequest(String(cString: modbus_strerror(code)))
    } else if code > LibModbusErrno.base, code < LibModbusErrno.badCRC {
        kind = .exception(ModbusException(rawValue: UInt8(code - LibModbusErrno.base)))
    } else if code >= LibModbusErrno.badCRC, code <= LibModbusErrno.lastProtocolFault {
        kind = .badResponse(String(cString: modbus_strerror(code)))
    } else if code == ETIMEDOUT {
        kind = .timeout
    } else {
        kind = .connection(code: code, message: String(cString: strerror(code)))
    }
    return ModbusError(kind, function: function, address: address, count: count, endpoint: endpoint)
}

/// One client connection's `modbus_t`: created and configured in `init`, freed in `deinit`.
///
/// `@unchecked Sendable` because it crosses into its `ConnectionThread` once and is then only called there; libmodbus
/// contexts are not thread-safe, and nothing else touches this one.
final class LibModbusConnection: @unchecked Sendable {
    private let context: OpaquePointer
    let endpoint: String
    private var isConnected = false
    /// For TCP: where to connect (the socket is made here, not by libmodbus; see `SocketIO.connectTCP`).
    private let tcp: (host: String, port: Int)?
    private let responseTimeout: Duration

    init(endpoint: ModbusEndpoint, unit: UInt8, settings: ModbusSettings, label: String) throws(ModbusError) {
        LowDescriptors.reserve()
        self.endpoint = label
        let created: OpaquePointer?
        switch endpoint {
        case let .tcp(host, port):
            created = modbus_new_tcp_pi(host, String(port))
        case let .rtu(device, baud, parity, dataBits, stopBits):
            created = modbus_new_rtu(
                device, Int32(baud), CChar(bitPattern: parity.letter), Int32(dataBits), Int32(stopBits))
        }
        guard let created else {
            let code = errno
            throw ModbusError(
                .connection(code: code, message: "cannot set up \(endpoint): \(String(cString: strerror(code)))"),
                function: .readHoldingRegisters, address: 0, count: 0, endpoint: label)
        }
        context = created
        if case let .tcp(host, port) = endpoint { tcp = (host, port) } else { tcp = nil }
        responseTimeout = settings.responseTimeout
        isSerial = { if case .rtu = endpoint { return true } else { return false } }()
        rs485 = isSerial && settings.rs485
        modbus_set_slave(context, Int32(unit))
        self.unit = unit
        let (responseSeconds, responseMicros) = SocketIO.timeoutParts(settings.responseTimeout)
        // No per-byte timeout: the response timeout then bounds the whole reply (libmodbus restarts its select()
        // timer per byte otherwise, so 250 bytes each 450 ms apart took 116 s with a 1 s response timeout).
        guard modbus_set_response_timeout(context, responseSeconds, responseMicros) == 0,
            modbus_set_byte_timeout(context, 0, 0) == 0
        else {
            // Every stored property is set: `deinit` runs and frees the context (freeing it here too would free it
            // twice).
            let code = errno
            throw ModbusError(
                .invalidRequest(
                    "response timeout \(settings.responseTimeout) rejected (errno \(code)); it must be above zero"),
                function: .readHoldingRegisters, address: 0,
                count: 0,
                endpoint: label)
        }
    }

    private let isSerial: Bool
    private let rs485: Bool

    deinit {
        closeSocket()
        modbus_free(context)
    }

    /// Closes the connection: our TCP socket (maybe on a reserved number) ourselves, a serial port through libmodbus.
    private func closeSocket() {
        if tcp != nil {
            let socket = modbus_get_socket(context)
            if socket >= 0 { SocketIO.closeLow(socket) }
            modbus_set_socket(context, -1)
        } else {
            modbus_close(context)
        }
    }

    /// Connects if not connected.
    func connectIfNeeded(for function: ModbusFunction, _ address: UInt16, _ count: Int) throws(ModbusError) {
        guard !isConnected else { return }
        // libmodbus's select() cannot watch descriptor 1024+ (glibc aborts): our socket, on a low number, is handed over.
        if let tcp {
            switch SocketIO.connectTCP(host: tcp.host, port: tcp.port, timeout: responseTimeout) {
            case let .success(socket): modbus_set_socket(context, socket)
            case let .failure(failure): throw failure.error(function, address, count, endpoint)
            }
        } else if modbus_connect(context) != 0 {
            let code = errno
            throw modbusError(code, function, address, count, endpoint)
        }
        // RS-485 mode is an ioctl on the open port, so it can only be set once connected.
        if rs485, modbus_rtu_set_serial_mode(context, MODBUS_RTU_RS485) != 0 {
            let code = errno
            closeSocket()
            throw ModbusError(
                .connection(
                    code: code,
                    message: "cannot switch the adapter to RS-485 mode: "
                        + String(cString: strerror(code))), function: function, address: address, count: count,
                endpoint: endpoint)
        }
        isConnected = true
    }

    /// After a failure that was not a clean exception answer, nothing queued on the line can be trusted: a late reply
    /// must never be read as the answer to the next request. TCP reconnects; a serial line is flushed.
    private func recover(after error: ModbusError) -> ModbusError {
        if case .exception = error.kind { return error }
        if isSerial { modbus_flush(context) } else { disconnect() }
        return error
    }

    /// Addresses the next transactions to `unit` (`modbus_set_slave`), for devices sharing one line.
    func address(_ unit: UInt8) -> Bool {
        guard modbus_set_slave(context, Int32(unit)) == 0 else { return false }
        self.unit = unit
        return true
    }

    /// Closes the connection; the next transaction reconnects.
    func disconnect() {
        closeSocket()
        isConnected = false
    }

    /// The unit the next transactions are addressed to.
    private var unit: UInt8 = 1
    /// The last Modbus TCP transaction id sent on this connection: 0x0100 and up, so the first byte of every reply
    /// is non-zero and a partial reply shows in the zeroed receive buffer.
    private var transaction: UInt16 = 0

    /// Reads `count` registers (bits as 0/1) from `table`.
    func read(_ table: ModbusTable, startingAt address: UInt16, count: Int) throws(ModbusError) -> [UInt16] {
        let request: ModbusRequest
        do { request = try ModbusRequest.read(table, address: address, count: count) } catch {
            var error = error
            error.endpoint = endpoint
            throw error
        }
        guard case let .values(values) = try exchange(request) else {
            throw ModbusError(
                .badResponse("a write confirmation in reply to a read"), function: request.function,
                address: address, count: count, endpoint: endpoint)
        }
        return values
    }

    /// Writes coils or registers: one with 0x05 / 0x06 (which some devices insist on), several with 0x0F / 0x10.
    func write(_ table: ModbusTable, startingAt address: UInt16, values: [UInt16]) throws(ModbusError) {
        let request: ModbusRequest
        do { request = try ModbusRequest.write(table, address: address, values: values) } catch {
            var error = error
            error.endpoint = endpoint
            throw error
        }
        _ = try exchange(request)
    }

    /// One transaction: the request is framed by ModbusCore (TCP: sent on libmodbus's socket, with a transaction id
    /// of our own, because libmodbus 3.1.6 sends raw requests with id 0; RTU: `modbus_send_raw_request`, which adds
    /// the CRC), the reply is read by `modbus_receive_confirmation` and then checked field by field by
    /// `ModbusReply.parse`, which is stricter than libmodbus (it let protocol id 7, another unit's reply and an MBAP
    /// length of 65535 through).
    ///
    /// The byte timeout is disabled, so libmodbus's response timeout bounds the *whole* reply: a device dripping one
    /// byte every 450 ms cannot stretch a transaction past it.
    private func exchange(_ request: ModbusRequest) throws(ModbusError) -> ModbusReply {
        let function = request.function
        let address = request.address
        let count = request.count
        func failure(_ kind: ModbusError.Kind) -> ModbusError {
            ModbusError(kind, function: function, address: address, count: count, endpoint: endpoint)
        }
        try connectIfNeeded(for: function, address, count)
        let framing: ModbusFraming
        if isSerial {
            let raw = [unit] + request.pdu
            if modbus_send_raw_request(context, raw, Int32(raw.count)) < 0 {
                throw recover(after: modbusError(errno, function, address, count, endpoint))
            }
            framing = .rtu
        } else {
            transaction = transaction < 0x0100 || transaction == UInt16.max ? 0x0100 : transaction + 1
            let frame = request.tcpFrame(transaction: transaction, unit: unit)
            if let code = sendAll(frame) {
                throw recover(after: modbusError(code, function, address, count, endpoint))
            }
            framing = .tcp(transaction: transaction)
        }
        var buffer = [UInt8](repeating: 0, count: Self.bufferSize)
        // The response timeout on the wall clock too (TCP): see `ReceiveWatchdog` for why libmodbus's is not enough.
        let watchdog = isSerial ? nil : ReceiveWatchdog(socket: modbus_get_socket(context), after: responseTimeout)
        let length = modbus_receive_confirmation(context, &buffer)
        let code = errno
        let cutOff = watchdog?.disarm() ?? false
        if length < 0 {
            if code == ETIMEDOUT || cutOff {
                // The buffer was zeroed and every reply starts with a non-zero byte (our transaction id's high byte, or
                // the unit): up to the last non-zero byte, this arrived before the deadline (trailing zeros cannot be
                // told from bytes that never came, hence "at least").
                let received = (buffer.lastIndex { $0 != 0 }).map { Array(buffer[...$0]) } ?? []
                throw recover(after: failure(received.isEmpty ? .timeout : .incomplete(received)))
            }
            throw recover(after: modbusError(code, function, address, count, endpoint))
        }
        if length == 0 {
            // libmodbus's RTU backend drops frames from another address without saying which.
            throw recover(
                after: failure(.badResponse("reply from unit \(buffer[0]); the request went to unit \(unit)")))
        }
        let reply: ModbusReply
        do {
            reply = try ModbusReply.parse(
                Array(buffer[..<Int(length)]), framing: framing, unit: unit, request: request)
        } catch {
            throw recover(after: failure(.badResponse(error.message)))
        }
        if case let .exception(exception) = reply { throw failure(.exception(exception)) }
        return reply
    }

    /// Larger than any Modbus frame (260 bytes on TCP, 256 on RTU).
    private static let bufferSize = 512

    /// Sends a whole frame on the connection's TCP socket; the errno if that failed.
    private func sendAll(_ frame: [UInt8]) -> Int32? {
        SocketIO.sendAll(frame, on: modbus_get_socket(context))
    }
}

/// The server's libmodbus state.
///
/// `@unchecked Sendable`: the context, mapping and client sockets are used only by the server thread in `run()`;
/// `requestStop()` only writes a byte to the wake-up pipe; the thread frees nothing (deinit does, once the thread has
/// let go of the loop).
final class ServerLoop: @unchecked Sendable {
    let context: OpaquePointer
    let mapping: UnsafeMutablePointer<modbus_mapping_t>
    let listener: Int32
    let wake: (read: Int32, write: Int32)
    let port: Int
    let backend: any ModbusServerBackend
    let finished = ThreadCompletion()
    let stopping = ManagedAtomicFlag()
    var clients: [Int32] = []

    init(host: String, port: Int, backend: any ModbusServerBackend) throws(ModbusError) {
        LowDescriptors.reserve()
        func fail(_ message: String, _ code: Int32) -> ModbusError {
            ModbusError(
                .connection(code: code, message: "\(message): \(String(cString: strerror(code)))"),
                function: .readHoldingRegisters, address: 0, count: 0, endpoint: "\(host):\(port)")
        }
        guard let context = modbus_new_tcp(host, Int32(port)) else { throw fail("cannot create a server", errno) }
        guard let mapping = modbus_mapping_new(0x10000, 0x10000, 0x10000, 0x10000) else {
            let code = errno
            modbus_free(context)
            throw fail("cannot allocate the register map", code)
        }
        let listener = modbus_tcp_listen(context, 16)
        guard listener >= 0 else {
            let code = errno
            modbus_mapping_free(mapping)
            modbus_free(context)
            throw fail("cannot listen on \(host):\(port)", code)
        }
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else {
            let code = errno
            close(listener)
            modbus_mapping_free(mapping)
            modbus_free(context)
            throw fail("cannot create a pipe", code)
        }
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: address.sin_port))
        self.context = context
        self.mapping = mapping
        self.listener = listener
        self.wake = (pipeEnds[0], pipeEnds[1])
        self.backend = backend
        // A client that sends half a request must not stall everyone else.
        modbus_set_byte_timeout(context, 0, 500_000)
        modbus_set_indication_timeout(context, 1, 0)
    }

    deinit {
        for client in clients { SocketIO.closeLow(client) }
        if !listenerClosed { close(listener) }
        close(wake.read)
        close(wake.write)
        modbus_mapping_free(mapping)
        modbus_free(context)
    }

    /// Set by the server thread once it has closed the listener (so deinit does not close it twice).
    private var listenerClosed = false

    func requestStop() {
        guard stopping.setOnce() else { return }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
    }

    func run() {
        defer {
            // Stopped: refuse new connections at once and drop the current ones, before anyone is told.
            for client in clients { SocketIO.closeLow(client) }
            clients.removeAll()
            close(listener)
            listenerClosed = true
            finished.finish()
        }
        var request = [UInt8](repeating: 0, count: Int(MODBUS_TCP_MAX_ADU_LENGTH))
        while true {
            // poll(), not select(): the listener and the wake pipe may be numbered above FD_SETSIZE in a process with
            // many files open (glibc aborts the process on FD_SET of such a descriptor).
            var watched = ([listener, wake.read] + clients).map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&watched, nfds_t(watched.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            func isReadable(_ index: Int) -> Bool { watched[index].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 }
            if isReadable(1) { return }
            let polled = clients
            if isReadable(0), let client = SocketIO.accept(on: listener, holding: clients.count) {
                clients.append(client)
            }
            for (offset, client) in polled.enumerated() where isReadable(offset + 2) {
                modbus_set_socket(context, client)
                let length = modbus_receive(context, &request)
                if length > 0, answer(request, length: Int(length)) {
                    continue
                }
                if length != 0 {
                    // A read error, or the device dropping the connection on purpose.
                    SocketIO.closeLow(client)
                    clients.removeAll { $0 == client }
                }
            }
        }
    }

    /// Parses the request, asks the backend, and replies with `modbus_reply` or `modbus_reply_exception`.
    /// Returns false if the connection should be closed.
    @discardableResult
    func answer(_ request: [UInt8], length: Int) -> Bool {
        let header = Int(modbus_get_header_length(context))
        guard length >= header + 5 else {
            modbus_reply_exception(context, request, UInt32(MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE))
            return true
        }
        let unit = request[header - 1]
        let function = request[header]
        let address = UInt16(request[header + 1]) << 8 | UInt16(request[header + 2])
        let field = Int(request[header + 3]) << 8 | Int(request[header + 4])
        let outcome: ModbusServerAnswer
        switch function {
        case 0x01, 0x02, 0x03, 0x04:
            let table: ModbusTable =
                [0x01: .coil, 0x02: .discreteInput, 0x03: .holdingRegister][function] ?? .inputRegister
            let limit = table.isBitTable ? 2000 : 125
            guard (1...limit).contains(field), Int(address) + field <= 0x10000 else {
                modbus_reply_exception(context, request, UInt32(MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE))
                return true
            }
            outcome = backend.read(table, startingAt: address, count: field, unit: unit)
            if case let .values(values) = outcome, values.count != field {
                // Never let a stale register map answer for the device.
                modbus_reply_exception(context, request, UInt32(MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE))
                return true
            }
            if case let .values(values) = outcome {
                for (offset, value) in values.enumerated() {
                    let index = Int(address) + offset
                    switch table {
                    case .coil: mapping.pointee.tab_bits[index] = value == 0 ? 0 : 1
                    case .discreteInput: mapping.pointee.tab_input_bits[index] = value == 0 ? 0 : 1
                    case .holdingRegister: mapping.pointee.tab_registers[index] = value
                    case .inputRegister: mapping.pointee.tab_input_registers[index] = value
                    }
                }
            }
        case 0x05:
            guard field == 0xFF00 || field == 0x0000 else {
                modbus_reply_exception(context, request, UInt32(MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE))
                return true
            }
            outcome = backend.write(.coil, startingAt: address, values: [field == 0xFF00 ? 1 : 0], unit: unit)
        case 0x06:
            outcome = backend.write(.holdingRegister, startingAt: address, values: [UInt16(field)], unit: unit)
        case 0x0F, 0x10:
            let isCoils = function == 0x0F
            let byteCount = length > header + 5 ? Int(request[header + 5]) : 0
            let needed = isCoils ? (field + 7) / 8 : field * 2
            guard (1...(isCoils ? 1968 : 123)).contains(field), byteCount == needed, length >= header + 6 + byteCount
            else {
                modbus_reply_exception(context, request, UInt32(MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE))
                return true
            }
            guard Int(address) + field <= 0x10000 else {
                modbus_reply_exception(context, request, UInt32(MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS))
                return true
            }
            let data = request[(header + 6)..<(header + 6 + byteCount)]
            let values: [UInt16] =
                isCoils
                ? (0..<field).map { UInt16((data[data.startIndex + $0 / 8] >> UInt8($0 % 8)) & 1) }
                : (0..<field).map {
                    UInt16(data[data.startIndex + 2 * $0]) << 8 | UInt16(data[data.startIndex + 2 * $0 + 1])
                }
            outcome = backend.write(isCoils ? .coil : .holdingRegister, startingAt: address, values: values, unit: unit)
        default:
            outcome = .exception(.illegalFunction)
        }
        let delay = backend.responseDelay
        if delay > .zero { usleep(UInt32(min(delay.seconds, 10) * 1e6)) }
        switch outcome {
        case .values, .done:
            modbus_reply(context, request, Int32(length), mapping)
        case let .exception(exception):
            modbus_reply_exception(context, request, UInt32(exception.rawValue))
        case .noResponse:
            break
        case .dropConnection:
            return false
        }
        return true
    }
}

/// A plain libmodbus client loop, the baseline the harness client is benchmarked against: `modbus_new_tcp`,
/// `modbus_connect`, then `modbus_read_registers` in a tight loop, on a thread of its own.
public enum LibModbusBaseline {
    /// Reads `count` holding registers from `address`, `iterations` times; returns the wall time of the loop.
    public static func readHoldingRegisters(
        host: String, port: Int, address: UInt16, count: Int, iterations: Int
    )
        async throws(ModbusError) -> Duration
    {
        let thread = ConnectionThread(name: "acceptance.modbus-baseline")
        let endpoint = "\(host):\(port)"
        let result: Result<Duration, ModbusError> = await thread.run {
            guard let context = modbus_new_tcp_pi(host, String(port)) else {
                return .failure(modbusError(errno, .readHoldingRegisters, address, count, endpoint))
            }
            defer { modbus_free(context) }
            modbus_set_slave(context, 1)
            guard modbus_connect(context) == 0 else {
                return .failure(modbusError(errno, .readHoldingRegisters, address, count, endpoint))
            }
            defer { modbus_close(context) }
            var registers = [UInt16](repeating: 0, count: count)
            let start = ContinuousClock.now
            for _ in 0..<iterations {
                guard modbus_read_registers(context, Int32(address), Int32(count), &registers) == Int32(count) else {
                    return .failure(modbusError(errno, .readHoldingRegisters, address, count, endpoint))
                }
            }
            return .success(ContinuousClock.now - start)
        }
        return try result.get()
    }
}
