import AcceptanceCore
import ArgumentParser
import Harness

struct PointsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "points",
        abstract: "List the points of a device (or of every device of the rack): register, type, unit, access."
    )

    @Argument(help: "Device instance, such as cdu (default: every device).")
    var device: String?

    @Option(help: "Rack profile (default: the station's rack, or gb200-nvl72).")
    var rack: String?

    @Option(help: "Station file or name, for its rack and the models it says are fitted.")
    var station: String?

    @Option(
        name: .customLong("model"), help: "Fit another model: DEVICE=MODEL (a profile in Fixtures/devices). Repeatable."
    )
    var models: [String] = []

    @OptionGroup var workspace: WorkspaceOptions

    func run() throws {
        let location = Workspace.locate(procedures: workspace.procedures, fixtures: workspace.fixtures)
        do {
            let configuration = try PointTool.configuration(
                rack: rack, station: station, models: try FittedModels.parse(models),
                workspace: location)
            ConsoleOutput.standardOutput.write(try PointTool.listing(configuration, device: device))
        } catch let error as HarnessError {
            throw ValidationError(error.description)
        }
    }
}
