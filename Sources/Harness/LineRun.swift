import AcceptanceCore
import Foundation

/// `acceptance run leak-test --line FILE`: the line, the bays to run, and the request every bay starts from.
public struct LineRequest: Sendable {
    /// The line file.
    public var line: String
    /// `--bays 1-3,5`; nil: every bay of the line.
    public var bays: String?
    /// Procedure, parameters, inputs, operator, folders, key: the same for every bay; each bay's station (or the
    /// simulated rack) is its own.
    public var run: RunRequest
    /// `--scenario 3=loop-leak`: the scenario of a simulated bay (the others: `run.scenario`).
    public var scenarios: [Int: String] = [:]

    public init(line: String, run: RunRequest) {
        self.line = line
        self.run = run
    }
}

/// A line's bays, each prepared as a run of its own (its folder, journal, record, bundle, supervisor): run together
/// in one process, none waiting for another.
public struct LineRun: Sendable {
    public let line: LineConfiguration
    public let bays: [Bay]

    public struct Bay: Sendable {
        public let bay: LineConfiguration.Bay
        public let prepared: PreparedRun
    }

    /// What became of one bay.
    public struct Outcome: Sendable {
        public let bay: LineConfiguration.Bay
        public let record: RunRecord
        public let bundle: PreparedRun.BundleOutcome?
    }

    /// Loads the line and prepares every bay before any of them starts: a bay that cannot be prepared (a station
    /// file that does not load, a parameter it refuses) stops the whole line before anything moves.
    public static func prepare(_ request: LineRequest) async throws(HarnessError) -> LineRun {
        let line: LineConfiguration
        do {
            line = try LineConfiguration.load(path: request.line)
        } catch {
            throw .invalidFiles(error)
        }
        let chosen = try line.select(request.bays)
        if request.run.inputs["rack_serial"] != nil {
            throw .input("every bay has its own rack: a line takes no --rack-serial (each bay reads or asks its own)")
        }
        let known = Set(chosen.map(\.number))
        for bay in request.scenarios.keys.sorted() where !known.contains(bay) {
            throw .input(
                "--scenario \(bay)=…: bay \(bay) is not among the bays run (\(chosen.map { String($0.number) }.joined(separator: ", ")))"
            )
        }
        for bay in chosen where bay.station != nil && request.scenarios[bay.number] != nil {
            throw .input("bay \(bay.number) is bound to a station: a scenario is for a simulated bay")
        }
        let gate = line.resources.isEmpty ? nil : LineResources(line.resources)
        var bays: [Bay] = []
        for bay in chosen {
            var single = request.run
            single.station = bay.station
            single.scenario = request.scenarios[bay.number] ?? request.run.scenario
            single.simulatedStationName = bay.name
            single.gate = gate
            single.archive = line.archive ?? request.run.archive
            // Each simulated rack has a serial of its own: eight racks must never share one in the records.
            if bay.station == nil, single.inputs["rack_serial"] == nil {
                let id = line.id.uppercased()
                single.inputs["rack_serial"] = "\(id.hasPrefix("SIM") ? id : "SIM-\(id)")-B\(bay.number)"
            }
            bays.append(Bay(bay: bay, prepared: try await PreparedRun.prepare(single)))
        }
        return LineRun(line: line, bays: bays)
    }

    /// Runs every bay at once and returns each bay's outcome, in bay order. `stop` (Ctrl-C) stops every bay; each
    /// runs its cleanup. A bay's fault, error or interlock trip touches no other bay.
    public func run(
        console: @Sendable (LineConfiguration.Bay) -> any OperatorConsole,
        observer: @Sendable (LineConfiguration.Bay, PreparedRun) -> any RunObserver, stop: StopController
    ) async -> [Outcome] {
        // Each bay has a stop of its own; the line's stop reaches all of them.
        let stops = bays.map { _ in StopController() }
        let forward = Task {
            if let reason = await stop.waitForStop() {
                for bayStop in stops { bayStop.requestStop(reason) }
            }
        }
        let outcomes = await run(console: console, observer: observer, stops: stops)
        forward.cancel()
        await forward.value
        return outcomes
    }

    /// Runs every bay at once, bay `i` stopped by `stops[i]` alone (one per bay, in the order of `bays`): for a
    /// console that asks which bays a Ctrl-C is for (`LineSignalTrap`).
    public func run(
        console: @Sendable (LineConfiguration.Bay) -> any OperatorConsole,
        observer: @Sendable (LineConfiguration.Bay, PreparedRun) -> any RunObserver, stops: [StopController]
    ) async -> [Outcome] {
        await withTaskGroup(of: (Int, Outcome).self) { group -> [Outcome] in
            for (index, bay) in bays.enumerated() {
                let bayConsole = console(bay.bay)
                let bayObserver = observer(bay.bay, bay.prepared)
                let bayStop = index < stops.count ? stops[index] : StopController()
                group.addTask {
                    let (record, bundle) = await bay.prepared.runAndBundle(
                        console: bayConsole, observer: bayObserver, stop: bayStop)
                    return (index, Outcome(bay: bay.bay, record: record, bundle: bundle))
                }
            }
            var results: [(Int, Outcome)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    /// The line's exit verdict: the worst bay's.
    public static func verdict(_ outcomes: [Outcome]) -> Verdict {
        outcomes.map(\.record.verdict).reduce(.pass, Verdict.worst)
    }
}
