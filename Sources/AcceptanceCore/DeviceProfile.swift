import Foundation
import Yams

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

    var swapsWords: Bool { self == .cdab || self == .dcba }
    var swapsBytes: Bool { self == .badc || self == .dcba }
}

public enum PointAccess: String, Sendable, Hashable {
    case readOnly = "read-only"
    case readWrite = "read-write"
}

/// One named value of a device: `loop_pressure` is input register 2, int16, x0.1 kPa, read-only.
public struct PointDefinition: Sendable, Hashable {
    public var name: String
    public var description: String
    public var table: ModbusTable
    public var address: UInt16
    public var type: RegisterType
    public var wordOrder: WordOrder
    /// Engineering value = raw × scale + offset.
    public var scale: Double
    public var offset: Double
    public var unit: PhysicalUnit?
    public var access: PointAccess
    /// Named states for enumerations (`0: automatic, 1: manual`) and for two-state coils (`0: closed, 1: open`).
    public var states: [Int: String]
    /// For a bitfield: the bit (0 = least significant) this point reads.
    public var bit: Int?
    /// The raw value (before scale) a device reports when it has no reading, such as 0x7FFF or -9999.
    public var missing: Double?
    public var location: SourceLocation?

    public init(
        name: String, description: String = "", table: ModbusTable, address: UInt16, type: RegisterType,
        wordOrder: WordOrder = .abcd, scale: Double = 1, offset: Double = 0, unit: PhysicalUnit? = nil,
        access: PointAccess = .readOnly, states: [Int: String] = [:], bit: Int? = nil, location: SourceLocation? = nil
    ) {
        self.name = name
        self.description = description
        self.table = table
        self.address = address
        self.type = type
        self.wordOrder = wordOrder
        self.scale = scale
        self.offset = offset
        self.unit = unit
        self.access = access
        self.states = states
        self.bit = bit
        self.location = location
    }

    /// For a string: how many registers it spans.
    public var length: Int?

    public var registerCount: Int { type == .string ? max(length ?? 1, 1) : type.registerCount }

    /// The state names in raw-value order.
    public var stateNames: [String] { states.sorted { $0.key < $1.key }.map(\.value) }

    /// What expressions see when they read this point.
    public var valueType: ValueType {
        if !states.isEmpty { return .text(choices: stateNames) }
        if type == .string { return .text(choices: nil) }
        if type == .bool || (type == .bitfield && bit != nil) { return .bool }
        if let unit { return .quantity(unit.dimension) }
        return .number
    }

    /// `input register 2` / `holding register 0-1`, for messages.
    public var registerDescription: String {
        let span = registerCount > 1 ? "\(address)-\(Int(address) + registerCount - 1)" : "\(address)"
        return "\(table) \(span)"
    }
}

/// A device model's point map: what a vendor's Modbus manual says, as data.
public struct DeviceProfile: Sendable {
    public var model: String
    public var vendor: String
    /// What sort of device this is (`cdu`, `power-shelf`): the simulator picks its physics by kind, so a new
    /// vendor's CDU needs only a profile.
    public var kind: String
    public var description: String
    /// The most registers the device answers in one request.
    public var maxRegistersPerRead: Int
    public var points: [PointDefinition]
    public var file: String

    public func point(named name: String) -> PointDefinition? { points.first { $0.name == name } }

    static let pointKeys = [
        "description", "table", "address", "type", "word_order", "scale", "offset", "unit", "access", "states", "bit",
        "missing", "length", "fraction_bits",
    ]

    /// Loads `Fixtures/devices/<model>.yaml`, reporting every problem at once.
    public static func load(path: String) throws(DiagnosticsError) -> DeviceProfile {
        var sink = DiagnosticSink(file: path, text: (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
        let source = YAMLSource.load(path: path, into: &sink)
        var reader = YAMLReader(sink: sink)
        let profile = source?.treeForChecking.flatMap { parse($0, file: path, reader: &reader) }
        guard let profile, !reader.sink.hasErrors else {
            throw DiagnosticsError(reader.sink.diagnostics.isEmpty
                ? [Diagnostic(at: SourceLocation(file: path, line: 1, column: 1), "empty device profile")]
                : reader.sink.diagnostics)
        }
        return profile
    }

    static func parse(_ root: Node, file: String, reader: inout YAMLReader) -> DeviceProfile? {
        guard let entries = reader.mapping(root, "device profile") else { return nil }
        reader.rejectUnknownKeys(entries, allowed: ["model", "vendor", "kind", "description", "protocol", "max_registers_per_read", "points"],
                                 in: "device profile")
        var profile = DeviceProfile(model: "", vendor: "", kind: "", description: "", maxRegistersPerRead: 125, points: [],
                                    file: file)
        var pointsNode: Node?
        for (key, _, value) in entries {
            switch key {
            case "model": profile.model = reader.scalar(value, "model") ?? ""
            case "vendor": profile.vendor = reader.scalar(value, "vendor") ?? ""
            case "kind": profile.kind = reader.scalar(value, "kind") ?? ""
            case "description": profile.description = reader.scalar(value, "description") ?? ""
            case "protocol":
                if reader.scalar(value, "protocol") != "modbus" { reader.error("protocol must be 'modbus'", at: value) }
            case "max_registers_per_read":
                if let limit = reader.integer(value, "max_registers_per_read") {
                    if (1...125).contains(limit) { profile.maxRegistersPerRead = limit } else {
                        reader.error("max_registers_per_read must be 1 to 125 (the Modbus limit)", at: value)
                    }
                }
            case "points": pointsNode = value
            default: break
            }
        }
        if profile.model.isEmpty { reader.error("device profile needs a 'model'", at: root) }
        guard let pointsNode, let pointEntries = reader.mapping(pointsNode, "points") else {
            reader.error("device profile needs 'points'", at: root)
            return nil
        }
        for (name, keyNode, value) in pointEntries {
            if let point = parsePoint(name, keyNode: keyNode, value, reader: &reader) { profile.points.append(point) }
        }
        checkOverlaps(profile.points, reader: &reader, pointEntries: pointEntries)
        return profile
    }

    static func parsePoint(_ name: String, keyNode: Node, _ node: Node, reader: inout YAMLReader) -> PointDefinition? {
        guard let entries = reader.mapping(node, "point '\(name)'") else { return nil }
        reader.rejectUnknownKeys(entries, allowed: pointKeys, in: "point '\(name)'")
        func value(_ key: String) -> Node? { entries.first { $0.key == key }?.value }
        guard let tableNode = value("table"), let tableText = reader.scalar(tableNode, "table") else {
            reader.error("point '\(name)' needs a 'table' (coil, discrete-input, input-register, holding-register)",
                         at: keyNode)
            return nil
        }
        guard let table = ModbusTable(rawValue: tableText) else {
            reader.error("unknown table '\(tableText)'; use coil, discrete-input, input-register or holding-register",
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
        var point = PointDefinition(name: name, table: table, address: UInt16(address),
                                    type: table.isBitTable ? .bool : .uint16,
                                    access: table.isWritable ? .readWrite : .readOnly,
                                    location: reader.location(of: keyNode))
        for (key, keyNode, valueNode) in entries {
            switch key {
            case "description": point.description = reader.scalar(valueNode, "description") ?? ""
            case "type":
                guard let text = reader.scalar(valueNode, "type") else { break }
                guard let type = RegisterType(rawValue: text) else {
                    reader.error("unknown type '\(text)'; use \(RegisterType.allCases.map(\.rawValue).joined(separator: ", "))",
                                 at: valueNode)
                    break
                }
                if table.isBitTable != (type == .bool) {
                    reader.error(table.isBitTable ? "a \(table) is a single bit: its type is bool"
                                                  : "type bool is for coils and discrete inputs; use bitfield with 'bit' for a bit of a register",
                                 at: valueNode)
                }
                point.type = type
            case "word_order":
                guard let text = reader.scalar(valueNode, "word_order") else { break }
                if let order = WordOrder(rawValue: text.uppercased()) { point.wordOrder = order } else {
                    reader.error("unknown word order '\(text)'; use ABCD, CDAB, BADC or DCBA", at: valueNode)
                }
            case "scale":
                if let scale = reader.double(valueNode, "scale") {
                    if scale == 0 || !scale.isFinite { reader.error("scale must be a non-zero number", at: valueNode) } else {
                        point.scale = scale
                    }
                }
            case "offset":
                if let offset = reader.double(valueNode, "offset") {
                    if offset.isFinite { point.offset = offset } else { reader.error("offset must be a finite number", at: valueNode) }
                }
            case "unit":
                guard let symbol = reader.scalar(valueNode, "unit") else { break }
                if let unit = PhysicalUnit.named(symbol) { point.unit = unit } else {
                    reader.error("unknown unit '\(symbol)'", at: valueNode)
                }
            case "access":
                guard let text = reader.scalar(valueNode, "access") else { break }
                guard let access = PointAccess(rawValue: text) else {
                    reader.error("access must be read-only or read-write", at: valueNode)
                    break
                }
                if access == .readWrite, !table.isWritable {
                    reader.error("a \(table) cannot be written; access must be read-only", at: valueNode)
                }
                point.access = access
            case "states":
                guard let stateEntries = reader.mapping(valueNode, "states") else { break }
                for (raw, rawNode, stateNode) in stateEntries {
                    guard let rawValue = Int(raw) ?? (raw.lowercased().hasPrefix("0x") ? Int(raw.dropFirst(2), radix: 16) : nil)
                    else {
                        reader.error("state keys are raw register values (0, 1, 2, ...), not '\(raw)'", at: rawNode)
                        continue
                    }
                    if let stateName = reader.scalar(stateNode, "state name") { point.states[rawValue] = stateName }
                }
            case "length":
                if let length = reader.integer(valueNode, "length") {
                    if (1...125).contains(length) { point.length = length } else {
                        reader.error("length must be 1 to 125 registers", at: valueNode)
                    }
                }
            case "fraction_bits":
                // Fixed point: the raw integer counts units of 2^-n (Open Rack V3 PSUs give n per register).
                if let bits = reader.integer(valueNode, "fraction_bits") {
                    if (0...24).contains(bits) { point.scale = 1 / Double(1 << bits) } else {
                        reader.error("fraction_bits must be 0 to 24", at: valueNode)
                    }
                }
            case "missing":
                guard let text = reader.scalar(valueNode, "missing") else { break }
                let trimmed = text.trimmingCharacters(in: .whitespaces)
                let negative = trimmed.hasPrefix("-")
                let digits = negative ? String(trimmed.dropFirst()) : trimmed
                let magnitude = digits.lowercased().hasPrefix("0x") ? Int(digits.dropFirst(2), radix: 16).map(Double.init)
                    : Double(digits)
                if let magnitude, magnitude.isFinite { point.missing = negative ? -magnitude : magnitude } else {
                    reader.error("missing must be the raw sentinel number, such as 0x7FFF or -9999", at: valueNode)
                }
            case "bit":
                if let bit = reader.integer(valueNode, "bit") {
                    if (0...15).contains(bit) { point.bit = bit } else { reader.error("bit must be 0 to 15", at: valueNode) }
                }
                _ = keyNode
            default: break
            }
        }
        // Writable tables default to read-write, except for types that cannot be written.
        if !entries.contains(where: { $0.key == "access" }), point.type == .string || point.type == .bitfield {
            point.access = .readOnly
        }
        // A hex sentinel for a signed type is a bit pattern: 0x8000 for an int16 is -32768.
        if let missing = point.missing {
            if point.type == .int16, (32768...65535).contains(missing) { point.missing = missing - 65536 }
            if point.type == .int32, (2_147_483_648...4_294_967_295).contains(missing) { point.missing = missing - 4_294_967_296 }
        }
        if Int(point.address) + point.registerCount > 65536 {
            reader.error("point '\(name)' (\(point.type), \(point.registerCount) registers) runs past address 65535", at: keyNode)
        }
        if point.type == .bitfield, !point.states.isEmpty {
            reader.error("a bitfield reads true/false (with 'bit') or a raw number; it cannot have states", at: keyNode)
        }
        if point.type == .bitfield, point.bit == nil, point.unit != nil {
            reader.error("a bitfield has no unit", at: keyNode)
        }
        if point.type == .bitfield, point.access == .readWrite {
            reader.error("bitfield points are read-only (a write would clobber the other bits)", at: keyNode)
        }
        if point.type == .string, point.length == nil {
            reader.error("a string needs 'length', the number of registers it spans", at: keyNode)
        }
        if point.type == .string, point.access == .readWrite {
            reader.error("string points are read-only", at: keyNode)
        }
        if entries.contains(where: { $0.key == "fraction_bits" }), entries.contains(where: { $0.key == "scale" }) {
            reader.error("give 'scale' or 'fraction_bits', not both", at: keyNode)
        }
        if point.bit != nil, point.type != .bitfield {
            reader.error("'bit' applies only to type bitfield", at: keyNode)
        }
        return point
    }

    static func checkOverlaps(_ points: [PointDefinition], reader: inout YAMLReader,
                              pointEntries: [(key: String, keyNode: Node, value: Node)]) {
        for (i, a) in points.enumerated() {
            for b in points[(i + 1)...] where a.table == b.table {
                let aEnd = Int(a.address) + a.registerCount, bEnd = Int(b.address) + b.registerCount
                let overlaps = Int(a.address) < bEnd && Int(b.address) < aEnd
                let sharesBitfield = a.type == .bitfield && b.type == .bitfield && a.address == b.address && a.bit != b.bit
                if overlaps, !sharesBitfield, let node = pointEntries.first(where: { $0.key == b.name })?.keyNode {
                    reader.error("point '\(b.name)' overlaps '\(a.name)' at \(a.registerDescription)", at: node)
                }
            }
        }
    }
}

/// A rack model: which device instances it has and which profile describes each.
public struct RackProfile: Sendable {
    public struct DeviceInstance: Sendable, Hashable {
        public var name: String
        public var model: String
        public var description: String
        /// The device's address on a shared bus (a Modbus unit id), where several share one line.
        public var address: Int?
    }

    public var id: String
    public var title: String
    public var devices: [DeviceInstance]
    public var file: String

    public static func load(path: String) throws(DiagnosticsError) -> RackProfile {
        var sink = DiagnosticSink(file: path, text: (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
        let source = YAMLSource.load(path: path, into: &sink)
        var reader = YAMLReader(sink: sink)
        var rack = RackProfile(id: "", title: "", devices: [], file: path)
        if let root = source?.treeForChecking, let entries = reader.mapping(root, "rack profile") {
            reader.rejectUnknownKeys(entries, allowed: ["id", "title", "description", "devices"], in: "rack profile")
            for (key, _, value) in entries {
                switch key {
                case "id": rack.id = reader.scalar(value, "id") ?? ""
                case "title": rack.title = reader.scalar(value, "title") ?? ""
                case "devices":
                    for (name, keyNode, deviceNode) in reader.mapping(value, "devices") ?? [] {
                        guard let fields = reader.mapping(deviceNode, "device '\(name)'") else { continue }
                        reader.rejectUnknownKeys(fields, allowed: ["model", "description", "address"], in: "device '\(name)'")
                        let model = fields.first { $0.key == "model" }.flatMap { reader.scalar($0.value, "model") }
                        guard let model else {
                            reader.error("device '\(name)' needs a 'model' naming Fixtures/devices/<model>.yaml", at: keyNode)
                            continue
                        }
                        let description = fields.first { $0.key == "description" }
                            .flatMap { reader.scalar($0.value, "description") } ?? ""
                        var address: Int?
                        if let node = fields.first(where: { $0.key == "address" })?.value,
                           let value = reader.integer(node, "address") {
                            if (1...247).contains(value) { address = value } else {
                                reader.error("address must be a Modbus unit id, 1 to 247", at: node)
                            }
                        }
                        rack.devices.append(DeviceInstance(name: name, model: model, description: description,
                                                           address: address))
                    }
                default: break
                }
            }
            if rack.id.isEmpty { reader.error("rack profile needs an 'id'", at: root) }
            var seen: [Int: String] = [:]
            for device in rack.devices {
                guard let address = device.address else { continue }
                if let other = seen[address] {
                    reader.error("devices '\(other)' and '\(device.name)' both have address \(address)", at: root)
                }
                seen[address] = device.name
            }
        }
        if reader.sink.hasErrors || source?.root == nil { throw DiagnosticsError(reader.sink.diagnostics) }
        return rack
    }
}

/// A rack profile with the device profiles of its instances: everything needed to resolve `cdu.loop_pressure`.
public struct RackConfiguration: Sendable {
    public var rack: RackProfile
    public var profiles: [String: DeviceProfile]

    public init(rack: RackProfile, profiles: [String: DeviceProfile]) {
        self.rack = rack
        self.profiles = profiles
    }

    /// Loads a rack profile and every device profile it names from `fixtures/devices/`.
    public static func load(rackID: String, fixtures: String) throws(DiagnosticsError) -> RackConfiguration {
        let rackPath = "\(fixtures)/racks/\(rackID).yaml"
        guard FileManager.default.fileExists(atPath: rackPath) else {
            throw DiagnosticsError([Diagnostic(at: SourceLocation(file: rackPath, line: 1, column: 1),
                                               "no rack profile '\(rackID)' (looked for \(rackPath))")])
        }
        let rack = try RackProfile.load(path: rackPath)
        var profiles: [String: DeviceProfile] = [:]
        var problems: [Diagnostic] = []
        var attempted = Set<String>()
        for instance in rack.devices where attempted.insert(instance.model).inserted {
            do {
                profiles[instance.model] = try DeviceProfile.load(path: "\(fixtures)/devices/\(instance.model).yaml")
            } catch {
                problems += error.diagnostics
            }
        }
        if !problems.isEmpty { throw DiagnosticsError(problems) }
        return RackConfiguration(rack: rack, profiles: profiles)
    }

    /// The device instance and point for `device.point`.
    public func resolve(_ reference: String) -> (device: String, point: PointDefinition)? {
        guard let dot = reference.firstIndex(of: ".") else { return nil }
        let deviceName = String(reference[..<dot]), pointName = String(reference[reference.index(after: dot)...])
        guard let instance = rack.devices.first(where: { $0.name == deviceName }),
              let point = profiles[instance.model]?.point(named: pointName) else { return nil }
        return (deviceName, point)
    }

    /// Every `device.point` name, for suggestions and listings.
    public var allPointNames: [String] {
        rack.devices.flatMap { instance in
            (profiles[instance.model]?.points ?? []).map { "\(instance.name).\($0.name)" }
        }
    }
}
