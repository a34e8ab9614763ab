// Benchmarks for the runner and the simulated rack. Build in release mode:
//
//     swift run -c release acceptance-bench
//
// It measures; it does not assert. Targets from the issues are printed beside the figures.
import AcceptanceCore
import Foundation
import Harness
import ModbusCore
import ModbusTransport
import RedfishCore
import Reports
import Simulation
import Synchronization

let root = Workspace.locate()
let scratch = NSTemporaryDirectory() + "acceptance-bench-\(getpid())"
try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: scratch) }

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
}

/// Wall seconds `body` takes, run in the caller's isolation (no hop).
func wallSeconds(
    isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> Void
) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    return (ContinuousClock.now - start).seconds
}

func format(_ value: Double, _ decimals: Int = 1) -> String { String(format: "%.\(decimals)f", value) }

// The USB section runs this binary again under umockdev's preload, as a client of the emulated instrument.
if CommandLine.arguments.count == 4, CommandLine.arguments[1] == "usb-client" {
    await USBBench.client(resource: CommandLine.arguments[2], count: Int(CommandLine.arguments[3]) ?? 100)
    exit(0)
}

// The line section runs this binary again for each configuration: `line-child RACKS MINUTES`.
if CommandLine.arguments.count == 4, CommandLine.arguments[1] == "line-child",
    let racks = Int(CommandLine.arguments[2]), let minutes = Int(CommandLine.arguments[3])
{
    await LineBench.child(racks: racks, minutes: minutes, root: root, scratch: scratch)
    exit(0)
}

/// Sections to run (`acceptance-bench runner modbus`); all of them without arguments. `--minutes N` shortens the
/// line section's simulated hour (for a quick look; the figures worth quoting are for 60).
var arguments = Array(CommandLine.arguments.dropFirst())
var lineMinutes = 60
if let flag = arguments.firstIndex(of: "--minutes"), flag + 1 < arguments.count, let value = Int(arguments[flag + 1]),
    value > 0
{
    lineMinutes = value
    arguments.removeSubrange(flag...(flag + 1))
}
let selected = Set(arguments)
let sections = ["leak", "runner", "modbus", "redfish", "bundle", "load", "usb", "line"]
if let unknown = selected.first(where: { !sections.contains($0) }) {
    print("unknown section '\(unknown)'; sections: \(sections.joined(separator: ", "))")
    exit(64)
}
func wants(_ section: String) -> Bool { selected.isEmpty || selected.contains(section) }

#if DEBUG
print("warning: this is a debug build; run `swift run -c release acceptance-bench` for figures worth quoting\n")
#endif

if wants("leak") {
    // 1. Simulated seconds per wall second: the whole leak-test (10 min hold), record and journal written.
    print("leak-test on the simulated rack (default parameters: 10 min hold, 601 samples)")
    var ratios: [Double] = []
    var walls: [Double] = []
    var simulated = 0.0
    for index in 0..<21 {
        var request = RunRequest(procedure: "leak-test", workspace: root)
        request.reportsDirectory = "\(scratch)/leak"
        let prepared = try await PreparedRun.prepare(request)
        var record: RunRecord?
        let wall = await wallSeconds {
            record = await prepared.run(
                console: AutomaticOperator(), observer: SilentObserver(), stop: StopController())
        }
        guard let record, record.verdict == .pass else {
            print("  run \(index) did not pass: \(record?.message ?? "?")")
            exit(1)
        }
        if index == 0 { continue }  // warm-up
        simulated = record.clock.elapsedSeconds
        walls.append(wall)
        ratios.append(record.clock.elapsedSeconds / wall)
    }
    let speedup = median(ratios)
    print(
        "  runs: \(walls.count)   wall median: \(format(median(walls) * 1000, 2)) ms   simulated: \(format(simulated, 0)) s"
    )
    print(
        "  simulated seconds per wall second: \(format(speedup, 0))×   (target ≥ 10000×: \(speedup >= 10_000 ? "met" : "NOT met"))"
    )
}

if wants("runner") {
    // 2. Runner overhead per step: 10,000 trivial checks, with and without the journal.
    print("\nrunner overhead: a procedure of 10,000 trivial checks")
    let stepCount = 10_000
    var yaml = """
        id: bench-trivial
        title: 10,000 trivial checks
        version: 1.0.0
        rack: gb200-nvl72
        main:

        """
    for _ in 0..<stepCount { yaml += "  - check: 1 s < 2 s\n" }
    let procedurePath = "\(scratch)/bench-trivial.yaml"
    try yaml.write(toFile: procedurePath, atomically: true, encoding: .utf8)
    let (procedure, configuration) = try ProcedureLoader(fixtures: root.fixtures, protocols: Transports.protocols).load(
        path: procedurePath)

    /// Median µs per step over five runs (after a warm-up): the steps alone (from the run's start to the start of
    /// cleanup, journal lines written as they go), and the whole run with record.json encoded and the journal
    /// flushed at the end.
    func perStep(journal: Bool) async throws -> (steps: Double, total: Double) {
        var steps: [Double] = []
        var totals: [Double] = []
        for run in 0..<6 {
            let clock = SimulationClock()
            let runID = "trivial-\(journal)-\(run)"
            let folder = journal ? try RunFolder(reportsDirectory: "\(scratch)/trivial", runID: runID) : nil
            let settings = RunSettings(runID: runID, procedure: procedure, parameters: [:], station: "bench")
            let marks = StepMarks()
            // The trivial checks read no device: an empty bus.
            let runner = Runner(
                settings: settings, bus: DeviceBus(configuration: configuration, devices: [:]), clock: clock,
                console: AutomaticOperator(), observer: marks, folder: folder)
            var finished: RunRecord?
            let wall = await wallSeconds { finished = await runner.run() }
            guard let finished, finished.steps.count == stepCount, let stepsWall = marks.stepsSeconds else {
                print("  expected \(stepCount) steps")
                exit(1)
            }
            guard run > 0 else { continue }
            steps.append(stepsWall / Double(stepCount) * 1e6)
            totals.append(wall / Double(stepCount) * 1e6)
        }
        return (median(steps), median(totals))
    }

    let inMemory = try await perStep(journal: false).steps
    let (journalled, withFolder) = try await perStep(journal: true)
    let recordShare = withFolder - journalled
    func verdict(_ value: Double, _ target: Double) -> String { value <= target ? "met" : "NOT met" }
    print(
        "  runner alone (no run folder):                     \(format(inMemory, 2)) µs/step   target ≤ 4 µs: "
            + verdict(inMemory, 4))
    print(
        "  runner + journal.jsonl written as it goes:        \(format(journalled, 2)) µs/step   target ≤ 4 µs: "
            + verdict(journalled, 4))
    print(
        "  + record.json encoded and journal flushed at the end: \(format(recordShare, 2)) µs/step   "
            + "(whole run \(format(withFolder, 2)) µs/step)")
    if let openHTF = OpenHTFPeer.microsecondsPerPhase(root: root) {
        print(
            "  OpenHTF \(openHTF.version), a test of 2,000 no-op phases: \(format(openHTF.perPhase, 1)) µs/phase   "
                + "(\(format(openHTF.perPhase / max(journalled, 0.001), 0))× the runner with its journal)")
    } else {
        print("  OpenHTF: not installed (python3 -m pip install openhtf) — no side-by-side figure")
    }
}

if wants("modbus") {
    // 3. Modbus TCP: the harness client against a plain libmodbus loop, the same libmodbus server, in the same run.
    print("\nModbus TCP on loopback: read 10 holding registers 10,000 times (libmodbus server, fixed register image)")

    /// A register image that answers at once: the benchmark measures the clients and the wire, not the simulator.
    struct FixedImage: ModbusServerBackend {
        func read(_ table: ModbusTable, startingAt address: UInt16, count: Int, unit: UInt8) -> ModbusServerAnswer {
            .values((0..<count).map { UInt16(truncatingIfNeeded: Int(address) + $0) })
        }
        func write(
            _ table: ModbusTable, startingAt address: UInt16, values: [UInt16], unit: UInt8
        ) -> ModbusServerAnswer {
            .done
        }
    }

    let server = try ModbusTCPServer(port: 0, backend: FixedImage())
    defer { server.stop() }
    let iterations = 10_000
    var harnessRates: [Double] = []
    var pinnedRates: [Double] = []
    var plainRates: [Double] = []
    let client = try LibModbusClient(endpoint: .tcp(host: "127.0.0.1", port: server.port), unit: 1)
    _ = try await client.readHoldingRegisters(startingAt: 0, count: 10)  // connect, warm up
    for _ in 0..<5 {
        // Alternate the two so that machine noise falls on both alike.
        let plain = try await LibModbusBaseline.readHoldingRegisters(
            host: "127.0.0.1", port: server.port, address: 0,
            count: 10, iterations: iterations)
        plainRates.append(Double(iterations) / plain.seconds)
        let harness = try await harnessReads(client, iterations: iterations)
        harnessRates.append(Double(iterations) / harness)
        let pinned = try await pinnedHarnessReads(client, iterations: iterations)
        pinnedRates.append(Double(iterations) / pinned)
    }
    let plainMedian = median(plainRates)
    let harnessMedian = median(harnessRates)
    let pinnedMedian = median(pinnedRates)
    func ratio(_ rate: Double) -> String {
        "\(format(rate / plainMedian, 3))  (target ≥ 0.95: \(rate / plainMedian >= 0.95 ? "met" : "NOT met"))"
    }
    print("  plain libmodbus loop:                          \(format(plainMedian, 0)) transactions/s")
    print(
        "  harness client, from the cooperative pool:     \(format(harnessMedian, 0)) transactions/s   ratio \(ratio(harnessMedian))"
    )
    print(
        "  harness client, loop on the connection thread: \(format(pinnedMedian, 0)) transactions/s   ratio \(ratio(pinnedMedian))"
    )
    print("  (medians of 5 alternating runs)")
}

if wants("redfish") {
    // 4. Redfish sweep: bmc-inventory over 27 tray BMCs and 8 shelf controllers, each answering every request 50 ms late,
    // over HTTPS (pinned) on loopback. The for_each steps ask every member in parallel; the same procedure with
    // `concurrency: 1` asks them one after another.
    print("\nRedfish: bmc-inventory over HTTPS on loopback, every BMC answering 50 ms late")
    let benchFixtures = "\(scratch)/Fixtures"
    let benchProcedures = "\(scratch)/Procedures"
    try FileManager.default.copyItem(atPath: root.fixtures, toPath: benchFixtures)
    try FileManager.default.createDirectory(atPath: benchProcedures, withIntermediateDirectories: true)
    try """
    name: bench-latency
    description: Every BMC and shelf controller answers 50 ms late.
    inputs:
      rack_serial: BENCH-RACK-0001
    redfish:
      latency: 50 ms
    """.write(toFile: "\(benchFixtures)/scenarios/bench-latency.yaml", atomically: true, encoding: .utf8)
    let inventory = try String(contentsOfFile: "\(root.procedures)/bmc-inventory.yaml", encoding: .utf8)
    try inventory.write(toFile: "\(benchProcedures)/bmc-inventory.yaml", atomically: true, encoding: .utf8)
    try inventory.replacingOccurrences(of: "id: bmc-inventory", with: "id: bmc-inventory-serial")
        .replacingOccurrences(of: "    for_each: ", with: "    concurrency: 1\n    for_each: ")
        .write(toFile: "\(benchProcedures)/bmc-inventory-serial.yaml", atomically: true, encoding: .utf8)

    /// Wall time of each step, from its start and finish events.
    final class StepWallTimes: RunObserver, @unchecked Sendable {
        // Events arrive from the runner's tasks; the lock orders them.
        private let lock = NSLock()
        private var started: [String: ContinuousClock.Instant] = [:]
        private var seconds: [String: Double] = [:]

        func handle(_ event: RunEvent) {
            lock.lock()
            defer { lock.unlock() }
            switch event {
            case let .stepStarted(step): started[step.id] = .now
            case let .stepFinished(step, _):
                seconds[step.id] = started[step.id].map { (ContinuousClock.now - $0).seconds }
            default: break
            }
        }

        subscript(id: String) -> Double { lock.withLock { seconds[id] ?? .nan } }
    }

    func sweep(_ procedure: String) async throws -> (RunRecord, StepWallTimes, Double) {
        var request = RunRequest(
            procedure: procedure, workspace: Workspace(procedures: benchProcedures, fixtures: benchFixtures))
        request.scenario = "bench-latency"
        request.simulatorTransport = .tcp
        request.timeScale = 1
        request.reportsDirectory = "\(scratch)/redfish"
        let prepared = try await PreparedRun.prepare(request)
        let times = StepWallTimes()
        var record: RunRecord?
        let wall = await wallSeconds {
            record = await prepared.run(console: AutomaticOperator(), observer: times, stop: StopController())
        }
        guard let record else { throw CancellationError() }
        return (record, times, wall)
    }

    let (parallel, parallelTimes, parallelWall) = try await sweep("bmc-inventory")
    let (serial, serialTimes, serialWall) = try await sweep("bmc-inventory-serial")
    guard parallel.verdict == .pass, serial.verdict == .pass else {
        print("  a sweep did not pass: \(parallel.message ?? "") \(serial.message ?? "")")
        exit(1)
    }
    print("  wall time per step                            members   parallel   one at a time")
    for step in parallel.steps where step.members != nil {
        let name = step.name.padding(toLength: 44, withPad: " ", startingAt: 0)
        print(
            "  \(name)  \(String(format: "%5d", step.members?.count ?? 0))   \(String(format: "%6.0f", parallelTimes[step.id] * 1000)) ms"
                + "   \(String(format: "%7.0f", serialTimes[step.id] * 1000)) ms")
    }
    let oneBMC = serialTimes[parallel.steps.first { $0.name == "Compute tray BMCs answer" }?.id ?? ""] / 18
    let sweepTime = parallelTimes[parallel.steps.first { $0.name == "Compute tray BMCs answer" }?.id ?? ""]
    print("  one BMC (one request, 50 ms late), averaged over the one-at-a-time sweep: \(format(oneBMC * 1000, 0)) ms")
    print(
        "  all 18 compute trays in parallel: \(format(sweepTime * 1000, 0)) ms = \(format(sweepTime / oneBMC, 2)) × one BMC "
            + "(target: about one BMC, not 18: \(sweepTime / oneBMC < 3 ? "met" : "NOT met"))")
    print(
        "  whole run incl. logins and logouts, 27 BMCs + 8 shelves: parallel \(format(parallelWall, 2)) s, "
            + "one at a time \(format(serialWall, 2)) s")
}

if wants("load") {
    // 5. Loading is linear (issue 10): a 10,000-step procedure checked against the rack (62 s before), and a file
    //    of 100,000 misspelt keys (over 60 s before). Beside it, PyYAML's C loader parsing the same file (parse
    //    only: no checking, no diagnostics) as the reference for "as fast as YAML goes".
    print("loading large procedure files (validate = parse + check against the rack profiles)")
    var steps = "id: big\ntitle: Big\nversion: 1.0.0\nrack: gb200-nvl72\nparameters:\n  p: {default: 300 kPa}\nmain:\n"
    for index in 0..<2_500 {
        steps += """
              - prompt: Scan \(index)
                input: serial_\(index)
              - check: cdu.loop_pressure > p - 1 kPa and serial_\(index) == "x"
              - measure: cdu.loop_pressure
                limits: {low: p - 10 kPa, high: p + 50 kPa}
              - set: cdu.isolation_valve
                value: open

            """
    }
    var keys = "id: keys\ntitle: Keys\nversion: 1.0.0\nrack: gb200-nvl72\nmain: []\n"
    for index in 0..<100_000 { keys += "unknown_key_\(index): 1\n" }
    let loader = ProcedureLoader(fixtures: root.fixtures, protocols: Transports.protocols)
    for (name, text) in [("10,000 steps", steps), ("100,000 unknown keys", keys)] {
        let path = "\(scratch)/load-\(name.filter(\.isNumber)).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        var times: [Double] = []
        var diagnostics = 0
        for _ in 0..<5 {
            times.append(
                await wallSeconds {
                    diagnostics = loader.check(path: path).diagnostics.count
                })
        }
        let peer = Python.run([
            "-c",
            "import sys,time,yaml;t=time.perf_counter();yaml.load(open(sys.argv[1]),Loader=yaml.CSafeLoader);"
                + "print(time.perf_counter()-t)", path,
        ]).flatMap(Double.init)
        print(
            "  \(name) (\(text.utf8.count / 1024) kB): validate median \(format(median(times) * 1000, 0)) ms, "
                + "\(diagnostics) diagnostics shown   |   PyYAML CSafeLoader parse only: "
                + (peer.map { "\(format($0 * 1000, 0)) ms" } ?? "not installed"))
    }
    print("  (target: a 10,000-step procedure validates in well under a second)\n")
}

if wants("bundle") {
    try await BundleBench.run(root: root, scratch: scratch)
}

if wants("line") {
    // 8. A line of eight racks over the real transports beside one rack: wall time, memory and descriptors.
    LineBench.run(minutes: lineMinutes)
}

if wants("usb") {
    // 7. SCPI queries per second over USBTMC, ours beside pyvisa-py and python-usbtmc, one emulated instrument.
    try await USBBench.run(root: root)
}

/// OpenHTF (PyPI `openhtf`), the peer for the runner's cost per step: its cost per no-op phase, measured by
/// `Peers/openhtf_phases.py` in the same run, when it is installed.
enum OpenHTFPeer {
    static func microsecondsPerPhase(root: Workspace) -> (version: String, perPhase: Double)? {
        let script = URL(fileURLWithPath: root.fixtures).deletingLastPathComponent()
            .appendingPathComponent("Sources/acceptance-bench/Peers/openhtf_phases.py").path
        guard FileManager.default.fileExists(atPath: script),
            let version = Python.run(["-c", "import importlib.metadata as m; print(m.version('openhtf'))"]),
            let output = Python.run([script, "2000", "3"]), let perPhase = Double(output)
        else { return nil }
        return (version, perPhase)
    }
}

/// Peers written in Python (OpenHTF, PyYAML), run with the python3 on PATH.
enum Python {
    /// The last line python3 prints, or nil if it fails.
    static func run(_ arguments: [String]) -> String? { lastLine("/usr/bin/env", ["python3"] + arguments) }
}

/// The last line a program prints (its errors discarded), or nil if it cannot start or fails.
func lastLine(_ path: String, _ arguments: [String], environment: [String: String]? = nil) -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    do {
        try process.run()
    } catch {
        return nil
    }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return nil }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init)
}

/// Wall-clock marks a benchmark reads from a run's events: when it started, and when its steps were done (cleanup
/// starting), so the steps are timed without the record written at the end.
final class StepMarks: RunObserver {
    private let marks = Mutex<(start: ContinuousClock.Instant?, stepsDone: ContinuousClock.Instant?)>((nil, nil))

    func handle(_ event: RunEvent) {
        switch event {
        case .runStarted: marks.withLock { $0.start = .now }
        case .cleanupStarted: marks.withLock { $0.stepsDone = .now }
        default: break
        }
    }

    var stepsSeconds: Double? {
        marks.withLock { marks in
            guard let start = marks.start, let done = marks.stepsDone else { return nil }
            return (done - start).seconds
        }
    }
}
