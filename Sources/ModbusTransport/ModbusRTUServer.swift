import AcceptanceCore
import Foundation
import ModbusCore
import Synchronization

/// A Modbus RTU server on a serial device (or one end of a pty pair), answering several unit ids, as the supplies
/// of a power shelf share one RS-485 bus.
///
/// libmodbus's RTU server answers a single unit id (it drops frames for any other before the application sees them),
/// so the multi-drop line is served here: frames found by function code and length, CRC-16 checked, answered through
/// a `ModbusServerBackend`. The harness's clients on the other end are libmodbus's.
public final class ModbusRTUServer: Sendable {
    public let device: String
    private let loop: RTULoop

    /// Opens `device` raw at `baud` and starts serving on a thread of its own.
    public init(device: String, baud: Int = 19200, backend: any ModbusServerBackend) throws(ModbusError) {
        self.device = device
        loop = try RTULoop(device: device, baud: baud, backend: backend)
        let loop = self.loop
        let thread = Thread { loop.run() }
        thread.name = "acceptance.modbus-rtu-server"
        thread.start()
    }

    /// Asks the server to stop without waiting (for `defer` and `deinit`); `shutdown()` waits.
    public func stop() { loop.requestStop() }

    /// Stops serving and returns when the thread has finished and let go of the line.
    public func shutdown() async {
        loop.requestStop()
        await loop.finished.wait()
    }

    deinit { loop.requestStop() }

    /// Modbus CRC-16 (polynomial 0xA001, initial 0xFFFF), sent low byte first.
    public static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0xFFFF
        for byte in bytes {
            crc ^= UInt16(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xA001 : crc >> 1 }
        }
        return crc
    }

    /// The length of the request frame starting `buffer`, if enough of it is there to tell; 0 for an unknown function.
    static func requestLength(_ buffer: [UInt8]) -> Int? {
        guard buffer.count >= 2 else { return nil }
        switch buffer[1] {
        case 0x01...0x06: return 8
        case 0x0F, 0x10:
            guard buffer.count >= 7 else { return nil }
            return 9 + Int(buffer[6])
        default: return 0
        }
    }

    /// The response to a complete, CRC-checked request frame, or nil when the device says nothing.
    static func response(to frame: [UInt8], backend: any ModbusServerBackend) -> [UInt8]? {
        let unit = frame[0]
        let function = frame[1]
        let address = UInt16(frame[2]) << 8 | UInt16(frame[3])
        let field = Int(frame[4]) << 8 | Int(frame[5])
        func exception(_ code: ModbusException) -> [UInt8]? {
            unit == 0 ? nil : [unit, function | 0x80, code.rawValue]
        }
        let answer: ModbusServerAnswer
        var body: [UInt8] = []
        switch function {
        case 0x01, 0x02, 0x03, 0x04:
            let table: ModbusTable =
                [0x01: .coil, 0x02: .discreteInput, 0x03: .holdingRegister][function] ?? .inputRegister
            guard (1...(table.isBitTable ? 2000 : 125)).contains(field) else { return exception(.illegalDataValue) }
            guard Int(address) + field <= 0x10000 else { return exception(.illegalDataAddress) }
            answer = backend.read(table, startingAt: address, count: field, unit: unit)
            if case let .values(values) = answer {
                guard values.count == field else { return exception(.serverDeviceFailure) }
                if table.isBitTable {
                    var bytes = [UInt8](repeating: 0, count: (field + 7) / 8)
                    for (index, value) in values.enumerated() where value != 0 {
                        bytes[index / 8] |= 1 << UInt8(index % 8)
                    }
                    body = [unit, function, UInt8(bytes.count)] + bytes
                } else {
                    body =
                        [unit, function, UInt8(values.count * 2)]
                        + values.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
                }
            }
        case 0x05, 0x06:
            if function == 0x05, field != 0xFF00, field != 0x0000 { return exception(.illegalDataValue) }
            let value: UInt16 = function == 0x05 ? (field == 0xFF00 ? 1 : 0) : UInt16(field)
            answer = backend.write(
                function == 0x05 ? .coil : .holdingRegister, startingAt: address, values: [value], unit: unit)
            body = Array(frame[0..<6])
        case 0x0F, 0x10:
            // Everything checked before anything is decoded: a short or lying frame must not reach the data.
            let data = frame[7..<(frame.count - 2)]
            let limit = function == 0x0F ? 1968 : 123
            guard (1...limit).contains(field), data.count == (function == 0x0F ? (field + 7) / 8 : field * 2) else {
                return exception(.illegalDataValue)
            }
            guard Int(address) + field <= 0x10000 else { return exception(.illegalDataAddress) }
            let values: [UInt16] =
                function == 0x0F
                ? (0..<field).map { UInt16((data[data.startIndex + $0 / 8] >> UInt8($0 % 8)) & 1) }
                : (0..<field).map {
                    UInt16(data[data.startIndex + 2 * $0]) << 8 | UInt16(data[data.startIndex + 2 * $0 + 1])
                }
            answer = backend.write(
                function == 0x0F ? .coil : .holdingRegister, startingAt: address, values: values, unit: unit)
            body = Array(frame[0..<6])
        default:
            answer = .exception(.illegalFunction)
        }
        if unit == 0 { return nil }  // Broadcast: act, never answer.
        switch answer {
        case .values, .done: return body
        case let .exception(code): return exception(code)
        case .noResponse, .dropConnection: return nil
        }
    }
}

/// The serial side: descriptor, framing, wake-up pipe. Used by its thread only, apart from `stop()`.
/// `@unchecked Sendable`: `requestStop()` only writes a byte to the pipe.
private final class RTULoop: @unchecked Sendable {
    let descriptor: Int32
    let wake: (read: Int32, write: Int32)
    let backend: any ModbusServerBackend
    let finished = ThreadCompletion()
    let stopping = Mutex(false)

    init(device: String, baud: Int, backend: any ModbusServerBackend) throws(ModbusError) {
        func fail(_ message: String) -> ModbusError {
            let code = errno
            return ModbusError(
                .connection(code: code, message: "\(message): \(String(cString: strerror(code)))"),
                function: .readHoldingRegisters, address: 0, count: 0, endpoint: device)
        }
        let descriptor = open(device, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard descriptor >= 0 else { throw fail("cannot open \(device)") }
        var settings = termios()
        if tcgetattr(descriptor, &settings) == 0 {
            cfmakeraw(&settings)
            let speeds: [Int: speed_t] = [
                9600: speed_t(B9600), 19200: speed_t(B19200), 38400: speed_t(B38400),
                57600: speed_t(B57600), 115200: speed_t(B115200),
            ]
            cfsetspeed(&settings, speeds[baud] ?? speed_t(B19200))
            _ = tcsetattr(descriptor, TCSANOW, &settings)
        }
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else {
            close(descriptor)
            throw fail("cannot create a pipe")
        }
        self.descriptor = descriptor
        wake = (ends[0], ends[1])
        self.backend = backend
    }

    deinit {
        close(descriptor)
        close(wake.read)
        close(wake.write)
    }

    func requestStop() {
        let first = stopping.withLock { stopping -> Bool in
            defer { stopping = true }
            return !stopping
        }
        guard first else { return }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
    }

    func run() {
        defer { finished.finish() }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            var fds = [
                pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0),
            ]
            // A gap of 50 ms ends a partial frame (a real line's 3.5-character gap is far shorter).
            let ready = poll(&fds, 2, buffer.isEmpty ? -1 : 50)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[1].revents != 0 { return }
            if ready == 0 {
                buffer.removeAll()
                continue
            }
            let count = read(descriptor, &chunk, chunk.count)
            if count <= 0 {
                if count < 0, errno == EINTR || errno == EAGAIN { continue }
                // The other end of a pty closed: wait for it to reopen.
                usleep(50_000)
                continue
            }
            buffer += chunk[0..<count]
            while let length = ModbusRTUServer.requestLength(buffer) {
                if length == 0 {
                    // Not a function we know (or noise before a frame): drop a byte and look again.
                    buffer.removeFirst()
                    continue
                }
                guard buffer.count >= length else { break }
                let frame = Array(buffer[0..<length])
                let crc = ModbusRTUServer.crc16(frame[0..<(length - 2)])
                guard frame[length - 2] == UInt8(crc & 0xFF), frame[length - 1] == UInt8(crc >> 8) else {
                    buffer.removeFirst()  // Not a frame boundary: resynchronise.
                    continue
                }
                buffer.removeFirst(length)
                guard var reply = ModbusRTUServer.response(to: frame, backend: backend) else { continue }
                let delay = backend.responseDelay
                if delay > .zero { usleep(UInt32(min(delay.seconds, 10) * 1e6)) }
                let crcOut = ModbusRTUServer.crc16(reply)
                reply += [UInt8(crcOut & 0xFF), UInt8(crcOut >> 8)]
                _ = reply.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            }
        }
    }
}
