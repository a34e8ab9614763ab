import Foundation
import Yams

// What a rack profile and a device profile say about safety, as written: interlocks (a rack's hazards, watched
// during every run) and safe states (where each device must be left). Bound against the profiles in
// `SafetyBinding.swift`; watched by `Supervisor`.

/// One thing a reaction or a safe state does to the rack, as written: `set: cdu.pump_enable, value: off` or
/// `action: compute_trays.reset, value: ForceOff`. In a device profile's safe state the names are the device's own
/// (`set: pump_enable`).
public struct SafetyActionDefinition: Sendable {
    public enum Kind: String, Sendable { case set, action }
    public var kind: Kind
    /// `device.point` or `group.action` (in a rack or station), `point` or `action` (in a device profile).
    public var target: String
    public var value: Expression?
    public var location: SourceLocation

    /// Reads a list of actions: each `{set: point, value: v}` or `{action: name, value: v}`.
    static func parseList(_ node: Node, _ what: String, reader: inout YAMLReader) -> [SafetyActionDefinition] {
        var actions: [SafetyActionDefinition] = []
        for item in reader.sequence(node, what) ?? [] {
            guard let fields = reader.mapping(item, "\(what) entry") else { continue }
            reader.rejectUnknownKeys(fields, allowed: ["set", "action", "value"], in: "\(what) entry")
            let set = fields.first { $0.key == "set" }
            let action = fields.first { $0.key == "action" }
            let valueNode = fields.first { $0.key == "value" }?.value
            guard (set == nil) != (action == nil), let (_, keyNode, targetNode) = set ?? action,
                let target = reader.scalar(targetNode, set != nil ? "set" : "action")
            else {
                reader.error("each \(what) entry needs either 'set: point' with 'value:', or 'action: name'", at: item)
                continue
            }
            let kind: Kind = set != nil ? .set : .action
            if kind == .set, valueNode == nil {
                reader.error("'set: \(target)' needs the 'value:' to write", at: keyNode)
                continue
            }
            let value = valueNode.flatMap { reader.expression($0, "value") }
            if valueNode != nil, value == nil { continue }
            actions.append(
                SafetyActionDefinition(kind: kind, target: target, value: value, location: reader.location(of: keyNode))
            )
        }
        return actions
    }
}

/// An interlock as a rack profile or a station writes it. In a station, every field is optional: the station's
/// entry overrides the rack's fields of the same name (a faster poll on this line) or, for a new name, adds one.
public struct InterlockDefinition: Sendable {
    public var name: String
    public var description: String?
    /// When true, the rack is unsafe: `any(compute_trays.coldplate_leak == Critical)`.
    public var condition: Expression?
    public var poll: Duration?
    /// How long the interlock's points may go unread before losing them is itself a trip.
    public var staleAfter: Duration?
    public var reaction: [SafetyActionDefinition]?
    public var location: SourceLocation

    public static let keys = ["description", "trip_if", "poll", "stale_after", "reaction"]

    /// The rack's interlock with a station's fields over it.
    public func overridden(by other: InterlockDefinition) -> InterlockDefinition {
        var merged = self
        if let description = other.description { merged.description = description }
        if let condition = other.condition { merged.condition = condition }
        if let poll = other.poll { merged.poll = poll }
        if let staleAfter = other.staleAfter { merged.staleAfter = staleAfter }
        if let reaction = other.reaction { merged.reaction = reaction }
        merged.location = other.location
        return merged
    }

    /// Reads `interlocks:` (a mapping of name to fields).
    public static func parseAll(_ node: Node, reader: inout YAMLReader) -> [InterlockDefinition] {
        var interlocks: [InterlockDefinition] = []
        for (name, keyNode, value) in reader.mapping(node, "interlocks") ?? [] {
            guard name.range(of: #"^[A-Za-z0-9][A-Za-z0-9_.-]*$"#, options: .regularExpression) != nil else {
                reader.error("interlock name '\(name)' must be letters, digits, '-', '_' or '.'", at: keyNode)
                continue
            }
            guard let fields = reader.mapping(value, "interlock '\(name)'") else { continue }
            reader.rejectUnknownKeys(fields, allowed: keys, in: "interlock '\(name)'")
            var interlock = InterlockDefinition(name: name, location: reader.location(of: keyNode))
            for (key, _, field) in fields {
                switch key {
                case "description": interlock.description = reader.scalar(field, "description")
                case "trip_if": interlock.condition = reader.expression(field, "trip_if")
                case "poll": interlock.poll = reader.duration(field, "poll", longest: .seconds(60))
                case "stale_after": interlock.staleAfter = reader.duration(field, "stale_after", longest: .seconds(600))
                case "reaction":
                    interlock.reaction = SafetyActionDefinition.parseList(field, "reaction", reader: &reader)
                default: break
                }
            }
            interlocks.append(interlock)
        }
        return interlocks
    }
}

/// A device profile's safe state, as written: what to do to reach it, and the check that proves it.
///
/// ```yaml
/// safe_state:
///   drive:
///     - {set: pump_enable, value: off}
///     - {set: isolation_valve, value: open}
///     - {set: mode, value: automatic}
///   check: not pump_enable and valve_open and mode_state == automatic
///   settle: 30 s
/// ```
public struct SafeStateDefinition: Sendable {
    public var drive: [SafetyActionDefinition]
    public var check: Expression
    /// How long the device may take to show the check true after being driven (a valve's travel).
    public var settle: Duration
    public var location: SourceLocation

    static func parse(_ node: Node, reader: inout YAMLReader) -> SafeStateDefinition? {
        guard let fields = reader.mapping(node, "safe_state") else { return nil }
        reader.rejectUnknownKeys(fields, allowed: ["drive", "check", "settle"], in: "safe_state")
        var drive: [SafetyActionDefinition] = []
        var check: Expression?
        var settle = Duration.seconds(30)
        for (key, _, field) in fields {
            switch key {
            case "drive": drive = SafetyActionDefinition.parseList(field, "drive", reader: &reader)
            case "check": check = reader.expression(field, "check")
            case "settle": settle = reader.duration(field, "settle", longest: .seconds(600)) ?? settle
            default: break
            }
        }
        guard let check else {
            reader.error("safe_state needs a 'check' that reads the device back (pump_enable == off)", at: node)
            return nil
        }
        return SafeStateDefinition(drive: drive, check: check, settle: settle, location: reader.location(of: node))
    }
}
