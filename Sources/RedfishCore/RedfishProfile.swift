import AcceptanceCore
import Foundation
import Yams

/// The kind of JSON value a Redfish point reads.
public enum RedfishValueType: String, Sendable, Hashable, CaseIterable {
    case string, number, integer, bool

    var kind: PointValueKind {
        switch self {
        case .string: .text
        case .number, .integer: .number
        case .bool: .bool
        }
    }
}

/// A value inside a Redfish resource: `/redfish/v1/Systems/System_0` and `/PowerState`.
public struct RedfishLocation: PointAddress {
    public var path: String
    public var pointer: JSONPointer
    public var type: RedfishValueType
    /// The state to report when the resource does not exist (404), such as `Absent` for a processor that is not
    /// fitted. Without it a missing resource is a device error.
    public var ifAbsent: String?

    public init(path: String, pointer: JSONPointer, type: RedfishValueType = .string, ifAbsent: String? = nil) {
        self.path = path
        self.pointer = pointer
        self.type = type
        self.ifAbsent = ifAbsent
    }

    public var description: String { "\(path) \(pointer)" }
    public var layout: String { type.rawValue }
}

/// Where a Redfish action is sent: `#ComputerSystem.Reset` advertised by the resource at `path`.
public struct RedfishActionTarget: ActionTarget {
    /// The resource whose `Actions` object names the action's target.
    public var path: String
    /// `ComputerSystem.Reset`, as in `Actions["#ComputerSystem.Reset"]`.
    public var action: String

    public init(path: String, action: String) {
        self.path = path
        self.action = action
    }

    public var description: String { "#\(action) on \(path)" }
}

extension PointDefinition {
    /// The point's resource and pointer; nil for a point another transport reaches.
    public var resource: RedfishLocation? { address as? RedfishLocation }
}

extension ActionDefinition {
    /// The action's Redfish target; nil for an action of another transport.
    public var redfish: RedfishActionTarget? { target as? RedfishActionTarget }
}

/// Redfish device profiles (`protocol: redfish`): points are values in resources (`path` + JSON `pointer`), and
/// actions are POSTs to an advertised target.
public struct RedfishProfileSyntax: DeviceProtocolSyntax {
    public init() {}

    public var name: String { "redfish" }
    public var supportsActions: Bool { true }

    public func parsePoint(_ name: String, keyNode: Node, _ node: Node, reader: inout YAMLReader) -> PointDefinition? {
        DeviceProfile.parseRedfishPoint(name, keyNode: keyNode, node, reader: &reader)
    }

    public func parseAction(_ name: String, keyNode: Node, _ node: Node, reader: inout YAMLReader) -> ActionDefinition?
    {
        DeviceProfile.parseAction(name, keyNode: keyNode, node, reader: &reader)
    }
}

extension DeviceProfile {
    static let redfishPointKeys = ["description", "path", "pointer", "type", "unit", "access", "states", "if_absent"]

    static let redfishTypes: [String: RedfishValueType] = [
        "string": .string, "number": .number, "integer": .integer,
        "bool": .bool,
    ]

    static func parseRedfishPoint(
        _ name: String, keyNode: Node, _ node: Node, reader: inout YAMLReader
    ) -> PointDefinition? {
        guard let entries = reader.mapping(node, "point '\(name)'") else { return nil }
        reader.rejectUnknownKeys(entries, allowed: redfishPointKeys, in: "point '\(name)'")
        func value(_ key: String) -> Node? { entries.first { $0.key == key }?.value }
        guard let pathNode = value("path"), let path = reader.scalar(pathNode, "path") else {
            reader.error("point '\(name)' needs a 'path' (the resource, /redfish/v1/...)", at: keyNode)
            return nil
        }
        if !path.hasPrefix("/redfish/v1") {
            reader.error("a Redfish resource path starts with /redfish/v1", at: pathNode)
        }
        guard let pointerNode = value("pointer"), let pointerText = reader.scalar(pointerNode, "pointer") else {
            reader.error(
                "point '\(name)' needs a 'pointer' (a JSON pointer into the resource, such as /PowerState)",
                at: keyNode)
            return nil
        }
        guard let pointer = JSONPointer(pointerText) else {
            reader.error("'\(pointerText)' is not a JSON pointer: it starts with '/'", at: pointerNode)
            return nil
        }
        var location = RedfishLocation(path: path, pointer: pointer)
        var point = PointDefinition(
            name: name, kind: .text, access: .readOnly, address: location,
            location: reader.location(of: keyNode))
        var typeGiven = false
        for (key, _, valueNode) in entries {
            switch key {
            case "description": point.description = reader.scalar(valueNode, "description") ?? ""
            case "type":
                guard let text = reader.scalar(valueNode, "type") else { break }
                guard let type = redfishTypes[text] else {
                    reader.error(
                        "unknown type '\(text)'; use \(redfishTypes.keys.sorted().joined(separator: ", "))",
                        at: valueNode)
                    break
                }
                location.type = type
                typeGiven = true
            case "unit":
                if let unit = reader.unit(valueNode) { point.unit = unit }
            case "access":
                if let access = reader.access(valueNode) { point.access = access }
            case "states":
                guard let items = reader.sequence(valueNode, "states") else { break }
                for (index, item) in items.enumerated() {
                    guard let state = reader.scalar(item, "state") else { continue }
                    if point.states.values.contains(state) {
                        reader.error("state '\(state)' is listed twice", at: item)
                        continue
                    }
                    point.states[index] = state
                }
            case "if_absent":
                location.ifAbsent = reader.scalar(valueNode, "if_absent")
            default: break
            }
        }
        if !typeGiven, point.unit != nil { location.type = .number }
        if !point.states.isEmpty, location.type != .string {
            reader.error("a point with states is a string enumeration; drop 'type'", at: keyNode)
        }
        if point.unit != nil, location.type == .string || location.type == .bool {
            reader.error("a \(location.type == .bool ? "bool" : "string") point has no unit", at: keyNode)
        }
        point.address = location
        point.kind = location.type.kind
        if let absent = location.ifAbsent, !point.states.isEmpty, !point.states.values.contains(absent),
            let node = value("if_absent")
        {
            reader.error(
                "if_absent '\(absent)' is not one of the states (\(point.stateNames.joined(separator: ", ")))", at: node
            )
        }
        return point
    }

    static func parseAction(_ name: String, keyNode: Node, _ node: Node, reader: inout YAMLReader) -> ActionDefinition?
    {
        guard let entries = reader.mapping(node, "action '\(name)'") else { return nil }
        reader.rejectUnknownKeys(
            entries, allowed: ["description", "path", "action", "parameter", "values"], in: "action '\(name)'")
        func value(_ key: String) -> Node? { entries.first { $0.key == key }?.value }
        guard let path = value("path").flatMap({ reader.scalar($0, "path") }),
            let action = value("action").flatMap({ reader.scalar($0, "action") })
        else {
            reader.error(
                "action '\(name)' needs 'path' (the resource) and 'action' (such as ComputerSystem.Reset)", at: keyNode)
            return nil
        }
        let values =
            value("values").flatMap { reader.sequence($0, "values") }?.compactMap { reader.scalar($0, "value") } ?? []
        let parameter = value("parameter").flatMap { reader.scalar($0, "parameter") }
        if parameter != nil, values.isEmpty {
            reader.error("action '\(name)' has a parameter; list its allowed 'values'", at: keyNode)
        }
        return ActionDefinition(
            name: name, description: value("description").flatMap { reader.scalar($0, "description") } ?? "",
            parameter: parameter, values: values,
            target: RedfishActionTarget(
                path: path,
                action: action.hasPrefix("#") ? String(action.dropFirst()) : action),
            location: reader.location(of: keyNode))
    }
}
