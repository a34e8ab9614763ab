import AcceptanceCore
import ArgumentParser
import Harness

/// Which devices the technician tools talk to: a station's, or the built-in simulated rack.
struct DeviceOptions: ParsableArguments {
    @Option(help: "Station file (or name in Fixtures/stations); without it, the built-in simulated rack.")
    var station: String?

    @Option(help: "Simulation scenario, for the simulated rack.")
    var scenario = "nominal"

    @Option(help: "How to reach the simulated rack: memory or tcp.")
    var simTransport = "memory"

    func validate() throws {
        guard SimulatorTransport(rawValue: simTransport) != nil else {
            throw ValidationError("--sim-transport must be memory or tcp")
        }
        if station != nil, simTransport != "memory" {
            throw ValidationError("--sim-transport is for the built-in simulator; a station names its own transports")
        }
    }

    /// A request for these devices (and, for `run`, a procedure).
    func request(procedure: String = "", workspace: Workspace) -> RunRequest {
        var request = RunRequest(procedure: procedure, workspace: workspace)
        request.station = station
        request.scenario = scenario
        request.simulatorTransport = SimulatorTransport(rawValue: simTransport) ?? .memory
        return request
    }

    /// The rack configuration, after `check` has looked at it, and the devices `points` name, bound but not yet
    /// connected; mistakes are usage errors.
    func plan(workspace: Workspace, points: [String], check: (RackConfiguration) throws(HarnessError) -> Void)
        throws -> DevicePlan {
        do throws(HarnessError) {
            let configuration = try PointTool.configuration(rack: nil, station: station, workspace: workspace)
            try check(configuration)
            return try DevicePlan.make(request: request(workspace: workspace), configuration: configuration,
                                       only: Set(points.map { String($0.prefix { $0 != "." }) }))
        } catch {
            throw ValidationError(error.description)
        }
    }
}
