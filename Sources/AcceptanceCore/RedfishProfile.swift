import Foundation
import Yams

/// How a device is reached.
public enum DeviceTransport: String, Sendable, Hashable {
    case modbus, redfish
}

/// A value inside a Redfish resource: `/redfish/v1/Systems/System_0` and `/PowerState`.
public struct RedfishLocation: Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var pointer: JSONPointer

    public init(path: String, pointer: JSONPointer) {
        self.path = path
        self.pointer = pointer
    }

    public var description: String { "\(path) \(pointer)" }
}

/// A Redfish action a procedure can invoke: `reset` is `#ComputerSystem.Reset` on the system, with `ResetType`.
public struct ActionDefinition: Sendable, Hashable {
    public var name: String
    public var description: String
    /// The resource whose `Actions` object names the action's target.
    public var path: String
    /// `ComputerSystem.Reset`, as in `Actions["#ComputerSystem.Reset"]`.
    public var action: String
    /// The parameter the step's value is sent as (`ResetType`); nil for actions without one.
    public var parameter: String?
    /// The values the parameter may take.
    public var values: [String]
    public var location: SourceLocation?
}

extension DeviceProfile {
    static let redfishPointKeys = ["description", "path", "pointer", "type", "unit", "access", "states", "if_absent"]

    /// The value kinds a Redfish point can have; `RegisterType` carries them so expressions type-check alike.
    static let redfishTypes: [String: RegisterType] = ["string": .string, "number": .float32, "integer": .int32, "bool": .bool]

    static func parseRedfishPoint(_ name: String, keyNode: Node, _ node: Node, reader: inout YAMLReader) -> PointDefinition? {
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
            reader.error("point '\(name)' needs a 'pointer' (a JSON pointer into the resource, such as /PowerState)",
                         at: keyNode)
            return nil
        }
        guard let pointer = JSONPointer(pointerText) else {
            reader.error("'\(pointerText)' is not a JSON pointer: it starts with '/'", at: pointerNode)
            return nil
        }
        var point = PointDefinition(name: name, table: .holdingRegister, address: 0, type: .string,
                                    access: .readOnly, location: reader.location(of: keyNode))
        point.resource = RedfishLocation(path: path, pointer: pointer)
        var typeGiven = false
        for (key, _, valueNode) in entries {
            switch key {
            case "description": point.description = reader.scalar(valueNode, "description") ?? ""
            case "type":
                guard let text = reader.scalar(valueNode, "type") else { break }
                guard let type = redfishTypes[text] else {
                    reader.error("unknown type '\(text)'; use \(redfishTypes.keys.sorted().joined(separator: ", "))", at: valueNode)
                    break
                }
                point.type = type
                typeGiven = true
            case "unit":
                guard let symbol = reader.scalar(valueNode, "unit") else { break }
                if let unit = PhysicalUnit.named(symbol) { point.unit = unit } else {
                    reader.error("unknown unit '\(symbol)'", at: valueNode)
                }
            case "access":
                guard let text = reader.scalar(valueNode, "access") else { break }
                if let access = PointAccess(rawValue: text) { point.access = access } else {
                    reader.error("access must be read-only or read-write", at: valueNode)
                }
            case "states":
                guard let items = reader.sequence(valueNode, "states") else { break }
                for (index, item) in items.enumerated() {
                    if let state = reader.scalar(item, "state") { point.states[index] = state }
                }
            case "if_absent":
                point.ifAbsent = reader.scalar(valueNode, "if_absent")
            default: break
            }
        }
        if !typeGiven, point.unit != nil { point.type = .float32 }
        if !point.states.isEmpty, point.type != .string {
            reader.error("a point with states is a string enumeration; drop 'type'", at: keyNode)
        }
        if point.unit != nil, point.type == .string || point.type == .bool {
            reader.error("a \(point.type == .bool ? "bool" : "string") point has no unit", at: keyNode)
        }
        if let absent = point.ifAbsent, !point.states.isEmpty, !point.states.values.contains(absent),
           let node = value("if_absent") {
            reader.error("if_absent '\(absent)' is not one of the states (\(point.stateNames.joined(separator: ", ")))", at: node)
        }
        return point
    }

    static func parseAction(_ name: String, keyNode: Node, _ node: Node, reader: inout YAMLReader) -> ActionDefinition? {
        guard let entries = reader.mapping(node, "action '\(name)'") else { return nil }
        reader.rejectUnknownKeys(entries, allowed: ["description", "path", "action", "parameter", "values"], in: "action '\(name)'")
        func value(_ key: String) -> Node? { entries.first { $0.key == key }?.value }
        guard let path = value("path").flatMap({ reader.scalar($0, "path") }),
              let action = value("action").flatMap({ reader.scalar($0, "action") }) else {
            reader.error("action '\(name)' needs 'path' (the resource) and 'action' (such as ComputerSystem.Reset)", at: keyNode)
            return nil
        }
        let values = value("values").flatMap { reader.sequence($0, "values") }?.compactMap { reader.scalar($0, "value") } ?? []
        let parameter = value("parameter").flatMap { reader.scalar($0, "parameter") }
        if parameter != nil, values.isEmpty {
            reader.error("action '\(name)' has a parameter; list its allowed 'values'", at: keyNode)
        }
        return ActionDefinition(name: name, description: value("description").flatMap { reader.scalar($0, "description") } ?? "",
                                path: path, action: action.hasPrefix("#") ? String(action.dropFirst()) : action,
                                parameter: parameter, values: values, location: reader.location(of: keyNode))
    }
}
