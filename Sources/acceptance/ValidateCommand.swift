import AcceptanceCore
import ArgumentParser
import Harness

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check procedure files against the rack and device profiles.",
        discussion: """
            Reports every problem in every file as file:line:column, with the line and a caret: YAML syntax, \
            unknown keys and points, writes to read-only points, unit mismatches (kPa against °C), limits with \
            low above high, parameters without units. Exits 1 if any file has an error.
            """
    )

    @Argument(help: "Procedure files (default: every file in the procedures folder).")
    var files: [String] = []

    @Option(
        help: "Check against this station's rack: the models it says are fitted and its group sizes.",
        completion: .custom(Completions.stations))
    var station: String?

    @Option(
        name: .customLong("model"), help: "Fit another model: DEVICE=MODEL (a profile in Fixtures/devices). Repeatable."
    )
    var models: [String] = []

    @OptionGroup var workspace: WorkspaceOptions

    func run() throws {
        let location = Workspace.locate(procedures: workspace.procedures, fixtures: workspace.fixtures)
        let paths = files.isEmpty ? location.procedureFiles() : files
        guard !paths.isEmpty else { throw ValidationError("no procedure files in \(location.procedures)") }
        var fitted = try FittedModels.parse(models)
        var counts: [String: Int] = [:]
        if let station {
            do {
                let loaded = try StationConfiguration.load(named: station, workspace: location)
                fitted = loaded.models.merging(fitted) { $1 }
                counts = loaded.groupCounts
                // Devices and groups the station binds that its rack lacks, with where they are in the file.
                if let rackID = loaded.rack {
                    let rack = try RackProfile.load(path: "\(location.fixtures)/racks/\(rackID).yaml")
                    let problems = loaded.mismatches(with: rack)
                    if !problems.isEmpty {
                        for problem in problems { ConsoleOutput.standardError.write("\(problem)\n") }
                        throw ExitCode(1)
                    }
                }
            } catch let exit as ExitCode {
                throw exit
            } catch {
                // A mistake in the station file is a file error like any other (exit 1), not a usage error.
                ConsoleOutput.standardError.write("\(error)\n")
                throw ExitCode(1)
            }
        }
        let loader = ProcedureLoader(
            fixtures: location.fixtures, protocols: Transports.protocols, groupCounts: counts,
            models: fitted)
        var failed = 0
        for path in paths {
            let result = loader.check(path: path)
            for diagnostic in result.diagnostics { ConsoleOutput.standardError.write("\(diagnostic)\n") }
            let errors = result.diagnostics.filter { $0.severity == .error }.count
            if result.hasErrors {
                failed += 1
                ConsoleOutput.standardOutput.write("\(path): \(max(errors, 1)) error\(errors == 1 ? "" : "s")\n")
            } else if let procedure = result.procedure {
                let steps = procedure.allSteps.count
                ConsoleOutput.standardOutput.write(
                    "\(path): OK (\(procedure.id) \(procedure.version), \(steps) steps)\n")
            }
        }
        if failed > 0 { throw ExitCode(1) }
    }
}
