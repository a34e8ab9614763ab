import AcceptanceCore
import Foundation
import Simulation

/// Everything the `run` command was asked to do.
public struct RunRequest: Sendable {
    public var procedure: String
    public var workspace: Workspace
    /// `name=value` overrides, unparsed.
    public var parameters: [String: String] = [:]
    public var inputs: [String: String] = [:]
    public var operatorName: String?
    public var scenario = "nominal"
    /// Simulated seconds per wall second; nil runs simulated time as fast as possible.
    public var timeScale: Double?
    public var reportsDirectory = "reports"
    public var station: String?

    public init(procedure: String, workspace: Workspace) {
        self.procedure = procedure
        self.workspace = workspace
    }
}

/// A run that has been fully loaded and checked, with its devices, but has not touched the rack yet.
public struct PreparedRun: Sendable {
    public let settings: RunSettings
    public let configuration: RackConfiguration
    public let rack: SimulatedRack
    public let clock: any RunClock
    public let folder: RunFolder?
    /// Warnings found while loading (shown, but not fatal).
    public let warnings: [Diagnostic]

    /// Loads the procedure, profiles and scenario, resolves parameters and opens the run folder.
    public static func prepare(_ request: RunRequest, recordToDisk: Bool = true) throws(HarnessError) -> PreparedRun {
        let path = try request.workspace.procedureFile(request.procedure)
        let loader = ProcedureLoader(fixtures: request.workspace.fixtures)
        let checked = loader.check(path: path)
        guard let procedure = checked.procedure, let configuration = checked.configuration, !checked.hasErrors else {
            throw .invalidFiles(DiagnosticsError(checked.diagnostics))
        }
        let parameters: [String: Quantity]
        do {
            parameters = try procedure.resolveParameters(request.parameters)
        } catch {
            throw .parameter(error)
        }
        let known = Set(procedure.inputs.map(\.name))
        for name in request.inputs.keys where !known.contains(name) && name != "rack_serial" {
            throw .input("procedure '\(procedure.id)' asks for no input '\(name)'"
                + (known.isEmpty ? "" : " (it asks for \(known.sorted().joined(separator: ", ")))"))
        }
        let scenario: Scenario
        do {
            scenario = try Scenario.load(named: request.scenario, in: request.workspace.scenarios)
        } catch {
            throw .invalidFiles(error)
        }
        let clock = SimulationClock(timeScale: request.timeScale)
        let rack: SimulatedRack
        do {
            rack = try SimulatedRack(configuration: configuration, scenario: scenario, clock: clock)
        } catch {
            throw .unsupported(error.description)
        }
        var runID = RunSettings.makeRunID(procedure: procedure.id)
        var folder: RunFolder?
        if recordToDisk {
            // Run ids carry a random suffix; on the rare clash, draw another rather than share a folder.
            for attempt in 1...5 where folder == nil {
                do {
                    folder = try RunFolder(reportsDirectory: request.reportsDirectory, runID: runID)
                } catch {
                    if attempt == 5 { throw .record(error) }
                    runID = RunSettings.makeRunID(procedure: procedure.id)
                }
            }
        }
        var settings = RunSettings(runID: runID, procedure: procedure, parameters: parameters, inputs: request.inputs,
                                   station: request.station ?? "simulator@\(ProcessInfo.processInfo.hostName)",
                                   operatorName: request.operatorName, scenario: scenario.name)
        settings.simulatedInputs = scenario.inputs
        return PreparedRun(settings: settings, configuration: configuration, rack: rack, clock: clock, folder: folder,
                           warnings: checked.diagnostics.filter { $0.severity == .warning })
    }

    /// Runs to the end. Cleanup always runs; the record is written to the run folder.
    public func run(console: any OperatorConsole, observer: any RunObserver, stop: StopController) async -> RunRecord {
        let runner = Runner(settings: settings, bus: rack.bus, clock: clock, console: console, observer: observer,
                            folder: folder, stop: stop)
        return await runner.run()
    }
}
