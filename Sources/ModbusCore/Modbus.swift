import AcceptanceCore

/// The four Modbus data tables.
public enum ModbusTable: String, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    case coil
    case discreteInput = "discrete-input"
    case inputRegister = "input-register"
    case holdingRegister = "holding-register"

    public var isBitTable: Bool { self == .coil || self == .discreteInput }
    public var isWritable: Bool { self == .coil || self == .holdingRegister }

    public var description: String {
        switch self {
        case .coil: "coil"
        case .discreteInput: "discrete input"
        case .inputRegister: "input register"
        case .holdingRegister: "holding register"
        }
    }
}

/// A Modbus function code, for messages and errors.
public enum ModbusFunction: UInt8, Sendable, Hashable, CustomStringConvertible {
    case readCoils = 0x01
    case readDiscreteInputs = 0x02
    case readHoldingRegisters = 0x03
    case readInputRegisters = 0x04
    case writeSingleCoil = 0x05
    case writeSingleRegister = 0x06
    case writeMultipleCoils = 0x0F
    case writeMultipleRegisters = 0x10

    public var description: String {
        let name =
            switch self {
            case .readCoils: "read coils"
            case .readDiscreteInputs: "read discrete inputs"
            case .readHoldingRegisters: "read holding registers"
            case .readInputRegisters: "read input registers"
            case .writeSingleCoil: "write single coil"
            case .writeSingleRegister: "write single register"
            case .writeMultipleCoils: "write multiple coils"
            case .writeMultipleRegisters: "write multiple registers"
            }
        return "\(name) (0x\(String(rawValue, radix: 16, uppercase: true).leftPadded(to: 2)))"
    }

    public static func read(_ table: ModbusTable) -> ModbusFunction {
        switch table {
        case .coil: .readCoils
        case .discreteInput: .readDiscreteInputs
        case .inputRegister: .readInputRegisters
        case .holdingRegister: .readHoldingRegisters
        }
    }
}

/// A Modbus exception code as a device returns it.
public struct ModbusException: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let illegalFunction = ModbusException(rawValue: 0x01)
    public static let illegalDataAddress = ModbusException(rawValue: 0x02)
    public static let illegalDataValue = ModbusException(rawValue: 0x03)
    public static let serverDeviceFailure = ModbusException(rawValue: 0x04)
    public static let acknowledge = ModbusException(rawValue: 0x05)
    public static let serverDeviceBusy = ModbusException(rawValue: 0x06)
    public static let negativeAcknowledge = ModbusException(rawValue: 0x07)
    public static let memoryParityError = ModbusException(rawValue: 0x08)
    public static let gatewayPathUnavailable = ModbusException(rawValue: 0x0A)
    public static let gatewayTargetFailedToRespond = ModbusException(rawValue: 0x0B)

    public var name: String {
        switch self {
        case .illegalFunction: "illegal function"
        case .illegalDataAddress: "illegal data address"
        case .illegalDataValue: "illegal data value"
        case .serverDeviceFailure: "server device failure"
        case .acknowledge: "acknowledge"
        case .serverDeviceBusy: "server device busy"
        case .negativeAcknowledge: "negative acknowledge: the device cannot perform this function now"
        case .memoryParityError: "memory parity error"
        case .gatewayPathUnavailable: "gateway path unavailable"
        case .gatewayTargetFailedToRespond: "gateway target device failed to respond"
        default: "a code the Modbus specification does not define"
        }
    }

    public var description: String {
        "Modbus exception 0x\(String(rawValue, radix: 16, uppercase: true).leftPadded(to: 2)) (\(name))"
    }
}

/// A failed Modbus transaction, with everything a technician needs to find the fault.
public struct ModbusError: TransportError {
    public enum Kind: Sendable, Hashable {
        /// The device answered with an exception.
        case exception(ModbusException)
        /// No answer within the response timeout.
        case timeout
        /// Part of an answer (these bytes, up to the last non-zero one: trailing zeros cannot be told from bytes that
        /// never came), then nothing more within the response timeout.
        case incomplete([UInt8])
        /// The connection could not be made or was lost; `errno` and its text when the system gave one.
        case connection(code: Int32?, message: String)
        /// The answer was malformed or did not match the request.
        case badResponse(String)
        /// The request itself was invalid (too many registers, address overflow).
        case invalidRequest(String)
        /// The run was stopped while the transaction was pending.
        case cancelled
    }

    public var kind: Kind
    public var function: ModbusFunction
    public var address: UInt16
    public var count: Int
    /// Where the device is: `10.0.4.20:502 unit 1`, `/dev/ttyUSB0 unit 3`, `simulated unit 1`.
    public var endpoint: String

    public init(_ kind: Kind, function: ModbusFunction, address: UInt16, count: Int, endpoint: String) {
        self.kind = kind
        self.function = function
        self.address = address
        self.count = count
        self.endpoint = endpoint
    }

    /// No answer at all: a timeout, a lost connection, or a gateway saying the device behind it did not answer.
    public var isNoResponse: Bool {
        switch kind {
        case .timeout, .incomplete, .connection: true
        case .exception(.gatewayPathUnavailable), .exception(.gatewayTargetFailedToRespond): true
        default: false
        }
    }

    public var isCancellation: Bool { kind == .cancelled }

    public var description: String {
        let what = "\(function) at address \(address)\(count > 1 ? " (\(count) items)" : "") on \(endpoint)"
        switch kind {
        case let .exception(exception): return "\(exception) answering \(what)"
        case .timeout: return "no response to \(what)"
        case let .incomplete(bytes):
            let shown = bytes.prefix(16).map { String($0, radix: 16, uppercase: true).leftPadded(to: 2) }
            return
                "incomplete reply (at least \(bytes.count) bytes: \(shown.joined(separator: " "))\(bytes.count > 16 ? " …" : ""), "
                + "then nothing within the response timeout) to \(what)"
        case let .connection(code?, message): return "connection failed (errno \(code): \(message)) during \(what)"
        case let .connection(nil, message): return "connection failed (\(message)) during \(what)"
        case let .badResponse(message): return "bad response (\(message)) to \(what)"
        case let .invalidRequest(message): return "invalid request (\(message)): \(what)"
        case .cancelled: return "cancelled while waiting for \(what)"
        }
    }
}

/// A Modbus client for one device (one unit id on one connection).
///
/// The simulator implements it in memory; the libmodbus transport implements it over TCP and RTU. Point encoding
/// lives above it in `PointCodec`, shared by both.
public protocol ModbusClient: Sendable {
    /// Where the device is, for messages: `10.0.4.20:502 unit 1`.
    var endpoint: String { get }

    func readCoils(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [Bool]
    func readDiscreteInputs(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [Bool]
    func readHoldingRegisters(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [UInt16]
    func readInputRegisters(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [UInt16]
    func writeCoils(startingAt address: UInt16, values: [Bool]) async throws(ModbusError)
    func writeRegisters(startingAt address: UInt16, values: [UInt16]) async throws(ModbusError)

    /// Where the client's blocking work happens, if it has a thread of its own. Several transactions in a row are
    /// cheaper run there (no thread hand-off each).
    var preferredExecutor: (any TaskExecutor)? { get }

    /// Drops whatever connection state the client has, so the next transaction starts afresh (used between retries).
    func reset() async
}

extension ModbusClient {
    public var preferredExecutor: (any TaskExecutor)? { nil }
    public func reset() async {}
}

extension ModbusClient {
    /// Reads `count` registers (or bits, as 0/1) from any table.
    public func read(
        _ table: ModbusTable, startingAt address: UInt16, count: Int
    ) async throws(ModbusError)
        -> [UInt16]
    {
        switch table {
        case .coil: try await readCoils(startingAt: address, count: count).map { $0 ? 1 : 0 }
        case .discreteInput: try await readDiscreteInputs(startingAt: address, count: count).map { $0 ? 1 : 0 }
        case .inputRegister: try await readInputRegisters(startingAt: address, count: count)
        case .holdingRegister: try await readHoldingRegisters(startingAt: address, count: count)
        }
    }
}

/// What a Modbus server answers, as decided by whatever stands behind it (the simulator).
public enum ModbusServerAnswer: Sendable, Equatable {
    /// Register values (bits as 0/1) for a read.
    case values([UInt16])
    /// A write was accepted.
    case done
    case exception(ModbusException)
    /// Say nothing: the client will time out, as with a hung or unplugged device.
    case noResponse
    /// Close the client's connection without answering, as a device that reboots or a switch port that flaps.
    case dropConnection
}

/// The device behind a Modbus server. Called on the server's own thread; must not block for long.
public protocol ModbusServerBackend: Sendable {
    func read(_ table: ModbusTable, startingAt address: UInt16, count: Int, unit: UInt8) -> ModbusServerAnswer
    func write(_ table: ModbusTable, startingAt address: UInt16, values: [UInt16], unit: UInt8) -> ModbusServerAnswer
    /// How long the device takes to answer right now (a slow controller).
    var responseDelay: Duration { get }
}

extension ModbusServerBackend {
    public var responseDelay: Duration { .zero }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
