import AcceptanceCore
import ModbusCore

/// Where a Modbus device is: a TCP address or a serial line.
public enum ModbusEndpoint: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case rtu(device: String, baud: Int, parity: Parity, dataBits: Int, stopBits: Int)

    public enum Parity: String, Sendable, Hashable, CaseIterable {
        case none, even, odd

        /// libmodbus's letter for it.
        var letter: UInt8 {
            switch self {
            case .none: UInt8(ascii: "N")
            case .even: UInt8(ascii: "E")
            case .odd: UInt8(ascii: "O")
            }
        }
    }

    public var description: String {
        switch self {
        case let .tcp(host, port): "\(host):\(port)"
        case let .rtu(device, baud, parity, dataBits, stopBits):
            "\(device) \(baud) \(dataBits)\(parity.rawValue.prefix(1).uppercased())\(stopBits)"
        }
    }
}

/// Per-device timing and retry policy, from the station file.
public struct ModbusSettings: Sendable, Hashable {
    /// How long one transaction may take from request to the last byte of the reply: a total deadline, however
    /// slowly the bytes arrive.
    public var responseTimeout: Duration = .seconds(1)
    /// What to do when a transaction fails (applied by `RetryingModbusClient`).
    public var retry = RetryPolicy()
    /// RS-485 mode for RTU adapters that need it set.
    public var rs485 = false

    public init() {}
}
