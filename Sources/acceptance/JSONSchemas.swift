import AcceptanceCore
import ArgumentParser
import Harness

/// The documents `--json` prints, one JSON Schema (draft 2020-12) each, versioned: every document says which
/// (`"schema": "acceptance.list/1"`). A change that removes or retypes a field is a new version; a field added is
/// not. `acceptance schema NAME` prints one, so a CI script can validate what it parses.
enum JSONSchemas {
    static let draft = "https://json-schema.org/draft/2020-12/schema"

    /// Every schema by name (`list`, `points`, `read`, `verify`, `archive-list`, `archive-show`).
    static let all: [String: String] = [
        "list": list, "points": points, "read": read, "verify": verify, "archive-list": archiveList,
        "archive-show": archiveShow,
    ]

    /// The name a document carries: `acceptance.list/1`.
    static func id(_ name: String) -> String { "acceptance.\(name)/1" }

    static func header(_ name: String, _ title: String) -> String {
        """
        "$schema": "\(draft)",
          "$id": "https://acceptance.example/schemas/\(name)/1",
          "title": "\(title)",
          "type": "object",
        """
    }

    static let list = """
        {
          \(header("list", "acceptance list --json: the procedures and suites of the procedures folder"))
          "required": ["schema", "procedures", "suites"],
          "additionalProperties": false,
          "properties": {
            "schema": {"const": "acceptance.list/1"},
            "procedures": {"type": "array", "items": {
              "type": "object",
              "required": ["id", "file", "valid"],
              "additionalProperties": false,
              "properties": {
                "id": {"type": "string"},
                "file": {"type": "string"},
                "valid": {"type": "boolean", "description": "false: run acceptance validate FILE"},
                "version": {"type": "string"},
                "title": {"type": "string"},
                "rack": {"type": "string"},
                "estimated_duration_s": {"type": "number", "minimum": 0},
                "parameters": {"type": "array", "items": {
                  "type": "object", "required": ["name", "default", "limit"], "additionalProperties": false,
                  "properties": {
                    "name": {"type": "string"}, "default": {"type": "string"},
                    "limit": {"type": "boolean", "description": "changing it is a deviation"}
                  }}}
              }}},
            "suites": {"type": "array", "items": {
              "type": "object",
              "required": ["id", "file", "valid"],
              "additionalProperties": false,
              "properties": {
                "id": {"type": "string"}, "file": {"type": "string"}, "valid": {"type": "boolean"},
                "title": {"type": "string"}, "version": {"type": "string"},
                "procedures": {"type": "array", "items": {"type": "string"}}
              }}}
          }
        }
        """

    static let points = """
        {
          \(header("points", "acceptance points --json: every point of the rack's devices (or of one)"))
          "required": ["schema", "rack", "devices"],
          "additionalProperties": false,
          "properties": {
            "schema": {"const": "acceptance.points/1"},
            "rack": {"type": "string"},
            "devices": {"type": "array", "items": {
              "type": "object", "required": ["device", "model", "points"], "additionalProperties": false,
              "properties": {
                "device": {"type": "string"},
                "model": {"type": "string"},
                "points": {"type": "array", "items": {
                  "type": "object", "required": ["point", "where", "type", "access"], "additionalProperties": false,
                  "properties": {
                    "point": {"type": "string", "pattern": "^[^.]+\\\\..+$"},
                    "where": {"type": "string", "description": "register, URL or SCPI command"},
                    "type": {"type": "string"},
                    "unit": {"type": "string"},
                    "access": {"enum": ["read-only", "read-write"]},
                    "states": {"type": "object", "additionalProperties": {"type": "string"}},
                    "description": {"type": "string"}
                  }}}
              }}}
          }
        }
        """

    static let read = """
        {
          \(header("read", "acceptance read --json: each point read now, or why it could not be"))
          "required": ["schema", "station", "simulated", "readings"],
          "additionalProperties": false,
          "properties": {
            "schema": {"const": "acceptance.read/1"},
            "station": {"type": "string"},
            "simulated": {"type": "boolean"},
            "readings": {"type": "array", "items": {
              "type": "object", "required": ["point", "where"], "additionalProperties": false,
              "properties": {
                "point": {"type": "string"},
                "where": {"type": "string"},
                "value": {"type": ["number", "string", "boolean", "null"]},
                "unit": {"type": "string"},
                "text": {"type": "string", "description": "the value as a person reads it, with its unit"},
                "error": {"type": "string", "description": "present when the point could not be read"}
              },
              "oneOf": [{"required": ["value", "text"]}, {"required": ["error"]}]
            }}
          }
        }
        """

    static let verify = """
        {
          \(header("verify", "acceptance verify --json: what was checked in a report bundle, and what it says"))
          "required": ["schema", "bundle", "verified", "checks", "simulated", "deviations", "approvals"],
          "additionalProperties": false,
          "properties": {
            "schema": {"const": "acceptance.verify/1"},
            "bundle": {"type": "string"},
            "verified": {"type": "boolean"},
            "run_id": {"type": "string"},
            "rack_serial": {"type": "string"},
            "verdict": {"enum": ["PASS", "FAIL", "ERROR", "ABORTED"]},
            "procedure": {"type": "string"},
            "procedure_version": {"type": "string"},
            "started": {"type": "string", "format": "date-time"},
            "simulated": {"type": "boolean"},
            "signer": {"type": "string"},
            "statement_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "deviations": {"type": "array", "items": {"type": "string"}},
            "approvals": {"type": "array", "items": {
              "type": "object", "required": ["approver", "role", "meaning", "approved_at"], "additionalProperties": false,
              "properties": {
                "approver": {"type": "string"}, "role": {"type": "string"}, "meaning": {"type": "string"},
                "approved_at": {"type": "string"}
              }}},
            "checks": {"type": "array", "items": {
              "type": "object", "required": ["passed", "text"], "additionalProperties": false,
              "properties": {"passed": {"type": "boolean"}, "text": {"type": "string"}}
            }}
          }
        }
        """

    /// One archived run, as `archive list` and `archive show` give it.
    static let archivedRun = """
        {
              "type": "object",
              "required": ["run_id", "attestation_sha256", "procedure", "procedure_version", "verdict", "station",
                           "started", "approved", "added_at"],
              "additionalProperties": false,
              "properties": {
                "run_id": {"type": "string"},
                "attestation_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "rack_serial": {"type": "string"},
                "procedure": {"type": "string"},
                "procedure_version": {"type": "string"},
                "verdict": {"enum": ["PASS", "FAIL", "ERROR", "ABORTED", "?"]},
                "station": {"type": "string"},
                "started": {"type": "string", "format": "date-time"},
                "signer": {"type": "string"},
                "approved": {"type": "boolean"},
                "added_at": {"type": "string", "format": "date-time"}
              }
            }
        """

    static let archiveList = """
        {
          \(header("archive-list", "acceptance archive list --json: archived runs, oldest first"))
          "required": ["schema", "archive", "runs"],
          "additionalProperties": false,
          "properties": {
            "schema": {"const": "acceptance.archive-list/1"},
            "archive": {"type": "string"},
            "runs": {"type": "array", "items": \(archivedRun)}
          }
        }
        """

    static let archiveShow = """
        {
          \(header("archive-show", "acceptance archive show --json: one archived run and its files"))
          "required": ["schema", "archive", "run", "files"],
          "additionalProperties": false,
          "properties": {
            "schema": {"const": "acceptance.archive-show/1"},
            "archive": {"type": "string"},
            "run": \(archivedRun),
            "files": {"type": "array", "items": {
              "type": "object", "required": ["name", "sha256", "size"], "additionalProperties": false,
              "properties": {
                "name": {"type": "string"}, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "size": {"type": "integer", "minimum": 0}
              }}}
          }
        }
        """
}

/// Prints a `--json` document: one line, with its schema name.
enum JSONOutput {
    static func write(_ name: String, _ members: [String: JSONValue]) {
        var document = members
        document["schema"] = .string(JSONSchemas.id(name))
        ConsoleOutput.standardOutput.write(JSONValue.object(document).serialized + "\n")
    }

    /// `"a"`, or nothing for nil: optional members are left out, never null.
    static func optional(_ text: String?) -> JSONValue? { text.map { .string($0) } }
}

struct SchemaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract:
            "Print the JSON Schema of a --json document (list, points, read, verify, archive-list, archive-show).",
        discussion: "Every --json document carries its schema's name and version: \"schema\": \"acceptance.list/1\".")

    @Argument(help: "Which document's schema (without it: the names).")
    var name: String?

    func run() throws {
        guard let name else {
            ConsoleOutput.standardOutput.write(
                JSONSchemas.all.keys.sorted().map { "\($0)  \(JSONSchemas.id($0))" }.joined(separator: "\n") + "\n")
            return
        }
        guard let schema = JSONSchemas.all[name] else {
            var message = "no schema '\(name)'"
            if let suggestion = closest(to: name, in: Array(JSONSchemas.all.keys)) {
                message += "; did you mean '\(suggestion)'?"
            }
            throw ValidationError(message + " (schemas: \(JSONSchemas.all.keys.sorted().joined(separator: ", ")))")
        }
        ConsoleOutput.standardOutput.write(schema + "\n")
    }
}
