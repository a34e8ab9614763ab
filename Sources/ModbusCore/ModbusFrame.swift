/// Modbus requests as bytes, and replies checked in full against the request they answer.
///
/// I/O-free, so the reply parser can be fuzzed and tested on bytes alone. A reply is accepted only if every field
/// agrees with the request: on TCP the transaction id, the protocol id (0), the MBAP length (exactly the bytes that
/// follow it) and the unit id; on RTU the address and the CRC; on both the function code, the byte count or the
/// echoed address and quantity, and nothing left over. On a shared gateway (supplies on units 192-197) a reply from
/// another unit is never credited to the device that was asked.
public struct ModbusRequest: Sendable, Hashable {
    public let function: ModbusFunction
    public let address: UInt16
    /// Registers or bits read or written.
    public let count: Int
    /// The protocol data unit: function code, then its fields.
    public let pdu: [UInt8]

    /// A read of `count` items from `table`.
    public static func read(_ table: ModbusTable, address: UInt16, count: Int) throws(ModbusError) -> ModbusRequest {
        let function = ModbusFunction.read(table)
        let limit = table.isBitTable ? 2000 : 125
        guard (1...limit).contains(count), Int(address) + count <= 0x10000 else {
            throw ModbusError(
                .invalidRequest("\(count) items from address \(address); one read takes 1 to \(limit) within 0-65535"),
                function: function, address: address, count: count, endpoint: "")
        }
        return ModbusRequest(
            function: function, address: address, count: count,
            pdu: [function.rawValue] + address.bigEndianBytes + UInt16(count).bigEndianBytes)
    }

    /// A write: one item with 0x05 / 0x06 (which some devices insist on), several with 0x0F / 0x10.
    public static func write(
        _ table: ModbusTable, address: UInt16, values: [UInt16]
    ) throws(ModbusError)
        -> ModbusRequest
    {
        let isCoil = table == .coil
        let single = values.count == 1
        let function: ModbusFunction =
            isCoil
            ? (single ? .writeSingleCoil : .writeMultipleCoils)
            : (single ? .writeSingleRegister : .writeMultipleRegisters)
        let limit = isCoil ? 1968 : 123
        guard table == .coil || table == .holdingRegister, (1...limit).contains(values.count),
            Int(address) + values.count <= 0x10000
        else {
            throw ModbusError(
                .invalidRequest("\(values.count) items to the \(table) table at \(address) cannot be written"),
                function: function, address: address, count: values.count, endpoint: "")
        }
        var pdu = [function.rawValue] + address.bigEndianBytes
        switch (isCoil, single) {
        case (true, true): pdu += values[0] == 0 ? [0x00, 0x00] : [0xFF, 0x00]
        case (false, true): pdu += values[0].bigEndianBytes
        case (true, false):
            var bytes = [UInt8](repeating: 0, count: (values.count + 7) / 8)
            for (index, value) in values.enumerated() where value != 0 { bytes[index / 8] |= 1 << UInt8(index % 8) }
            pdu += UInt16(values.count).bigEndianBytes + [UInt8(bytes.count)] + bytes
        case (false, false):
            pdu += UInt16(values.count).bigEndianBytes + [UInt8(values.count * 2)] + values.flatMap(\.bigEndianBytes)
        }
        return ModbusRequest(function: function, address: address, count: values.count, pdu: pdu)
    }

    /// The TCP frame: MBAP header (transaction, protocol 0, length, unit), then the PDU.
    public func tcpFrame(transaction: UInt16, unit: UInt8) -> [UInt8] {
        transaction.bigEndianBytes + [0, 0] + UInt16(pdu.count + 1).bigEndianBytes + [unit] + pdu
    }

    /// The RTU frame: address, PDU, CRC-16 (low byte first).
    public func rtuFrame(unit: UInt8) -> [UInt8] {
        let body = [unit] + pdu
        return body + ModbusCRC.bytes(of: body)
    }
}

/// How a reply arrived, and what the request expects of it.
public enum ModbusFraming: Sendable, Hashable {
    /// Modbus TCP; the request went out with this transaction id.
    case tcp(transaction: UInt16)
    /// Modbus RTU (address and CRC around the PDU).
    case rtu
}

/// A reply that passed every check.
public enum ModbusReply: Sendable, Hashable {
    /// Values read (bits as 0/1), exactly as many as were asked for.
    case values([UInt16])
    /// A write the device confirmed by echoing it.
    case written
    /// The device answered with an exception.
    case exception(ModbusException)
}

extension ModbusReply {
    /// Checks a whole reply frame (`frame`) against `request` sent to `unit`; the message of the error says which
    /// field was wrong and what it held.
    public static func parse(
        _ frame: [UInt8], framing: ModbusFraming, unit: UInt8, request: ModbusRequest
    ) throws(ModbusReplyError) -> ModbusReply {
        let pdu: ArraySlice<UInt8>
        switch framing {
        case let .tcp(transaction):
            guard frame.count >= 9 else {
                throw .init("\(frame.count)-byte frame is shorter than any Modbus TCP reply")
            }
            let receivedTransaction = UInt16(frame[0]) << 8 | UInt16(frame[1])
            guard receivedTransaction == transaction else {
                throw .init("transaction id \(receivedTransaction) does not match the request's \(transaction)")
            }
            let protocolID = UInt16(frame[2]) << 8 | UInt16(frame[3])
            guard protocolID == 0 else { throw .init("protocol id \(protocolID) is not Modbus (0)") }
            let length = Int(frame[4]) << 8 | Int(frame[5])
            guard length == frame.count - 6 else {
                throw .init("MBAP length \(length) but \(frame.count - 6) bytes follow it")
            }
            guard frame[6] == unit else { throw .init("reply from unit \(frame[6]); the request went to unit \(unit)") }
            pdu = frame[7...]
        case .rtu:
            guard frame.count >= 5 else {
                throw .init("\(frame.count)-byte frame is shorter than any Modbus RTU reply")
            }
            guard frame[0] == unit else { throw .init("reply from unit \(frame[0]); the request went to unit \(unit)") }
            let body = frame[..<(frame.count - 2)]
            let expected = ModbusCRC.value(of: body)
            let received = UInt16(frame[frame.count - 2]) | UInt16(frame[frame.count - 1]) << 8
            guard expected == received else {
                throw .init("CRC \(received.hex) does not match \(expected.hex) computed over the reply")
            }
            pdu = frame[1..<(frame.count - 2)]
        }
        return try parse(pdu: Array(pdu), request: request)
    }

    /// Checks a reply's PDU (function code onwards) against `request`.
    public static func parse(pdu: [UInt8], request: ModbusRequest) throws(ModbusReplyError) -> ModbusReply {
        guard let function = pdu.first else { throw .init("empty reply") }
        let code = request.function.rawValue
        if function == code | 0x80 {
            guard pdu.count == 2 else { throw .init("exception reply of \(pdu.count) bytes (2 expected)") }
            return .exception(ModbusException(rawValue: pdu[1]))
        }
        guard function == code else {
            throw .init("function 0x\(function.hex2) in reply to 0x\(code.hex2)")
        }
        switch request.function {
        case .readCoils, .readDiscreteInputs, .readHoldingRegisters, .readInputRegisters:
            let bits = request.function == .readCoils || request.function == .readDiscreteInputs
            let expected = bits ? (request.count + 7) / 8 : request.count * 2
            guard pdu.count >= 2 else { throw .init("reply ends before its byte count") }
            guard Int(pdu[1]) == expected else {
                throw .init(
                    "byte count \(pdu[1]) for \(request.count) \(bits ? "bits" : "registers") (\(expected) expected)")
            }
            guard pdu.count == 2 + expected else {
                throw .init("\(pdu.count - 2) data bytes after a byte count of \(expected)")
            }
            let data = pdu[2...]
            if bits {
                return .values(
                    (0..<request.count).map { UInt16((data[data.startIndex + $0 / 8] >> UInt8($0 % 8)) & 1) })
            }
            return .values(
                (0..<request.count).map {
                    UInt16(data[data.startIndex + 2 * $0]) << 8 | UInt16(data[data.startIndex + 2 * $0 + 1])
                })
        case .writeSingleCoil, .writeSingleRegister, .writeMultipleCoils, .writeMultipleRegisters:
            // A write is confirmed by an echo of its address and value (single) or address and quantity (multiple).
            guard pdu.count == 5 else { throw .init("write confirmation of \(pdu.count) bytes (5 expected)") }
            let echoed = Array(pdu[1..<5])
            let sent = Array(request.pdu[1..<5])
            guard echoed == sent else {
                throw .init(
                    "write confirmation echoes \(echoed.map(\.hex2).joined(separator: " ")), "
                        + "the request sent \(sent.map(\.hex2).joined(separator: " "))")
            }
            return .written
        }
    }
}

/// Why a reply was refused, naming the field.
public struct ModbusReplyError: Error, Sendable, Hashable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The Modbus RTU CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF).
public enum ModbusCRC {
    public static func value(of bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0xFFFF
        for byte in bytes {
            crc ^= UInt16(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xA001 : crc >> 1 }
        }
        return crc
    }

    /// The CRC as it goes on the wire: low byte first.
    public static func bytes(of bytes: some Sequence<UInt8>) -> [UInt8] {
        let crc = value(of: bytes)
        return [UInt8(crc & 0xFF), UInt8(crc >> 8)]
    }
}

extension UInt16 {
    var bigEndianBytes: [UInt8] { [UInt8(self >> 8), UInt8(self & 0xFF)] }
    var hex: String { "0x" + String(self, radix: 16, uppercase: true).leftPadded(to: 4) }
}

extension UInt8 {
    var hex2: String { String(self, radix: 16, uppercase: true).leftPadded(to: 2) }
}
