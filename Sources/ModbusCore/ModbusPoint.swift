import AcceptanceCore

/// How a register value is laid out.
public enum RegisterType: String, Sendable, Hashable, CaseIterable {
    case bool, int16, uint16, int32, uint32, float32, bitfield
    /// ASCII text, two characters a register, high byte first, padded with spaces or NULs (model, serial number).
    case string

    /// Registers occupied (bits for coils and discrete inputs); a string's length is the point's own.
    public var registerCount: Int {
        switch self {
        case .bool, .int16, .uint16, .bitfield, .string: 1
        case .int32, .uint32, .float32: 2
        }
    }
}

/// Byte and word order of multi-byte values, named by where bytes A (most significant) to D land on the wire.
public enum WordOrder: String, Sendable, Hashable, CaseIterable {
    /// Big-endian words, high word first (the Modbus convention).
    case abcd = "ABCD"
    /// Low word first, each word big-endian ("word swapped"; common on PLCs and many CDUs).
    case cdab = "CDAB"
    /// High word first, bytes within each word swapped.
    case badc = "BADC"
    /// Fully little-endian.
    case dcba = "DCBA"

    public var swapsWords: Bool { self == .cdab || self == .dcba }
    public var swapsBytes: Bool { self == .badc || self == .dcba }
}

/// Device-wide Modbus settings from a profile.
public struct ModbusDeviceSettings: DeviceSettings, Hashable {
    /// The most registers the device answers in one request.
    public var maxRegistersPerRead = 125

    public init(maxRegistersPerRead: Int = 125) {
        self.maxRegistersPerRead = maxRegistersPerRead
    }
}

/// Where a Modbus point lives and how its registers read: `loop_pressure` is input register 2, int16, x0.1.
public struct ModbusPoint: PointAddress {
    public var table: ModbusTable
    /// The 0-based protocol address of its first register.
    public var address: UInt16
    public var type: RegisterType
    public var wordOrder: WordOrder
    /// Engineering value = raw × scale + offset.
    public var scale: Double
    public var offset: Double
    /// For a bitfield: the bit (0 = least significant) this point reads.
    public var bit: Int?
    /// The raw value (before scale) a device reports when it has no reading, such as 0x7FFF or -9999.
    public var missing: Double?
    /// For a string: how many registers it spans.
    public var length: Int?

    public init(
        table: ModbusTable, address: UInt16, type: RegisterType, wordOrder: WordOrder = .abcd, scale: Double = 1,
        offset: Double = 0, bit: Int? = nil, missing: Double? = nil, length: Int? = nil
    ) {
        self.table = table
        self.address = address
        self.type = type
        self.wordOrder = wordOrder
        self.scale = scale
        self.offset = offset
        self.bit = bit
        self.missing = missing
        self.length = length
    }

    public var registerCount: Int { type == .string ? max(length ?? 1, 1) : type.registerCount }

    /// What the registers hold, before units and states.
    public var kind: PointValueKind {
        if type == .string { return .text }
        if type == .bool || (type == .bitfield && bit != nil) { return .bool }
        return .number
    }

    /// `input register 2` / `holding register 0-1`, for messages.
    public var registerDescription: String {
        let span = registerCount > 1 ? "\(address)-\(Int(address) + registerCount - 1)" : "\(address)"
        return "\(table) \(span)"
    }

    public var description: String { registerDescription }

    public var layout: String {
        var text = type.rawValue
        if registerCount > 1, type != .string { text += " \(wordOrder.rawValue)" }
        if scale != 1 { text += " ×\(Quantity.format(scale))" }
        return text
    }

    public func problem(writing value: Value, to point: PointDefinition) -> String? {
        do {
            _ = try PointCodec.encode(value, for: point)
            return nil
        } catch {
            return error.message
        }
    }
}

extension PointDefinition {
    /// A Modbus point, as a profile describes one.
    public init(
        name: String, description: String = "", table: ModbusTable, address: UInt16, type: RegisterType,
        wordOrder: WordOrder = .abcd, scale: Double = 1, offset: Double = 0, unit: PhysicalUnit? = nil,
        access: PointAccess = .readOnly, states: [Int: String] = [:], bit: Int? = nil, missing: Double? = nil,
        length: Int? = nil, location: SourceLocation? = nil
    ) {
        let modbus = ModbusPoint(
            table: table, address: address, type: type, wordOrder: wordOrder, scale: scale,
            offset: offset, bit: bit, missing: missing, length: length)
        self.init(
            name: name, description: description, kind: modbus.kind, unit: unit, access: access, states: states,
            address: modbus, location: location)
    }

    /// The point's Modbus address and layout; nil for a point another transport reaches.
    public var modbus: ModbusPoint? {
        get { address as? ModbusPoint }
        set {
            guard let newValue else { return }
            address = newValue
            kind = newValue.kind
        }
    }
}

extension DeviceProfile {
    /// The most registers the device answers in one request (125, the Modbus limit, unless the profile says less).
    public var maxRegistersPerRead: Int { (settings as? ModbusDeviceSettings)?.maxRegistersPerRead ?? 125 }
}
