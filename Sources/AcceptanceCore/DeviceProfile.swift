import Foundation
import Yams

/// Settings a transport keeps for a whole device model (the most registers a Modbus device answers at once).
public protocol DeviceSettings: Sendable {}

/// How one transport's devices are written in a device profile (`protocol: modbus`): its own top-level keys, its
/// points and its actions. Each transport module has one; a `DeviceProtocols` list names those a build knows.
public protocol DeviceProtocolSyntax: Sendable {
    /// The `protocol:` value in a device profile.
    var name: String { get }
    /// Top-level profile keys this protocol adds to the common ones (`max_registers_per_read`).
    var settingKeys: [String] { get }
    /// The protocol's device-wide settings from the profile's top level (only `settingKeys` are passed).
    func parseSettings(
        _ entries: [(key: String, keyNode: Node, value: Node)], reader: inout YAMLReader
    )
        -> (any DeviceSettings)?
    func parsePoint(_ name: String, keyNode: Node, _ node: Node, reader: inout YAMLReader) -> PointDefinition?
    /// Actions, for protocols that have them; nil (the default) makes an `actions:` section an error.
    func parseAction(_ name: String, keyNode: Node, _ node: Node, reader: inout YAMLReader) -> ActionDefinition?
    var supportsActions: Bool { get }
    /// Checks across the points of one profile (two Modbus points on one register).
    func check(
        _ points: [PointDefinition], entries: [(key: String, keyNode: Node, value: Node)],
        reader: inout YAMLReader)
}

extension DeviceProtocolSyntax {
    public var settingKeys: [String] { [] }
    public func parseSettings(
        _ entries: [(key: String, keyNode: Node, value: Node)], reader: inout YAMLReader
    )
        -> (any DeviceSettings)?
    { nil }
    public var supportsActions: Bool { false }
    public func parseAction(_ name: String, keyNode: Node, _ node: Node, reader: inout YAMLReader) -> ActionDefinition?
    {
        nil
    }
    public func check(
        _ points: [PointDefinition], entries: [(key: String, keyNode: Node, value: Node)],
        reader: inout YAMLReader
    ) {}
}

/// The device protocols a build understands, in the order they are listed where transports are registered. A
/// profile without `protocol:` uses the first.
public struct DeviceProtocols: Sendable {
    public let all: [any DeviceProtocolSyntax]

    public init(_ all: [any DeviceProtocolSyntax]) {
        self.all = all
    }

    public func syntax(named name: String) -> (any DeviceProtocolSyntax)? { all.first { $0.name == name } }
    public var names: [String] { all.map(\.name) }
}

/// A device model's point map: what a vendor's manual says, as data.
public struct DeviceProfile: Sendable {
    public var model: String
    public var vendor: String
    /// What sort of device this is (`cdu`, `power-shelf`): the simulator picks its physics by kind, so a new
    /// vendor's CDU needs only a profile.
    public var kind: String
    public var description: String
    /// The transport that reaches it (`modbus`, `redfish`): the `protocol:` of the profile.
    public var protocolName: String
    public var points: [PointDefinition]
    public var actions: [ActionDefinition] = []
    /// The transport's device-wide settings, if it has any.
    public var settings: (any DeviceSettings)?
    /// Where the device must be left, and how to tell: every run ends by checking it on each device it actuated.
    public var safeState: SafeState?
    public var file: String

    public init(
        model: String, vendor: String = "", kind: String = "", description: String = "", protocolName: String,
        points: [PointDefinition], actions: [ActionDefinition] = [], settings: (any DeviceSettings)? = nil,
        file: String = ""
    ) {
        self.model = model
        self.vendor = vendor
        self.kind = kind
        self.description = description
        self.protocolName = protocolName
        self.points = points
        self.actions = actions
        self.settings = settings
        self.file = file
    }

    public func point(named name: String) -> PointDefinition? { points.first { $0.name == name } }
    public func action(named name: String) -> ActionDefinition? { actions.first { $0.name == name } }

    static let commonKeys = ["model", "vendor", "kind", "description", "protocol", "points", "actions", "safe_state"]

    /// Loads `Fixtures/devices/<model>.yaml`, reporting every problem at once.
    public static func load(path: String, protocols: DeviceProtocols) throws(DiagnosticsError) -> DeviceProfile {
        let (sink, source) = YAMLSource.open(path: path)
        var reader = YAMLReader(sink: sink)
        let profile = source?.treeForChecking.flatMap { parse($0, file: path, protocols: protocols, reader: &reader) }
        guard let profile, !reader.sink.hasErrors else {
            throw DiagnosticsError(
                reader.sink.diagnostics.isEmpty
                    ? [Diagnostic(at: SourceLocation(file: path, line: 1, column: 1), "empty device profile")]
                    : reader.sink.diagnostics)
        }
        return profile
    }

    static func parse(
        _ root: Node, file: String, protocols: DeviceProtocols, reader: inout YAMLReader
    ) -> DeviceProfile? {
        guard let entries = reader.mapping(root, "device profile") else { return nil }
        var syntax = protocols.all.first
        if let node = entries.first(where: { $0.key == "protocol" })?.value, let text = reader.scalar(node, "protocol")
        {
            syntax = protocols.syntax(named: text)
            if syntax == nil {
                reader.error(
                    "unknown protocol '\(text)'; this build knows "
                        + protocols.names.map { "'\($0)'" }.joined(separator: ", "), at: node)
                return nil
            }
        }
        guard let syntax else {
            reader.error("no device protocol is registered in this build", at: root)
            return nil
        }
        reader.rejectUnknownKeys(entries, allowed: commonKeys + syntax.settingKeys, in: "device profile")
        var profile = DeviceProfile(model: "", protocolName: syntax.name, points: [], file: file)
        var pointsNode: Node?
        var actionsNode: Node?
        var safeStateNode: Node?
        for (key, _, value) in entries {
            switch key {
            case "safe_state": safeStateNode = value
            case "model": profile.model = reader.scalar(value, "model") ?? ""
            case "vendor": profile.vendor = reader.scalar(value, "vendor") ?? ""
            case "kind": profile.kind = reader.scalar(value, "kind") ?? ""
            case "description": profile.description = reader.scalar(value, "description") ?? ""
            case "actions": actionsNode = value
            case "points": pointsNode = value
            default: break
            }
        }
        profile.settings = syntax.parseSettings(entries.filter { syntax.settingKeys.contains($0.key) }, reader: &reader)
        if profile.model.isEmpty { reader.error("device profile needs a 'model'", at: root) }
        guard let pointsNode, let pointEntries = reader.mapping(pointsNode, "points") else {
            reader.error("device profile needs 'points'", at: root)
            return nil
        }
        for (name, keyNode, value) in pointEntries {
            if let point = syntax.parsePoint(name, keyNode: keyNode, value, reader: &reader) {
                profile.points.append(point)
            }
        }
        if let actionsNode {
            if syntax.supportsActions {
                for (name, keyNode, value) in reader.mapping(actionsNode, "actions") ?? [] {
                    if let action = syntax.parseAction(name, keyNode: keyNode, value, reader: &reader) {
                        profile.actions.append(action)
                    }
                }
            } else {
                reader.error("'\(syntax.name)' devices have no actions", at: actionsNode)
            }
        }
        syntax.check(profile.points, entries: pointEntries, reader: &reader)
        if let safeStateNode, let definition = SafeStateDefinition.parse(safeStateNode, reader: &reader) {
            var problems: [Diagnostic] = []
            profile.safeState = definition.bind(to: profile, into: &problems)
            for problem in problems {
                reader.sink.error(problem.message, line: problem.location.line, column: problem.location.column)
            }
        }
        return profile
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
        /// A station instrument (a DMM, a reference gauge) that measures the rack, not a part of it.
        public var isInstrument = false
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
    /// The rack's hazards, watched during every run (bound in `RackConfiguration`).
    public var interlocks: [InterlockDefinition] = []
    public var file: String

    public func group(named name: String) -> DeviceGroup? { groups.first { $0.name == name } }

    /// The rack with a different number of members in some groups (a rack built with 6 power shelves, not 8).
    public func settingCounts(_ counts: [String: Int]) throws(RackSettingError) -> RackProfile {
        var rack = self
        for (name, count) in counts.sorted(by: { $0.key < $1.key }) {
            guard let index = rack.groups.firstIndex(where: { $0.name == name }) else {
                throw RackSettingError(
                    message: "rack '\(id)' has no group '\(name)'; it has "
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

    /// The rack with other models fitted (a station whose CDU is another vendor's), by device or group name.
    public func fitting(_ models: [String: String]) throws(RackSettingError) -> RackProfile {
        var rack = self
        for (name, model) in models.sorted(by: { $0.key < $1.key }) {
            guard model.range(of: #"^[A-Za-z0-9][A-Za-z0-9._-]*$"#, options: .regularExpression) != nil else {
                throw RackSettingError(
                    message: "model '\(model)' for '\(name)' is not a profile name (letters, digits, . _ -)")
            }
            if let index = rack.groups.firstIndex(where: { $0.name == name }) {
                rack.groups[index].model = model
                for member in rack.devices.indices where rack.devices[member].group == name {
                    rack.devices[member].model = model
                }
            } else if let index = rack.devices.firstIndex(where: { $0.name == name && $0.group == nil }) {
                rack.devices[index].model = model
            } else {
                throw RackSettingError(
                    message: "rack '\(id)' has no device or group '\(name)' to fit model '\(model)' to; "
                        + "it has "
                        + (rack.devices.filter { $0.group == nil }.map(\.name) + rack.groups.map(\.name))
                        .joined(separator: ", "))
            }
        }
        return rack
    }

    static func instances(of group: DeviceGroup) -> [DeviceInstance] {
        group.members.enumerated().map { index, name in
            DeviceInstance(
                name: name, model: group.model, description: "\(group.description) \(index + 1) of \(group.count)",
                address: nil, group: group.name)
        }
    }

    public static func load(path: String) throws(DiagnosticsError) -> RackProfile {
        let (sink, source) = YAMLSource.open(path: path)
        var reader = YAMLReader(sink: sink)
        var rack = RackProfile(id: "", title: "", devices: [], file: path)
        if let root = source?.treeForChecking, let entries = reader.mapping(root, "rack profile") {
            reader.rejectUnknownKeys(
                entries, allowed: ["id", "title", "description", "devices", "instruments", "groups", "interlocks"],
                in: "rack profile")
            for (key, _, value) in entries {
                switch key {
                case "id": rack.id = reader.scalar(value, "id") ?? ""
                case "title": rack.title = reader.scalar(value, "title") ?? ""
                case "devices", "instruments":
                    for (name, keyNode, deviceNode) in reader.mapping(value, key) ?? [] {
                        guard let fields = reader.mapping(deviceNode, "device '\(name)'") else { continue }
                        reader.rejectUnknownKeys(
                            fields, allowed: ["model", "description", "address"], in: "device '\(name)'")
                        let model = fields.first { $0.key == "model" }.flatMap { reader.scalar($0.value, "model") }
                        guard let model else {
                            reader.error(
                                "device '\(name)' needs a 'model' naming Fixtures/devices/<model>.yaml", at: keyNode)
                            continue
                        }
                        let description =
                            fields.first { $0.key == "description" }
                            .flatMap { reader.scalar($0.value, "description") } ?? ""
                        var address: Int?
                        if let node = fields.first(where: { $0.key == "address" })?.value,
                            let value = reader.integer(node, "address")
                        {
                            if (1...247).contains(value) {
                                address = value
                            } else {
                                reader.error("address must be a unit id on a shared bus, 1 to 247", at: node)
                            }
                        }
                        rack.devices.append(
                            DeviceInstance(
                                name: name, model: model, description: description,
                                address: address, isInstrument: key == "instruments"))
                    }
                case "groups":
                    for (name, keyNode, groupNode) in reader.mapping(value, "groups") ?? [] {
                        guard let fields = reader.mapping(groupNode, "group '\(name)'") else { continue }
                        reader.rejectUnknownKeys(
                            fields, allowed: ["model", "description", "prefix", "count"], in: "group '\(name)'")
                        func field(_ key: String) -> Node? { fields.first { $0.key == key }?.value }
                        guard let model = field("model").flatMap({ reader.scalar($0, "model") }),
                            let prefix = field("prefix").flatMap({ reader.scalar($0, "prefix") }),
                            let countNode = field("count"), let count = reader.integer(countNode, "count")
                        else {
                            reader.error(
                                "group '\(name)' needs 'model', 'prefix' (member names are prefix01, prefix02, ...) "
                                    + "and 'count'", at: keyNode)
                            continue
                        }
                        if !(1...99).contains(count) { reader.error("count must be 1 to 99", at: countNode) }
                        if prefix.isEmpty || !prefix.allSatisfy({ $0.isLetter || $0 == "_" }) {
                            reader.error(
                                "prefix must be a name of letters (member names are prefix01, prefix02, ...), "
                                    + "not '\(prefix)'", at: field("prefix") ?? keyNode)
                        }
                        let group = DeviceGroup(
                            name: name, model: model, prefix: prefix, count: min(max(count, 1), 99),
                            description: field("description").flatMap { reader.scalar($0, "description") } ?? name)
                        rack.groups.append(group)
                        rack.devices += instances(of: group)
                    }
                case "interlocks": rack.interlocks = InterlockDefinition.parseAll(value, reader: &reader)
                default: break
                }
            }
            if rack.id.isEmpty { reader.error("rack profile needs an 'id'", at: root) }
            var names = Set<String>()
            for device in rack.devices where !names.insert(device.name).inserted {
                reader.error(
                    "device name '\(device.name)' is used twice (a group member names itself prefix01, ...)", at: root)
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
    /// The rack profile's interlocks, bound (a station may override them: `bindInterlocks(_:overrides:)`).
    public var interlocks: [Interlock] = []

    public init(rack: RackProfile, profiles: [String: DeviceProfile], interlocks: [Interlock] = []) {
        self.rack = rack
        self.profiles = profiles
        self.interlocks = interlocks
    }

    /// Loads a rack profile and every device profile it names from `fixtures/devices/`, with the group sizes
    /// `counts` overrides (from a station or a scenario) and the models a station says are fitted (`models`, by
    /// device or group name: `cdu: coolflow-cdu-2000`).
    public static func load(
        rackID: String, fixtures: String, protocols: DeviceProtocols, counts: [String: Int] = [:],
        models: [String: String] = [:]
    ) throws(DiagnosticsError) -> RackConfiguration {
        let rackPath = "\(fixtures)/racks/\(rackID).yaml"
        guard FileManager.default.fileExists(atPath: rackPath) else {
            throw DiagnosticsError([
                Diagnostic(
                    at: SourceLocation(file: rackPath, line: 1, column: 1),
                    "no rack profile '\(rackID)' (looked for \(rackPath))")
            ])
        }
        var rack = try RackProfile.load(path: rackPath)
        do {
            if !counts.isEmpty { rack = try rack.settingCounts(counts) }
            if !models.isEmpty { rack = try rack.fitting(models) }
        } catch {
            throw DiagnosticsError([Diagnostic(at: SourceLocation(file: rackPath, line: 1, column: 1), error.message)])
        }
        var profiles: [String: DeviceProfile] = [:]
        var problems: [Diagnostic] = []
        var attempted = Set<String>()
        for instance in rack.devices where attempted.insert(instance.model).inserted {
            let path = "\(fixtures)/devices/\(instance.model).yaml"
            guard FileManager.default.fileExists(atPath: path) else {
                problems.append(
                    Diagnostic(
                        at: SourceLocation(file: path, line: 1, column: 1),
                        "no device profile '\(instance.model)' for '\(instance.name)' (looked for \(path))"))
                continue
            }
            do {
                profiles[instance.model] = try DeviceProfile.load(path: path, protocols: protocols)
            } catch {
                problems += error.diagnostics
            }
        }
        if !problems.isEmpty { throw DiagnosticsError(problems) }
        var configuration = RackConfiguration(rack: rack, profiles: profiles)
        let (interlocks, interlockProblems) = configuration.bindInterlocks(rack.interlocks)
        if !interlockProblems.isEmpty { throw DiagnosticsError(interlockProblems) }
        configuration.interlocks = interlocks
        return configuration
    }

    /// The device instance and point for `device.point`; `aliases` maps a `for_each` step's member name
    /// (`each`) to a device.
    public func resolve(
        _ reference: String, aliases: [String: String] = [:]
    ) -> (device: String, point: PointDefinition)? {
        guard let (deviceName, profile, pointName) = split(reference, aliases: aliases),
            let point = profile.point(named: pointName)
        else { return nil }
        return (deviceName, point)
    }

    /// The device instance and action for `device.action`.
    public func resolveAction(
        _ reference: String, aliases: [String: String] = [:]
    ) -> (device: String, action: ActionDefinition)? {
        guard let (deviceName, profile, name) = split(reference, aliases: aliases),
            let action = profile.action(named: name)
        else { return nil }
        return (deviceName, action)
    }

    func split(_ reference: String, aliases: [String: String]) -> (String, DeviceProfile, String)? {
        guard let dot = reference.firstIndex(of: ".") else { return nil }
        var deviceName = String(reference[..<dot])
        let member = String(reference[reference.index(after: dot)...])
        if let target = aliases[deviceName] { deviceName = target }
        guard let instance = rack.devices.first(where: { $0.name == deviceName }),
            let profile = profiles[instance.model]
        else { return nil }
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
