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
    /// For a Redfish point: the resource and the JSON pointer into it (`table` and `address` are then unused).
    public var resource: RedfishLocation?
    /// For a Redfish point: the state to report when the resource does not exist (404), such as `Absent` for a
    /// processor that is not fitted. Without it a missing resource is a device error.
    public var ifAbsent: String?

    /// Where the value lives, for messages: `input register 2`, `/redfish/v1/Systems/1 /PowerState`.
    public var whereabouts: String { resource?.description ?? registerDescription }

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
    /// How the device is reached.
    public var transport: DeviceTransport = .modbus
    /// Redfish actions (`reset` → `ComputerSystem.Reset` on a system).
    public var actions: [ActionDefinition] = []

    public func point(named name: String) -> PointDefinition? { points.first { $0.name == name } }
    public func action(named name: String) -> ActionDefinition? { actions.first { $0.name == name } }

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
        reader.rejectUnknownKeys(entries, allowed: ["model", "vendor", "kind", "description", "protocol", "max_registers_per_read",
                                                    "points", "actions"],
                                 in: "device profile")
        var profile = DeviceProfile(model: "", vendor: "", kind: "", description: "", maxRegistersPerRead: 125, points: [],
                                    file: file)
        var pointsNode: Node?
        var actionsNode: Node?
        for (key, _, value) in entries {
            switch key {
            case "model": profile.model = reader.scalar(value, "model") ?? ""
            case "vendor": profile.vendor = reader.scalar(value, "vendor") ?? ""
            case "kind": profile.kind = reader.scalar(value, "kind") ?? ""
            case "description": profile.description = reader.scalar(value, "description") ?? ""
            case "protocol":
                let text = reader.scalar(value, "protocol") ?? ""
                if let transport = DeviceTransport(rawValue: text) { profile.transport = transport } else {
                    reader.error("protocol must be 'modbus' or 'redfish'", at: value)
                }
            case "actions": actionsNode = value
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
        if profile.transport == .redfish {
            for (name, keyNode, value) in pointEntries {
                if let point = parseRedfishPoint(name, keyNode: keyNode, value, reader: &reader) { profile.points.append(point) }
            }
            for (name, keyNode, value) in actionsNode.flatMap({ reader.mapping($0, "actions") }) ?? [] {
                if let action = parseAction(name, keyNode: keyNode, value, reader: &reader) { profile.actions.append(action) }
            }
            return profile
        }
        if let actionsNode { reader.error("actions are for Redfish devices ('protocol: redfish')", at: actionsNode) }
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
        /// The group it belongs to (`compute_trays`), if any.
        public var group: String?
    }

    /// Identical devices a step can run `for_each` member: 18 compute trays are `compute01` ... `compute18`.
    public struct DeviceGroup: Sendable, Hashable {
        public var name: String
        public var model: String
        public var prefix: String
        public var count: Int
        public var description: String

        /// Member names: prefix and a two-digit number from 01.
        public var members: [String] { (0..<count).map { Self.memberName(prefix: prefix, number: $0 + 1) } }

        public static func memberName(prefix: String, number: Int) -> String {
            number < 10 ? "\(prefix)0\(number)" : "\(prefix)\(number)"
        }
    }

    public var id: String
    public var title: String
    public var devices: [DeviceInstance]
    public var groups: [DeviceGroup] = []
    public var file: String

    public func group(named name: String) -> DeviceGroup? { groups.first { $0.name == name } }

    /// The rack with a different number of members in some groups (a rack built with 6 power shelves, not 8).
    public func settingCounts(_ counts: [String: Int]) throws(RackSettingError) -> RackProfile {
        var rack = self
        for (name, count) in counts.sorted(by: { $0.key < $1.key }) {
            guard let index = rack.groups.firstIndex(where: { $0.name == name }) else {
                throw RackSettingError(message: "rack '\(id)' has no group '\(name)'; it has "
                    + (groups.isEmpty ? "none" : groups.map(\.name).joined(separator: ", ")))
            }
            guard (1...99).contains(count) else {
                throw RackSettingError(message: "group '\(name)' must have 1 to 99 members, not \(count)")
            }
            rack.groups[index].count = count
        }
        rack.devices = rack.devices.filter { $0.group == nil } + rack.groups.flatMap(Self.instances(of:))
        return rack
    }

    static func instances(of group: DeviceGroup) -> [DeviceInstance] {
        group.members.enumerated().map { index, name in
            DeviceInstance(name: name, model: group.model, description: "\(group.description) \(index + 1) of \(group.count)",
                           address: nil, group: group.name)
        }
    }

    public static func load(path: String) throws(DiagnosticsError) -> RackProfile {
        var sink = DiagnosticSink(file: path, text: (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
        let source = YAMLSource.load(path: path, into: &sink)
        var reader = YAMLReader(sink: sink)
        var rack = RackProfile(id: "", title: "", devices: [], file: path)
        if let root = source?.treeForChecking, let entries = reader.mapping(root, "rack profile") {
            reader.rejectUnknownKeys(entries, allowed: ["id", "title", "description", "devices", "groups"], in: "rack profile")
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
                case "groups":
                    for (name, keyNode, groupNode) in reader.mapping(value, "groups") ?? [] {
                        guard let fields = reader.mapping(groupNode, "group '\(name)'") else { continue }
                        reader.rejectUnknownKeys(fields, allowed: ["model", "description", "prefix", "count"], in: "group '\(name)'")
                        func field(_ key: String) -> Node? { fields.first { $0.key == key }?.value }
                        guard let model = field("model").flatMap({ reader.scalar($0, "model") }),
                              let prefix = field("prefix").flatMap({ reader.scalar($0, "prefix") }),
                              let countNode = field("count"), let count = reader.integer(countNode, "count") else {
                            reader.error("group '\(name)' needs 'model', 'prefix' (member names are prefix01, prefix02, ...) "
                                + "and 'count'", at: keyNode)
                            continue
                        }
                        if !(1...99).contains(count) { reader.error("count must be 1 to 99", at: countNode) }
                        let group = DeviceGroup(name: name, model: model, prefix: prefix, count: min(max(count, 1), 99),
                                                description: field("description").flatMap { reader.scalar($0, "description") } ?? name)
                        rack.groups.append(group)
                        rack.devices += instances(of: group)
                    }
                default: break
                }
            }
            if rack.id.isEmpty { reader.error("rack profile needs an 'id'", at: root) }
            var names = Set<String>()
            for device in rack.devices where !names.insert(device.name).inserted {
                reader.error("device name '\(device.name)' is used twice (a group member names itself prefix01, ...)", at: root)
            }
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

    /// Loads a rack profile and every device profile it names from `fixtures/devices/`, with the group sizes
    /// `counts` overrides (from a station or a scenario).
    public static func load(rackID: String, fixtures: String, counts: [String: Int] = [:]) throws(DiagnosticsError)
        -> RackConfiguration
    {
        let rackPath = "\(fixtures)/racks/\(rackID).yaml"
        guard FileManager.default.fileExists(atPath: rackPath) else {
            throw DiagnosticsError([Diagnostic(at: SourceLocation(file: rackPath, line: 1, column: 1),
                                               "no rack profile '\(rackID)' (looked for \(rackPath))")])
        }
        var rack = try RackProfile.load(path: rackPath)
        if !counts.isEmpty {
            do {
                rack = try rack.settingCounts(counts)
            } catch {
                throw DiagnosticsError([Diagnostic(at: SourceLocation(file: rackPath, line: 1, column: 1), error.message)])
            }
        }
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

    /// The device instance and point for `device.point`; `aliases` maps a `for_each` step's member name
    /// (`each`) to a device.
    public func resolve(_ reference: String, aliases: [String: String] = [:]) -> (device: String, point: PointDefinition)? {
        guard let (deviceName, profile, pointName) = split(reference, aliases: aliases),
              let point = profile.point(named: pointName) else { return nil }
        return (deviceName, point)
    }

    /// The device instance and action for `device.action`.
    public func resolveAction(_ reference: String, aliases: [String: String] = [:]) -> (device: String, action: ActionDefinition)? {
        guard let (deviceName, profile, name) = split(reference, aliases: aliases),
              let action = profile.action(named: name) else { return nil }
        return (deviceName, action)
    }

    func split(_ reference: String, aliases: [String: String]) -> (String, DeviceProfile, String)? {
        guard let dot = reference.firstIndex(of: ".") else { return nil }
        var deviceName = String(reference[..<dot])
        let member = String(reference[reference.index(after: dot)...])
        if let target = aliases[deviceName] { deviceName = target }
        guard let instance = rack.devices.first(where: { $0.name == deviceName }),
              let profile = profiles[instance.model] else { return nil }
        return (deviceName, profile, member)
    }

    public func profile(of device: String) -> DeviceProfile? {
        rack.devices.first { $0.name == device }.flatMap { profiles[$0.model] }
    }

    /// Every `device.point` name, for suggestions and listings.
    public var allPointNames: [String] {
        rack.devices.flatMap { instance in
            (profiles[instance.model]?.points ?? []).map { "\(instance.name).\($0.name)" }
        }
    }
}

/// A rack setting (a group size) that the rack profile cannot take.
public struct RackSettingError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
