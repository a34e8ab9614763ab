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

    func run() throws {
        let location = Workspace.locate(procedures: workspace.procedures, fixtures: workspace.fixtures)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: location.procedures, isDirectory: &isFolder), isFolder.boolValue
        else {
            throw ValidationError("no procedures folder at \(location.procedures)")
        }
        let loader = ProcedureLoader(fixtures: location.fixtures, protocols: Transports.protocols)
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
}
