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

    func request(workspace: Workspace) throws -> RunRequest {
        var request = RunRequest(procedure: "", workspace: workspace)
        request.station = station
        request.scenario = scenario
        guard let transport = SimulatorTransport(rawValue: simTransport) else {
            throw ValidationError("--sim-transport must be memory or tcp")
        }
        request.simulatorTransport = transport
        return request
    }

    /// The rack configuration, after `check` has looked at it, and its devices connected; mistakes are usage errors.
    func connect(workspace: Workspace, check: (RackConfiguration) throws(HarnessError) -> Void)
        throws -> (RackConfiguration, ConnectedDevices) {
        do {
            let configuration = try PointTool.configuration(rack: nil, station: station, workspace: workspace)
            try check(configuration)
            return (configuration, try ConnectedDevices.connect(configuration: configuration,
                                                                request: try request(workspace: workspace)))
        } catch let error as HarnessError {
            throw ValidationError(error.description)
        }
    }
}
