import AcceptanceCore
import Foundation
import Yams

/// Modbus device profiles (`protocol: modbus`, the default): points are registers with a type, word order, scale
/// and offset; `max_registers_per_read` is the most registers the device answers in one request.
public struct ModbusProfileSyntax: DeviceProtocolSyntax {
    public init() {}

    public var name: String { "modbus" }
    public var settingKeys: [String] { ["max_registers_per_read"] }

    static let pointKeys = [
        "description", "table", "address", "type", "word_order", "scale", "offset", "unit", "access", "states", "bit",
        "missing", "length", "fraction_bits",
    ]

    public func parseSettings(
        _ entries: [(key: String, keyNode: Node, value: Node)], reader: inout YAMLReader
    )
        -> (any DeviceSettings)?
    {
        var settings = ModbusDeviceSettings()
        for (key, _, value) in entries where key == "max_registers_per_read" {
            if let limit = reader.integer(value, "max_registers_per_read") {
                if (1...125).contains(limit) {
                    settings.maxRegistersPerRead = limit
                } else {
                    reader.error("max_registers_per_read must be 1 to 125 (the Modbus limit)", at: value)
                }
            }
        }
        return settings
    }

    public func parsePoint(_ name: String, keyNode: Node, _ node: Node, reader: inout YAMLReader) -> PointDefinition? {
        guard let entries = reader.mapping(node, "point '\(name)'") else { return nil }
        reader.rejectUnknownKeys(entries, allowed: Self.pointKeys, in: "point '\(name)'")
        func value(_ key: String) -> Node? { entries.first { $0.key == key }?.value }
        guard let tableNode = value("table"), let tableText = reader.scalar(tableNode, "table") else {
            reader.error(
                "point '\(name)' needs a 'table' (coil, discrete-input, input-register, holding-register)",
                at: keyNode)
            return nil
        }
        guard let table = ModbusTable(rawValue: tableText) else {
            reader.error(
                "unknown table '\(tableText)'; use coil, discrete-input, input-register or holding-register",
                at: tableNode)
            return nil
        }
        guard let addressNode = value("address"), let address = reader.integer(addressNode, "address") else {
            reader.error("point '\(name)' needs an 'address' (0-based protocol address)", at: keyNode)
            return nil
        }
        guard (0...65535).contains(address) else {
            reader.error("address \(address) is outside 0...65535", at: addressNode)
            return nil
        }
        var modbus = ModbusPoint(table: table, address: UInt16(address), type: table.isBitTable ? .bool : .uint16)
        var point = PointDefinition(
            name: name, kind: .number, access: table.isWritable ? .readWrite : .readOnly,
            address: modbus, location: reader.location(of: keyNode))
        for (key, keyNode, valueNode) in entries {
            switch key {
            case "description": point.description = reader.scalar(valueNode, "description") ?? ""
            case "type":
                guard let text = reader.scalar(valueNode, "type") else { break }
                guard let type = RegisterType(rawValue: text) else {
                    reader.error(
                        "unknown type '\(text)'; use \(RegisterType.allCases.map(\.rawValue).joined(separator: ", "))",
                        at: valueNode)
                    break
                }
                if table.isBitTable != (type == .bool) {
                    reader.error(
                        table.isBitTable
                            ? "a \(table) is a single bit: its type is bool"
                            : "type bool is for coils and discrete inputs; use bitfield with 'bit' for a bit of a register",
                        at: valueNode)
                }
                modbus.type = type
            case "word_order":
                guard let text = reader.scalar(valueNode, "word_order") else { break }
                if let order = WordOrder(rawValue: text.uppercased()) {
                    modbus.wordOrder = order
                } else {
                    reader.error("unknown word order '\(text)'; use ABCD, CDAB, BADC or DCBA", at: valueNode)
                }
            case "scale":
                if let scale = reader.double(valueNode, "scale") {
                    // Subnormal scales (1e-320) lose every digit of a reading: refused with zero and infinities.
                    if !scale.isNormal || abs(scale) < 1e-12 || abs(scale) > 1e12 {
                        reader.error(
                            "scale must be a number between 1e-12 and 1e12 in size, not \(scale)", at: valueNode)
                    } else {
                        modbus.scale = scale
                    }
                }
            case "offset":
                if let offset = reader.double(valueNode, "offset") {
                    if offset.isFinite {
                        modbus.offset = offset
                    } else {
                        reader.error("offset must be a finite number", at: valueNode)
                    }
                }
            case "unit":
                if let unit = reader.unit(valueNode) { point.unit = unit }
            case "access":
                guard let access = reader.access(valueNode) else { break }
                if access == .readWrite, !table.isWritable {
                    reader.error("a \(table) cannot be written; access must be read-only", at: valueNode)
                }
                point.access = access
            case "states":
                guard let stateEntries = reader.mapping(valueNode, "states") else { break }
                for (raw, rawNode, stateNode) in stateEntries {
                    guard
                        let rawValue = Int(raw)
                            ?? (raw.lowercased().hasPrefix("0x") ? Int(raw.dropFirst(2), radix: 16) : nil)
                    else {
                        reader.error("state keys are raw register values (0, 1, 2, ...), not '\(raw)'", at: rawNode)
                        continue
                    }
                    guard let stateName = reader.scalar(stateNode, "state name") else { continue }
                    if let other = point.states.first(where: { $0.value == stateName }) {
                        reader.error(
                            "state '\(stateName)' is already the name of \(other.key): a reading could not be told apart",
                            at: stateNode)
                        continue
                    }
                    point.states[rawValue] = stateName
                }
            case "length":
                if let length = reader.integer(valueNode, "length") {
                    if (1...125).contains(length) {
                        modbus.length = length
                    } else {
                        reader.error("length must be 1 to 125 registers", at: valueNode)
                    }
                }
            case "fraction_bits":
                // Fixed point: the raw integer counts units of 2^-n (Open Rack V3 PSUs give n per register).
                if let bits = reader.integer(valueNode, "fraction_bits") {
                    if (0...24).contains(bits) {
                        modbus.scale = 1 / Double(1 << bits)
                    } else {
                        reader.error("fraction_bits must be 0 to 24", at: valueNode)
                    }
                }
            case "missing":
                guard let text = reader.scalar(valueNode, "missing") else { break }
                let trimmed = text.trimmingCharacters(in: .whitespaces)
                let negative = trimmed.hasPrefix("-")
                let digits = negative ? String(trimmed.dropFirst()) : trimmed
                let magnitude =
                    digits.lowercased().hasPrefix("0x")
                    ? Int(digits.dropFirst(2), radix: 16).map(Double.init)
                    : Double(digits)
                if let magnitude, magnitude.isFinite {
                    modbus.missing = negative ? -magnitude : magnitude
                } else {
                    reader.error("missing must be the raw sentinel number, such as 0x7FFF or -9999", at: valueNode)
                }
            case "bit":
                if let bit = reader.integer(valueNode, "bit") {
                    if (0...15).contains(bit) {
                        modbus.bit = bit
                    } else {
                        reader.error("bit must be 0 to 15", at: valueNode)
                    }
                }
                _ = keyNode
            default: break
            }
        }
        // Writable tables default to read-write, except for types that cannot be written.
        if !entries.contains(where: { $0.key == "access" }), modbus.type == .string || modbus.type == .bitfield {
            point.access = .readOnly
        }
        // A hex sentinel for a signed type is a bit pattern: 0x8000 for an int16 is -32768.
        if let missing = modbus.missing {
            if modbus.type == .int16, (32768...65535).contains(missing) { modbus.missing = missing - 65536 }
            if modbus.type == .int32, (2_147_483_648...4_294_967_295).contains(missing) {
                modbus.missing = missing - 4_294_967_296
            }
        }
        if Int(modbus.address) + modbus.registerCount > 65536 {
            reader.error(
                "point '\(name)' (\(modbus.type), \(modbus.registerCount) registers) runs past address 65535",
                at: keyNode)
        }
        if modbus.type == .bitfield, !point.states.isEmpty {
            reader.error("a bitfield reads true/false (with 'bit') or a raw number; it cannot have states", at: keyNode)
        }
        if modbus.type == .bitfield, modbus.bit == nil, point.unit != nil {
            reader.error("a bitfield has no unit", at: keyNode)
        }
        if modbus.type == .bitfield, point.access == .readWrite {
            reader.error("bitfield points are read-only (a write would clobber the other bits)", at: keyNode)
        }
        if modbus.type == .string, modbus.length == nil {
            reader.error("a string needs 'length', the number of registers it spans", at: keyNode)
        }
        if modbus.type == .string, point.access == .readWrite {
            reader.error("string points are read-only", at: keyNode)
        }
        if entries.contains(where: { $0.key == "fraction_bits" }), entries.contains(where: { $0.key == "scale" }) {
            reader.error("give 'scale' or 'fraction_bits', not both", at: keyNode)
        }
        if modbus.bit != nil, modbus.type != .bitfield {
            reader.error("'bit' applies only to type bitfield", at: keyNode)
        }
        point.address = modbus
        point.kind = modbus.kind
        return point
    }

    public func check(
        _ points: [PointDefinition], entries: [(key: String, keyNode: Node, value: Node)],
        reader: inout YAMLReader
    ) {
        let located = points.compactMap { point in point.modbus.map { (point.name, $0) } }
        for (i, (_, a)) in located.enumerated() {
            for (bName, b) in located[(i + 1)...] where a.table == b.table {
                let aEnd = Int(a.address) + a.registerCount
                let bEnd = Int(b.address) + b.registerCount
                let overlaps = Int(a.address) < bEnd && Int(b.address) < aEnd
                let sharesBitfield =
                    a.type == .bitfield && b.type == .bitfield && a.address == b.address && a.bit != b.bit
                if overlaps, !sharesBitfield, let node = entries.first(where: { $0.key == bName })?.keyNode {
                    reader.error("point '\(bName)' overlaps '\(located[i].0)' at \(a.registerDescription)", at: node)
                }
            }
        }
    }
}
