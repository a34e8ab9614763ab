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

    @Option(
        help: "Station file or name, for its rack and the models it says are fitted.",
        completion: .custom(Completions.stations))
    var station: String?

    @Option(
        name: .customLong("model"), help: "Fit another model: DEVICE=MODEL (a profile in Fixtures/devices). Repeatable."
    )
    var models: [String] = []

    @OptionGroup var workspace: WorkspaceOptions

    @Flag(help: "Print one JSON document (schema: acceptance schema points).")
    var json = false

    func run() throws {
        let location = Workspace.locate(procedures: workspace.procedures, fixtures: workspace.fixtures)
        do {
            let configuration = try PointTool.configuration(
                rack: rack, station: station, models: try FittedModels.parse(models),
                workspace: location)
            if json {
                writeJSON(configuration, devices: try PointTool.instances(configuration, device: device))
            } else {
                ConsoleOutput.standardOutput.write(try PointTool.listing(configuration, device: device))
            }
        } catch let error as HarnessError {
            throw ValidationError(error.description)
        }
    }

    func writeJSON(_ configuration: RackConfiguration, devices: [RackProfile.DeviceInstance]) {
        let listed: [JSONValue] = devices.map { instance in
            let points: [JSONValue] = (configuration.profiles[instance.model]?.points ?? []).map { point in
                var entry: [String: JSONValue] = [
                    "point": .string("\(instance.name).\(point.name)"), "where": .string(point.whereabouts),
                    "type": .string(point.address.layout.isEmpty ? point.kind.rawValue : point.address.layout),
                    "access": .string(point.access.rawValue),
                ]
                if let unit = point.unit { entry["unit"] = .string(unit.symbol) }
                if !point.states.isEmpty {
                    entry["states"] = .object(
                        Dictionary(uniqueKeysWithValues: point.states.map { ("\($0.key)", JSONValue.string($0.value)) })
                    )
                }
                if !point.description.isEmpty { entry["description"] = .string(point.description) }
                return .object(entry)
            }
            return ["device": .string(instance.name), "model": .string(instance.model), "points": .array(points)]
        }
        JSONOutput.write("points", ["rack": .string(configuration.rack.id), "devices": .array(listed)])
    }
}
