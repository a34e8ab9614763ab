import AcceptanceCore
import ArgumentParser
import Foundation
import Harness

/// Which devices the technician tools talk to: a station's (named, or the one this machine is configured as), or
/// the built-in simulated rack.
struct DeviceOptions: ParsableArguments {
    @Option(
        help: """
            Station file (or name in Fixtures/stations). Default: ACCEPTANCE_STATION, else ./station.yaml, \
            $XDG_CONFIG_HOME/acceptance/station.yaml, /etc/acceptance/station.yaml; with none, the simulated rack.
            """, completion: .custom(Completions.stations))
    var station: String?

    @Flag(help: "Use the built-in simulated rack even where a station is configured (if it allows that).")
    var simulated = false

    @Option(
        name: .customLong("scenario"),
        help: ArgumentHelp(
            "Simulation scenario, for the simulated rack (default: nominal); on a line, BAY=SCENARIO for one bay.",
            valueName: "scenario"),
        completion: .custom(Completions.scenarios))
    var scenarios: [String] = []

    /// The scenario for the simulated rack (or every simulated bay): the last one given without a bay.
    var scenario: String? { scenarios.last { !$0.contains("=") } }

    /// `--scenario 3=loop-leak`: a scenario for one bay of a line.
    func bayScenarios() throws -> [Int: String] {
        var result: [Int: String] = [:]
        for option in scenarios where option.contains("=") {
            let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let bay = Int(parts[0].trimmingCharacters(in: .whitespaces)), bay > 0,
                !parts[1].isEmpty
            else {
                throw ValidationError("--scenario for a bay is BAY=SCENARIO, such as 3=loop-leak, not '\(option)'")
            }
            result[bay] = parts[1]
        }
        return result
    }

    @Option(help: "How to reach the simulated rack: memory or tcp.")
    var simTransport = "memory"

    @Option(
        name: .customLong("model"),
        help: "Fit another model in the simulated rack: DEVICE=MODEL (a profile in Fixtures/devices). Repeatable.")
    var models: [String] = []

    func validate() throws {
        if simulated, station != nil { throw ValidationError("--simulated and --station are two different racks") }
        guard SimulatorTransport(rawValue: simTransport) != nil else {
            throw ValidationError("--sim-transport must be memory or tcp")
        }
        if station != nil, simTransport != "memory" {
            throw ValidationError("--sim-transport is for the built-in simulator; a station names its own transports")
        }
        if station != nil, !models.isEmpty {
            throw ValidationError(
                "--model is for the built-in simulator; a station names its fitted models (model: in the "
                    + "station file)")
        }
        _ = try FittedModels.parse(models)
    }

    /// The station these options mean: the one named, else (unless --simulated) the one this machine is configured
    /// as, with where that came from; nil for the built-in simulated rack. Simulator options with a configured
    /// station, or --simulated where the station forbids it, are usage errors.
    func resolvedStation(workspace: Workspace) throws -> StationDiscovery.Configured? {
        if let station { return StationDiscovery.Configured(station: station, source: "--station") }
        guard let configured = StationDiscovery.configured() else { return nil }
        if simulated {
            let loaded: StationConfiguration
            do {
                loaded = try StationConfiguration.load(named: configured.station, workspace: workspace)
            } catch {
                throw ValidationError("the station configured by \(configured.source) does not load: \(error)")
            }
            guard loaded.allowSimulated else {
                throw ValidationError(
                    "station '\(loaded.id)' (\(configured.source)) does not allow runs on the simulated rack "
                        + "(allow_simulated: false)")
            }
            return nil
        }
        if !scenarios.isEmpty || simTransport != "memory" || !models.isEmpty {
            throw ValidationError(
                "this machine is station \(configured.station) (\(configured.source)); --scenario, --sim-transport and "
                    + "--model are for the simulated rack: add --simulated")
        }
        return configured
    }

    /// A request for these devices (and, for `run`, a procedure), for the station `resolvedStation` chose.
    func request(
        procedure: String = "", workspace: Workspace, station resolved: StationDiscovery.Configured?
    ) -> RunRequest {
        var request = RunRequest(procedure: procedure, workspace: workspace)
        request.station = resolved?.station
        request.scenario = scenario ?? "nominal"
        request.simulatorTransport = SimulatorTransport(rawValue: simTransport) ?? .memory
        request.models = (try? FittedModels.parse(models)) ?? [:]
        return request
    }

    /// The rack configuration, after `check` has looked at it, and the devices `points` name, bound but not yet
    /// connected; mistakes are usage errors.
    func plan(
        workspace: Workspace, points: [String], check: (RackConfiguration) throws(HarnessError) -> Void
    )
        throws -> DevicePlan
    {
        let resolved = try resolvedStation(workspace: workspace)
        let request = request(workspace: workspace, station: resolved)
        do throws(HarnessError) {
            let configuration = try PointTool.configuration(
                rack: nil, station: resolved?.station, models: request.models, workspace: workspace)
            try check(configuration)
            return try DevicePlan.make(
                request: request, configuration: configuration,
                only: Set(points.map { String($0.prefix { $0 != "." }) }))
        } catch {
            throw ValidationError(error.description)
        }
    }
}

extension DevicePlan {
    /// The station held for a command that moves the rack: refused while a run is moving it or a run it did not
    /// finish waits for `acceptance recover`. Nil for the built-in simulated rack.
    func claimForActuation() throws -> StationClaim? {
        guard rack == nil else { return nil }
        do {
            return try StationClaim.takeForActuation(station: stationID, in: StationState.defaultDirectory())
        } catch {
            ConsoleOutput.standardError.write("error: \(error)\n")
            throw ExitCode(Verdict.error.exitCode)
        }
    }

    /// Says so when the station has a run it did not finish (reading moves nothing, so it goes on).
    func warnIfUnfinished() {
        guard rack == nil else { return }
        let directory = StationState.defaultDirectory()
        guard let run = (try? StationState.unfinished(station: stationID, in: directory)) ?? nil,
            !StationState.isBusy(station: stationID, in: directory)
        else { return }
        ConsoleOutput.standardError.write(
            "WARNING: \(HarnessError.unfinishedRun(run).description)\n")
    }
}

/// `--model DEVICE=MODEL` options.
enum FittedModels {
    static func parse(_ options: [String]) throws -> [String: String] {
        var models: [String: String] = [:]
        for option in options {
            let parts = option.split(separator: "=", maxSplits: 1).map {
                String($0).trimmingCharacters(in: .whitespaces)
            }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--model takes DEVICE=MODEL, such as cdu=coolflow-cdu-2000, not '\(option)'")
            }
            models[parts[0]] = parts[1]
        }
        return models
    }
}
