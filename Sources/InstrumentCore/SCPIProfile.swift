import AcceptanceCore
import Foundation
import Yams

/// How an instrument's reply becomes a value: a number (SCPI NR1/NR2/NR3, `+5.40000000E+01`), text, or a boolean
/// (`1`/`0`, `ON`/`OFF`). `field` picks one of several comma-separated values (0-based).
public struct SCPIParseRule: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case number, text, bool
    }

    public var kind: Kind
    public var field: Int?

    public init(kind: Kind, field: Int? = nil) {
        self.kind = kind
        self.field = field
    }
}

/// Where an instrument's value comes from: the SCPI query that reads it, and for a writable point the command that
/// sets it (`{value}` is replaced by the value in the point's unit).
public struct SCPICommand: PointAddress {
    public var query: String?
    public var write: String?
    public var parse: SCPIParseRule

    public init(query: String?, write: String? = nil, parse: SCPIParseRule) {
        self.query = query
        self.write = write
        self.parse = parse
    }

    public var description: String { [query, write].compactMap { $0 }.joined(separator: " / ") }
    public var layout: String { parse.kind.rawValue + (parse.field.map { " field \($0)" } ?? "") }
}

/// An instrument's device-wide settings: commands sent at connect (after `*CLS`), the error query read after every
/// command, and how long one answer may take.
public struct SCPISettings: DeviceSettings, Sendable, Hashable {
    public var configure: [String] = []
    public var errorQuery = "SYST:ERR?"
    public var timeout: Duration = .seconds(2)
    /// The `*IDN?` model must match this (a station bound to the wrong instrument is refused), if given.
    public var identity: String?
    /// The USB vendor:product the model enumerates with (`2a8d:0101`), so a scan can name the profile.
    public var usbID: String?

    public init() {}
}

extension PointDefinition {
    /// The point's SCPI commands; nil for a point another transport reaches.
    public var scpi: SCPICommand? { address as? SCPICommand }
}

extension DeviceProfile {
    /// The profile's SCPI settings (defaults where it gives none).
    public var scpiSettings: SCPISettings { settings as? SCPISettings ?? SCPISettings() }
}

/// SCPI instrument profiles (`protocol: scpi`): points are queries with a unit and a parse rule
/// (`dc_voltage: {query: "MEAS:VOLT:DC?", unit: V}`), writable points have a command, and `configure:` lists the
/// commands sent at connect. The instrument is reached over USBTMC (or, simulated, in memory).
public struct SCPIProfileSyntax: DeviceProtocolSyntax {
    public init() {}

    public var name: String { "scpi" }
    public var settingKeys: [String] { ["configure", "error_query", "timeout", "identity", "usb"] }

    static let pointKeys = ["description", "query", "write", "unit", "parse", "field", "access", "states"]

    public func parseSettings(
        _ entries: [(key: String, keyNode: Node, value: Node)], reader: inout YAMLReader
    ) -> (any DeviceSettings)? {
        var settings = SCPISettings()
        for (key, _, value) in entries {
            switch key {
            case "configure":
                for item in reader.sequence(value, "configure") ?? [] {
                    guard let command = reader.scalar(item, "a configuration command") else { continue }
                    if let problem = Self.problem(command: command) {
                        reader.error(problem, at: item)
                    } else if command.contains("?") {
                        reader.error(
                            "'\(command)' is a query; configure lists commands that set the instrument up", at: item)
                    } else {
                        settings.configure.append(command)
                    }
                }
            case "error_query":
                guard let query = reader.scalar(value, "error_query") else { break }
                if let problem = Self.problem(command: query)
                    ?? (query.hasSuffix("?") ? nil : "'\(query)' is not a query")
                {
                    reader.error(problem, at: value)
                } else {
                    settings.errorQuery = query
                }
            case "timeout":
                guard let quantity = reader.quantity(value, "timeout") else { break }
                if let duration = quantity.duration, duration > .zero, duration <= .seconds(60) {
                    settings.timeout = duration
                } else {
                    reader.error("timeout must be above zero and at most 60 s, such as '2 s'", at: value)
                }
            case "identity": settings.identity = reader.scalar(value, "identity")
            case "usb":
                guard let text = reader.scalar(value, "usb") else { break }
                if text.range(of: "^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$", options: .regularExpression) != nil {
                    settings.usbID = text.lowercased()
                } else {
                    reader.error("usb is the model's vendor:product in hex, such as 2a8d:0101", at: value)
                }
            default: break
            }
        }
        return settings
    }

    /// Why `command` cannot be sent as one SCPI message (empty, a line break, a control character), or nil.
    static func problem(command: String) -> String? {
        if command.trimmingCharacters(in: .whitespaces).isEmpty { return "an SCPI command cannot be empty" }
        if command.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "an SCPI command is one line, without control characters"
        }
        if command.utf8.count > 256 { return "an SCPI command here is at most 256 bytes" }
        return nil
    }

    public func parsePoint(_ name: String, keyNode: Node, _ node: Node, reader: inout YAMLReader) -> PointDefinition? {
        guard let entries = reader.mapping(node, "point '\(name)'") else { return nil }
        reader.rejectUnknownKeys(entries, allowed: Self.pointKeys, in: "point '\(name)'")
        func field(_ key: String) -> Node? { entries.first { $0.key == key }?.value }
        var query: String?
        var write: String?
        if let node = field("query"), let text = reader.scalar(node, "query") {
            if let problem = Self.problem(command: text) ?? (text.hasSuffix("?") ? nil : "'\(text)' is not a query") {
                reader.error(problem, at: node)
            } else {
                query = text
            }
        }
        if let node = field("write"), let text = reader.scalar(node, "write") {
            if let problem = Self.problem(command: text) {
                reader.error(problem, at: node)
            } else if !text.contains("{value}") {
                reader.error("a write command names where the value goes: 'VOLT:RANG {value}'", at: node)
            } else {
                write = text
            }
        }
        guard query != nil || write != nil else {
            reader.error("point '\(name)' needs a 'query' (such as MEAS:VOLT:DC?) or a 'write' command", at: keyNode)
            return nil
        }
        var rule = SCPIParseRule(kind: .number)
        var point = PointDefinition(
            name: name, kind: .number, access: write == nil ? .readOnly : .readWrite,
            address: SCPICommand(query: query, write: write, parse: rule), location: reader.location(of: keyNode))
        var parseGiven = false
        for (key, _, value) in entries {
            switch key {
            case "description": point.description = reader.scalar(value, "description") ?? ""
            case "unit": if let unit = reader.unit(value) { point.unit = unit }
            case "parse":
                guard let text = reader.scalar(value, "parse") else { break }
                guard let kind = SCPIParseRule.Kind(rawValue: text) else {
                    reader.error(
                        "unknown parse rule '\(text)'; use "
                            + SCPIParseRule.Kind.allCases.map(\.rawValue).joined(separator: ", "), at: value)
                    break
                }
                rule.kind = kind
                parseGiven = true
            case "field":
                guard let index = reader.integer(value, "field") else { break }
                if (0...63).contains(index) {
                    rule.field = index
                } else {
                    reader.error("field is the 0-based position among comma-separated values, 0 to 63", at: value)
                }
            case "access":
                if let access = reader.access(value) { point.access = access }
            case "states":
                for (index, item) in (reader.sequence(value, "states") ?? []).enumerated() {
                    if let state = reader.scalar(item, "state") { point.states[index] = state }
                }
            default: break
            }
        }
        if !parseGiven, !point.states.isEmpty { rule.kind = .text }
        if point.unit != nil, rule.kind != .number {
            reader.error("only a number has a unit; parse: \(rule.kind.rawValue) reads none", at: keyNode)
        }
        if point.access == .readWrite, write == nil {
            reader.error("point '\(name)' is read-write but has no 'write' command", at: keyNode)
        }
        if query == nil, point.access == .readOnly {
            reader.error("point '\(name)' has no query, so it cannot be read-only", at: keyNode)
        }
        point.kind =
            switch rule.kind {
            case .number: .number
            case .text: .text
            case .bool: .bool
            }
        point.address = SCPICommand(query: query, write: write, parse: rule)
        return point
    }
}
