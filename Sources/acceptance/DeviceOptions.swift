import AcceptanceCore
import ArgumentParser
import Foundation
import Harness

/// Which devices the technician tools talk to: a station's, or the built-in simulated rack.
struct DeviceOptions: ParsableArguments {
    @Option(help: "Station file (or name in Fixtures/stations); without it, the built-in simulated rack.")
    var station: String?

    @Option(help: "Simulation scenario, for the simulated rack.")
    var scenario = "nominal"

    @Option(help: "How to reach the simulated rack: memory or tcp.")
    var simTransport = "memory"

    @Option(
        name: .customLong("model"),
        help: "Fit another model in the simulated rack: DEVICE=MODEL (a profile in Fixtures/devices). Repeatable.")
    var models: [String] = []

    func validate() throws {
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

    /// A request for these devices (and, for `run`, a procedure).
    func request(procedure: String = "", workspace: Workspace) -> RunRequest {
        var request = RunRequest(procedure: procedure, workspace: workspace)
        request.station = station
        request.scenario = scenario
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
        do throws(HarnessError) {
            let configuration = try PointTool.configuration(
                rack: nil, station: station, models: request(workspace: workspace).models,
                workspace: workspace)
            try check(configuration)
            return try DevicePlan.make(
                request: request(workspace: workspace), configuration: configuration,
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
