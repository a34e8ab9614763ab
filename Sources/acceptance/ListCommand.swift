import AcceptanceCore
import ArgumentParser
import Foundation
import Harness

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List procedures with title, version and estimated duration."
    )

    @OptionGroup var workspace: WorkspaceOptions

    @Flag(help: "Print one JSON document (schema: acceptance schema list).")
    var json = false

    func run() throws {
        let location = Workspace.locate(procedures: workspace.procedures, fixtures: workspace.fixtures)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: location.procedures, isDirectory: &isFolder), isFolder.boolValue
        else {
            throw ValidationError("no procedures folder at \(location.procedures)")
        }
        let loader = ProcedureLoader(fixtures: location.fixtures, protocols: Transports.protocols)
        if json {
            writeJSON(location, loader: loader)
            return
        }
        var rows: [[String]] = [["ID", "VERSION", "DURATION", "TITLE"]]
        for path in location.procedureFiles() {
            let result = loader.check(path: path)
            let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            if let procedure = result.procedure, !result.hasErrors {
                rows.append([
                    procedure.id, procedure.version, procedure.estimatedDuration?.description ?? "-", procedure.title,
                ])
            } else {
                rows.append([name, "-", "-", "(invalid: run 'acceptance validate \(path)')"])
            }
        }
        let widths = (0..<3).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            let line = (0..<3).map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) } + [row[3]]
            ConsoleOutput.standardOutput.write(line.joined(separator: "  ") + "\n")
        }
    }

    func writeJSON(_ location: Workspace, loader: ProcedureLoader) {
        var procedures: [JSONValue] = []
        for path in location.procedureFiles() {
            let result = loader.check(path: path)
            var entry: [String: JSONValue] = [
                "id": .string(((path as NSString).lastPathComponent as NSString).deletingPathExtension),
                "file": .string(path), "valid": .bool(result.procedure != nil && !result.hasErrors),
            ]
            if let procedure = result.procedure, !result.hasErrors {
                let limits = procedure.limitParameters
                entry["id"] = .string(procedure.id)
                entry["version"] = .string(procedure.version)
                entry["title"] = .string(procedure.title)
                entry["rack"] = .string(procedure.rack)
                if let duration = procedure.estimatedDuration?.duration {
                    entry["estimated_duration_s"] = .number(duration.seconds)
                }
                entry["parameters"] = .array(
                    procedure.parameters.map { parameter in
                        [
                            "name": .string(parameter.name),
                            "default": .string(parameter.text ?? parameter.defaultValue.description),
                            "limit": .bool(limits.contains(parameter.name)),
                        ]
                    })
            }
            procedures.append(.object(entry))
        }
        var suites: [JSONValue] = []
        for path in location.suiteFiles() {
            var entry: [String: JSONValue] = [
                "id": .string(((path as NSString).lastPathComponent as NSString).deletingPathExtension),
                "file": .string(path), "valid": false,
            ]
            if let suite = try? Suite.load(path: path) {
                entry["id"] = .string(suite.id)
                entry["valid"] = true
                entry["title"] = .string(suite.title)
                entry["version"] = .string(suite.version)
                entry["procedures"] = .array(suite.procedures.map { .string($0.procedure) })
            }
            suites.append(.object(entry))
        }
        JSONOutput.write("list", ["procedures": .array(procedures), "suites": .array(suites)])
    }
}
