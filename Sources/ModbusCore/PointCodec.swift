import AcceptanceCore
import Foundation

/// Why a value could not be turned into registers or back.
public struct PointCodecError: Error, Sendable, Hashable, CustomStringConvertible {
    public var point: String
    public var message: String

    public var description: String { "point '\(point)': \(message)" }
}

/// Converts between engineering values and raw Modbus registers: types, word order, scale, offset, states.
///
/// Shared by every Modbus client and by the simulator, so both sides of the wire agree by construction, and tested
/// against an independent peer (pymodbus) where one is available.
public enum PointCodec {
    /// The point's Modbus layout, or an error for a point another transport reaches.
    static func layout(of point: PointDefinition) throws(PointCodecError) -> ModbusPoint {
        guard let layout = point.modbus else {
            throw PointCodecError(point: point.name, message: "is not a Modbus point (\(point.whereabouts))")
        }
        return layout
    }

    /// The engineering value of a point from its raw registers (for bit tables: one register, 0 or 1).
    public static func decode(
        _ registers: some Collection<UInt16>, for point: PointDefinition
    ) throws(PointCodecError)
        -> Value
    {
        try decode(registers, for: point, layout: try Self.layout(of: point))
    }

    /// `decode` for a point whose layout the caller already has (no cast of its address on every read).
    public static func decode(
        _ registers: some Collection<UInt16>, for point: PointDefinition, layout: ModbusPoint
    )
        throws(PointCodecError) -> Value
    {
        let registers = Array(registers)
        guard registers.count == layout.registerCount else {
            throw PointCodecError(
                point: point.name,
                message: "expected \(layout.registerCount) register(s), got \(registers.count)")
        }
        if layout.type == .string {
            var bytes: [UInt8] = []
            for register in registers { bytes += [UInt8(register >> 8), UInt8(register & 0xFF)] }
            let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            return .text(text.trimmingCharacters(in: .whitespaces))
        }
        let raw: Double
        if let missing = layout.missing, layout.type != .bool, layout.type != .bitfield,
            rawValue(registers, layout) == missing
        {
            return .missing
        }
        switch layout.type {
        case .bool:
            let isSet = registers[0] != 0
            if !point.states.isEmpty { return stateValue(isSet ? 1 : 0, point) }
            return .bool(isSet)
        case .bitfield:
            let word = orderedWord(registers[0], layout.wordOrder)
            if let bit = layout.bit { return .bool(word & (1 << UInt16(bit)) != 0) }
            return .number(Double(word))
        case .uint16, .string: raw = Double(orderedWord(registers[0], layout.wordOrder))
        case .int16: raw = Double(Int16(bitPattern: orderedWord(registers[0], layout.wordOrder)))
        case .uint32: raw = Double(combine(registers, layout.wordOrder))
        case .int32: raw = Double(Int32(bitPattern: combine(registers, layout.wordOrder)))
        case .float32:
            raw = Double(Float(bitPattern: combine(registers, layout.wordOrder)))
            guard raw.isFinite else {
                throw PointCodecError(point: point.name, message: "register holds a non-finite float (\(raw))")
            }
        }
        if !point.states.isEmpty {
            guard raw == raw.rounded(), abs(raw) <= Double(Int32.max) else { return .text("unknown(\(raw))") }
            return stateValue(Int(raw), point)
        }
        let engineering = raw * layout.scale + layout.offset
        if let unit = point.unit { return .quantity(Quantity(engineering, unit)) }
        return .number(engineering)
    }

    /// The raw number in the registers, before scale and offset.
    static func rawValue(_ registers: [UInt16], _ layout: ModbusPoint) -> Double {
        return switch layout.type {
        case .uint16, .bitfield, .bool, .string: Double(orderedWord(registers[0], layout.wordOrder))
        case .int16: Double(Int16(bitPattern: orderedWord(registers[0], layout.wordOrder)))
        case .uint32: Double(combine(registers, layout.wordOrder))
        case .int32: Double(Int32(bitPattern: combine(registers, layout.wordOrder)))
        case .float32: Double(Float(bitPattern: combine(registers, layout.wordOrder)))
        }
    }

    /// The raw registers (for bit tables: one register, 0 or 1) that represent `value` for `point`.
    public static func encode(_ value: Value, for point: PointDefinition) throws(PointCodecError) -> [UInt16] {
        try encode(value, for: point, layout: try Self.layout(of: point))
    }

    /// `encode` for a point whose layout the caller already has.
    public static func encode(
        _ value: Value, for point: PointDefinition, layout: ModbusPoint
    ) throws(PointCodecError)
        -> [UInt16]
    {
        func fail(_ message: String) -> PointCodecError { PointCodecError(point: point.name, message: message) }
        if value == .missing {
            guard let missing = layout.missing else {
                throw fail("has no 'missing' sentinel to report no reading with")
            }
            return try encodeRaw(missing, point, layout)
        }
        if layout.type == .string {
            guard case let .text(text) = value else { throw fail("needs text, not \(value)") }
            var bytes = Array(text.utf8.prefix(layout.registerCount * 2))
            bytes += Array(repeating: 0x20, count: layout.registerCount * 2 - bytes.count)
            return (0..<layout.registerCount).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
        }
        // Named states first: `manual` -> 1.
        if !point.states.isEmpty {
            let raw: Int
            switch value {
            case let .text(name):
                guard let match = point.states.first(where: { $0.value == name }) else {
                    throw fail("'\(name)' is not a state; use one of \(point.stateNames.joined(separator: ", "))")
                }
                raw = match.key
            case let .number(number) where number == number.rounded() && abs(number) <= 65535:
                raw = Int(number)
            default:
                throw fail("needs one of \(point.stateNames.joined(separator: ", ")), not \(value)")
            }
            return try encodeRaw(Double(raw), point, layout)
        }
        switch (layout.type, value) {
        case let (.bool, .bool(isSet)):
            return [isSet ? 1 : 0]
        case (.bool, _):
            throw fail("needs true or false, not \(value)")
        case (.bitfield, _):
            throw fail("bitfields are read-only")
        default:
            break
        }
        let engineering: Double
        switch value {
        case let .quantity(quantity):
            guard let unit = point.unit else { throw fail("has no unit; write a plain number, not \(quantity)") }
            do {
                engineering = try quantity.converted(to: unit).value
            } catch {
                throw fail("\(error)")
            }
        case let .number(number):
            if let unit = point.unit { throw fail("needs a value in \(unit.dimension) (for example in \(unit))") }
            engineering = number
        default:
            throw fail("needs a number, not \(value)")
        }
        return try encodeRaw((engineering - layout.offset) / layout.scale, point, layout)
    }

    static func encodeRaw(
        _ raw: Double, _ point: PointDefinition, _ layout: ModbusPoint
    ) throws(PointCodecError)
        -> [UInt16]
    {
        func outOfRange(_ range: String) -> PointCodecError {
            PointCodecError(
                point: point.name,
                message: "value \(Quantity.format(raw * layout.scale + layout.offset))"
                    + "\(point.unit.map { " \($0)" } ?? "") is out of range for \(layout.type) (raw \(range)) at \(layout.registerDescription)"
            )
        }
        guard raw.isFinite else { throw PointCodecError(point: point.name, message: "value is not finite") }
        switch layout.type {
        case .float32:
            let float = Float(raw)
            guard float.isFinite else { throw outOfRange("beyond float32") }
            return split(float.bitPattern, layout.wordOrder)
        case .int16, .uint16, .bool, .bitfield, .string:
            let rounded = raw.rounded()
            let range: ClosedRange<Double> = layout.type == .int16 ? -32768...32767 : 0...65535
            guard range.contains(rounded) else {
                throw outOfRange("\(Int(range.lowerBound))...\(Int(range.upperBound))")
            }
            let word = layout.type == .int16 ? UInt16(bitPattern: Int16(rounded)) : UInt16(rounded)
            return [orderedWord(word, layout.wordOrder)]
        case .int32, .uint32:
            let rounded = raw.rounded()
            let range: ClosedRange<Double> = layout.type == .int32 ? -2_147_483_648...2_147_483_647 : 0...4_294_967_295
            guard range.contains(rounded) else {
                throw outOfRange("\(Int(range.lowerBound))...\(Int(range.upperBound))")
            }
            let bits = layout.type == .int32 ? UInt32(bitPattern: Int32(rounded)) : UInt32(rounded)
            return split(bits, layout.wordOrder)
        }
    }

    static func stateValue(_ raw: Int, _ point: PointDefinition) -> Value {
        .text(point.states[raw] ?? "unknown(\(raw))")
    }

    /// A 16-bit word as the device means it (bytes swapped for BADC and DCBA).
    public static func orderedWord(_ word: UInt16, _ order: WordOrder) -> UInt16 {
        order.swapsBytes ? word.byteSwapped : word
    }

    static func combine(_ registers: [UInt16], _ order: WordOrder) -> UInt32 {
        let first = orderedWord(registers[0], order)
        let second = orderedWord(registers[1], order)
        let (high, low) = order.swapsWords ? (second, first) : (first, second)
        return UInt32(high) << 16 | UInt32(low)
    }

    static func split(_ bits: UInt32, _ order: WordOrder) -> [UInt16] {
        let high = orderedWord(UInt16(truncatingIfNeeded: bits >> 16), order)
        let low = orderedWord(UInt16(truncatingIfNeeded: bits), order)
        return order.swapsWords ? [low, high] : [high, low]
    }
}
