import Crypto
import Foundation

/// A named set of limits for one procedure (`Fixtures/limits/<name>.yaml`): the values a rack SKU is judged against
/// instead of the procedure's defaults, reviewed as a file of its own so a new SKU needs no edit to the procedure.
/// A station pins the file by SHA-256; a set is not a deviation, and a `--param` that changes one of its values is.
///
/// ```yaml
/// limits: leak-test-nvl72-hp          # its name: --limits leak-test-nvl72-hp
/// title: High-pressure loop variant (SKU NVL72-HP)
/// procedure: leak-test
/// procedure_version: 1.0.0            # optional: the set applies to this version only
/// values:
///   test_pressure: 350 kPa
///   max_decay: 2.5 kPa
/// ```
public struct LimitSet: Sendable {
    public var name: String
    public var title: String
    public var procedure: String
    public var procedureVersion: String?
    /// Parameter → value as written, with its position for messages.
    public var values: [(parameter: String, value: String, location: SourceLocation)]
    public var file: String
    public var sha256: String

    public static func load(path: String) throws(DiagnosticsError) -> LimitSet {
        let (sink, source) = YAMLSource.open(path: path)
        var reader = YAMLReader(sink: sink)
        var set = LimitSet(
            name: "", title: "", procedure: "", procedureVersion: nil, values: [], file: path, sha256: "")
        if let root = source?.treeForChecking, let entries = reader.mapping(root, "limit set") {
            reader.rejectUnknownKeys(
                entries, allowed: ["limits", "title", "procedure", "procedure_version", "values"], in: "limit set")
            for (key, _, value) in entries {
                switch key {
                case "limits": set.name = reader.scalar(value, "limits") ?? ""
                case "title": set.title = reader.scalar(value, "title") ?? ""
                case "procedure": set.procedure = reader.scalar(value, "procedure") ?? ""
                case "procedure_version": set.procedureVersion = reader.scalar(value, "procedure_version")
                case "values":
                    for (parameter, _, valueNode) in reader.mapping(value, "values") ?? [] {
                        if let text = reader.scalar(valueNode, "value of \(parameter)") {
                            set.values.append((parameter, text, reader.location(of: valueNode)))
                        }
                    }
                default: break
                }
            }
            if set.name.isEmpty { reader.error("a limit set needs 'limits: <name>'", at: root) }
            if set.procedure.isEmpty { reader.error("a limit set names the 'procedure' it is for", at: root) }
            if set.values.isEmpty {
                reader.error("a limit set lists its 'values' (parameter: value with a unit)", at: root)
            }
        }
        if reader.sink.hasErrors || source?.root == nil { throw DiagnosticsError(reader.sink.diagnostics) }
        if let data = FileManager.default.contents(atPath: path) {
            set.sha256 = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        }
        return set
    }

    /// The procedure with this set's values as its defaults (its limits for this SKU), every value checked: a
    /// parameter of the procedure, a limit, of the parameter's unit and within its range. Each problem names the
    /// file, line and column.
    public func apply(to procedure: Procedure) throws(DiagnosticsError) -> Procedure {
        var problems: [Diagnostic] = []
        func problem(_ message: String, at location: SourceLocation) {
            problems.append(Diagnostic(at: location, message))
        }
        let whole = SourceLocation(file: file, line: 1, column: 1)
        if self.procedure != procedure.id {
            problem("limit set '\(name)' is for procedure '\(self.procedure)', not '\(procedure.id)'", at: whole)
        }
        if let version = procedureVersion, version != procedure.version {
            problem(
                "limit set '\(name)' was reviewed for \(procedure.id) \(version); the procedure is \(procedure.version): "
                    + "review the set against it and update procedure_version", at: whole)
        }
        var result = procedure
        let limits = procedure.limitParameters
        for (name, text, location) in values {
            guard let index = result.parameters.firstIndex(where: { $0.name == name }) else {
                problem(
                    "procedure '\(procedure.id)' has no parameter '\(name)'"
                        + (closest(to: name, in: procedure.parameters.map(\.name)).map { "; did you mean '\($0)'?" }
                            ?? ""),
                    at: location)
                continue
            }
            guard limits.contains(name) else {
                problem(
                    "'\(name)' is not a limit of procedure '\(procedure.id)' (it is tunable: pass it with --param)",
                    at: location)
                continue
            }
            if result.parameters[index].text != nil {
                result.parameters[index].text = text
                continue
            }
            do {
                let resolved = try procedure.resolveParameters([name: text])
                if let value = resolved[name] { result.parameters[index].defaultValue = value }
            } catch {
                problem("\(error)", at: location)
            }
        }
        if !problems.isEmpty { throw DiagnosticsError(problems) }
        return result
    }
}

/// The limit set a run was judged against, as the record, report and signature carry it.
public struct LimitSetRecord: Sendable, Hashable, Codable {
    public var name: String
    public var title: String
    public var file: String
    public var sha256: String
    /// Parameter → the set's value, and the procedure's own.
    public var values: [String: String]
    public var procedureValues: [String: String]

    public init(
        name: String, title: String, file: String, sha256: String, values: [String: String],
        procedureValues: [String: String]
    ) {
        self.name = name
        self.title = title
        self.file = file
        self.sha256 = sha256
        self.values = values
        self.procedureValues = procedureValues
    }

    enum CodingKeys: String, CodingKey {
        case name, title, file, sha256, values
        case procedureValues = "procedure_values"
    }
}
