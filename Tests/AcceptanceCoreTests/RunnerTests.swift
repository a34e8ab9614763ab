import Foundation
import ModbusCore
import Synchronization
import Testing

@testable import AcceptanceCore

@Suite("Runner verdicts and cleanup")
struct RunnerTests {
    let bench: TestBench

    init() throws { bench = try TestBench() }

    static let procedure =
        ProcedureLoaderTests.header + """
            parameters:
              target: 100 kPa
            setup:
              - prompt: Seat the quick-disconnects, press Enter.
            main:
              - set: dev.valve
                value: closed
              - wait: 5 min
              - check: dev.pressure >= target
                name: Pressure reached
              - measure: dev.temperature
                limits: {low: 10 °C, high: 40 °C}
            cleanup:
              - set: dev.valve
                value: open
                name: Reopen valve
              - check: dev.valve == open
                name: Valve open
            """

    func makeRunner(
        _ yaml: String = RunnerTests.procedure, values: [String: Value]? = nil,
        clock: (any RunClock)? = nil, console: any OperatorConsole = AutomaticOperator(),
        observer: any RunObserver = SilentObserver(), inputs: [String: String] = [:],
        folder: RunFolder? = nil, stop: StopController = StopController(),
        configure: (FakeDevice) -> Void = { _ in }
    ) throws -> (Runner, FakeDevice) {
        let (procedure, configuration) = try bench.load(yaml)
        let clock = clock ?? SimulationClock(originDate: Date(timeIntervalSince1970: 1_800_000_000))
        let device = FakeDevice(
            clock: clock,
            values: values ?? [
                "pressure": .quantity(Quantity(120, .kilopascal)), "temperature": .quantity(Quantity(25, .celsius)),
                "valve": .text("open"), "alarm": .bool(false), "mode": .text("auto"),
            ])
        configure(device)
        let settings = RunSettings(
            runID: "test-run", procedure: procedure,
            parameters: try procedure.resolveParameters([:]), inputs: inputs, station: "test")
        let runner = Runner(
            settings: settings, bus: DeviceBus(configuration: configuration, devices: ["dev": device]),
            clock: clock, console: console, observer: observer, folder: folder, stop: stop)
        return (runner, device)
    }

    func verdicts(_ record: RunRecord, _ group: StepGroup) -> [Verdict] { record.steps(in: group).map(\.verdict) }

    @Test func passesAndCleansUp() async throws {
        let (runner, device) = try makeRunner()
        let record = await runner.run()
        #expect(record.verdict == .pass)
        #expect(record.cleanupCompleted)
        #expect(verdicts(record, .main) == [.pass, .pass, .pass, .pass])
        #expect(verdicts(record, .cleanup) == [.pass, .pass])
        #expect(record.steps(in: .setup).first?.confirmedBy == "auto")
        #expect(device.writes.map(\.0) == ["valve", "valve"])
        #expect(record.clock.elapsedSeconds == 300, "the 5 min wait ran on simulated time")
        let temperature = try #require(record.steps(in: .main).last?.measurements.first)
        #expect(temperature.value == 25 && temperature.unit == "°C" && temperature.low == 10 && temperature.high == 40)
    }

    @Test func failingStepSkipsTheRestOfMainButNotCleanup() async throws {
        let (runner, _) = try makeRunner(values: [
            "pressure": .quantity(Quantity(80, .kilopascal)), "valve": .text("open"),
            "temperature": .quantity(Quantity(25, .celsius)),
        ])
        let record = await runner.run()
        #expect(record.verdict == .fail)
        #expect(verdicts(record, .main) == [.pass, .pass, .fail, .skipped])
        #expect(verdicts(record, .cleanup) == [.pass, .pass])
        #expect(record.message?.contains("Pressure reached") == true)
        #expect(record.cleanupCompleted)
    }

    @Test func limitsAreInclusiveAndConvertUnits() async throws {
        let yaml =
            ProcedureLoaderTests.header + """
                main:
                  - measure: dev.pressure
                    limits: {low: 1 bar, high: 1.2 bar}
                """
        for (kPa, expected) in [(100.0, Verdict.pass), (120, .pass), (99.9, .fail), (120.1, .fail)] {
            let (runner, _) = try makeRunner(yaml, values: ["pressure": .quantity(Quantity(kPa, .kilopascal))])
            let record = await runner.run()
            #expect(record.verdict == expected, "\(kPa) kPa")
            #expect(record.steps.first?.measurements.first?.low == 100)
        }
    }

    @Test func aSilentDeviceIsAnErrorNeverAFail() async throws {
        let (runner, _) = try makeRunner { $0.state.withLock { $0.failing = ["pressure"] } }
        let record = await runner.run()
        #expect(record.verdict == .error)
        #expect(verdicts(record, .main) == [.pass, .pass, .error, .skipped])
        let step = try #require(record.steps(in: .main).first { $0.verdict == .error })
        #expect(step.error?.contains("device 'dev'") == true)
        #expect(step.error?.contains("no response") == true)
        #expect(verdicts(record, .cleanup) == [.pass, .pass], "cleanup still ran")
    }

    @Test func everyCleanupStepRunsEvenAfterOneFails() async throws {
        let (runner, _) = try makeRunner { $0.state.withLock { $0.failingWrites = ["valve"] } }
        let record = await runner.run()
        // The first main step also writes the valve, so main errors; cleanup is still attempted in full.
        #expect(verdicts(record, .cleanup).count == 2)
        #expect(record.steps(in: .cleanup)[0].verdict == .error)
        #expect(record.steps(in: .cleanup)[1].verdict == .pass)
        #expect(!record.cleanupCompleted)
        #expect(record.verdict == .error)
    }

    @Test func noReadingIsAnErrorNeverAMeasurement() async throws {
        let yaml =
            ProcedureLoaderTests.header + """
                main:
                  - measure: dev.temperature
                    limits: {high: 40 °C}
                """
        let (runner, _) = try makeRunner(yaml, values: ["temperature": .missing])
        let record = await runner.run()
        #expect(record.verdict == .error)
        #expect(record.steps.first?.error?.contains("no reading") == true)
    }

    @Test func aCleanupProblemAfterAPassIsNotAPass() async throws {
        let yaml =
            ProcedureLoaderTests.header + """
                main:
                  - check: dev.pressure > 1 kPa
                  - set: dev.valve
                    value: open
                cleanup:
                  - check: dev.valve == closed
                    name: Valve shut
                """
        let (runner, _) = try makeRunner(yaml)
        let record = await runner.run()
        #expect(record.verdict == .fail)
        #expect(record.message?.contains("cleanup did not complete") == true)
        #expect(!record.cleanupCompleted)
    }

    @Test func stopDuringAWaitAbortsAndStillCleansUp() async throws {
        let stop = StopController()
        let dispositions = Mutex<[StopController.Disposition]>([])
        let observer = RecordingObserver(
            onStepStarted: { step in
                if case .wait = step.kind { dispositions.withLock { $0.append(stop.requestStop(.interrupt)) } }
            },
            onCleanup: {
                // A second Ctrl-C during cleanup is refused.
                dispositions.withLock { $0.append(stop.requestStop(.interrupt)) }
            })
        let (runner, device) = try makeRunner(clock: StuckClock(), observer: observer, stop: stop)
        let record = await runner.run()
        #expect(record.verdict == .aborted)
        #expect(record.verdict.exitCode == 3)
        #expect(verdicts(record, .main) == [.pass, .aborted, .skipped, .skipped])
        #expect(verdicts(record, .cleanup) == [.pass, .pass])
        #expect(dispositions.withLock { $0 } == [.stopping, .cleanupRunning])
        #expect(device.writes.last?.1 == .text("open"), "cleanup reopened the valve")
        #expect(record.message?.contains("SIGINT") == true)
    }

    @Test func operatorDecliningAPromptAborts() async throws {
        let (runner, device) = try makeRunner(console: ScriptedOperator(declines: true))
        let record = await runner.run()
        #expect(record.verdict == .aborted)
        #expect(verdicts(record, .setup) == [.aborted])
        #expect(verdicts(record, .main) == [.skipped, .skipped, .skipped, .skipped])
        // Nothing was actuated, so there is nothing to return the rack from: cleanup is not run.
        #expect(device.writes.isEmpty)
        #expect(verdicts(record, .cleanup) == [.skipped, .skipped])
        #expect(record.steps.last?.message == "not needed: nothing was actuated")
        #expect(record.cleanupCompleted)
    }

    /// An unreachable device (nothing ever written to it) no longer gets cleanup retries and a warning that the rack
    /// may not be safe.
    @Test func aRunThatNeverActuatedSkipsCleanup() async throws {
        let yaml =
            ProcedureLoaderTests.header + """
                main:
                  - check: dev.pressure > 1 kPa
                  - set: dev.valve
                    value: open
                cleanup:
                  - set: dev.valve
                    value: closed
                """
        let (runner, device) = try makeRunner(yaml, values: ["pressure": .missing])
        let record = await runner.run()
        #expect(record.verdict == .error)
        #expect(device.writes.isEmpty)
        #expect(verdicts(record, .cleanup) == [.skipped])
        #expect(record.cleanupCompleted)
    }

    static let serialProcedure =
        ProcedureLoaderTests.header + """
            setup:
              - prompt: Scan the rack serial
                input: rack_serial
                pattern: 'SN[0-9]{4}'
            main:
              - set: dev.valve
                value: closed
            cleanup:
              - set: dev.valve
                value: open
            """

    @Test func aValueNobodyCanGiveIsAnErrorBeforeAnythingMoves() async throws {
        let (runner, device) = try makeRunner(Self.serialProcedure)
        let record = await runner.run()
        #expect(record.verdict == .error)
        #expect(record.message?.contains("--input rack_serial=") == true)
        #expect(device.writes.isEmpty, "nothing was actuated, not even cleanup")
        #expect(record.steps.allSatisfy { $0.verdict == .skipped })
    }

    @Test func inputsComeFromTheCommandLineOrTheOperatorAndAreChecked() async throws {
        let (given, _) = try makeRunner(Self.serialProcedure, inputs: ["rack_serial": "SN1234"])
        let record = await given.run()
        #expect(record.verdict == .pass)
        #expect(record.rackSerial == "SN1234")
        #expect(record.steps.first?.confirmedBy == "command-line")

        let (bad, device) = try makeRunner(Self.serialProcedure, inputs: ["rack_serial": "nope"])
        let badRecord = await bad.run()
        #expect(badRecord.verdict == .error)
        #expect(device.writes.isEmpty)

        let (asked, _) = try makeRunner(
            Self.serialProcedure, console: ScriptedOperator(answers: ["rack_serial": "SN4321"]))
        let askedRecord = await asked.run()
        #expect(askedRecord.rackSerial == "SN4321")
        #expect(askedRecord.steps.first?.confirmedBy == "operator")
    }

    @Test func aMistypedValueIsExplainedInThePromptsOwnWordsNotAsARegularExpression() async throws {
        final class Typist: OperatorConsole, @unchecked Sendable {
            // Touched by the one run's prompt step only, one call at a time.
            var typed = ["sn-12", "SN1234"]
            var problems: [String?] = []
            var isInteractive: Bool { true }
            func confirm(_ text: String, step: Step) async throws -> Bool { true }
            func ask(
                _ text: String, input: String, pattern: String?, step: Step, problem: String?
            ) async throws
                -> String
            {
                problems.append(problem)
                return typed.removeFirst()
            }
        }
        let hinted = Self.serialProcedure.replacingOccurrences(
            of: "pattern: 'SN[0-9]{4}'",
            with: "pattern: 'SN[0-9]{4}'\n    pattern_hint: SN and four digits, such as SN0042")
        let typist = Typist()
        let (runner, _) = try makeRunner(hinted, console: typist)
        let record = await runner.run()
        #expect(record.rackSerial == "SN1234")
        #expect(typist.problems == [nil, "'sn-12' is not SN and four digits, such as SN0042; try again"])
        // Without a hint the pattern is named as what it is, not thrown at the technician bare.
        let bare = Typist()
        let (plain, _) = try makeRunner(Self.serialProcedure, console: bare)
        _ = await plain.run()
        #expect(
            bare.problems.last
                == "'sn-12' is not in the form the procedure asks for (the pattern SN[0-9]{4}); try again")
    }

    @Test func waitUntilTimesOutAsAFailOnTheSimulatedClock() async throws {
        let yaml =
            ProcedureLoaderTests.header + """
                main:
                  - wait-until: dev.pressure >= 200 kPa
                    timeout: 3 min
                    poll: 2 s
                """
        let clock = SimulationClock()
        let (runner, device) = try makeRunner(yaml, clock: clock)
        let record = await runner.run()
        #expect(record.verdict == .fail)
        #expect(record.steps.first?.message?.contains("not reached within 3 min") == true)
        #expect(abs(record.clock.elapsedSeconds - 180) < 1e-6)
        #expect(device.state.withLock { $0.reads } == 91, "a reading every 2 s from 0 s to 180 s")
    }

    @Test func waitUntilPassesWhenTheConditionComesTrue() async throws {
        let yaml =
            ProcedureLoaderTests.header + """
                main:
                  - wait-until: dev.pressure >= 200 kPa
                    timeout: 3 min
                """
        let (procedure, configuration) = try bench.load(yaml)
        let simulation = SimulationClock()
        let device = FakeDevice(clock: simulation, values: [:]) { name, seconds in
            name == "pressure" ? .quantity(Quantity(100 + seconds, .kilopascal)) : nil
        }
        let settings = RunSettings(runID: "r", procedure: procedure, parameters: [:], station: "test")
        let record = await Runner(
            settings: settings, bus: DeviceBus(configuration: configuration, devices: ["dev": device]),
            clock: simulation, console: AutomaticOperator()
        ).run()
        #expect(record.verdict == .pass)
        let elapsed = try #require(record.steps.first?.measurements.first { $0.name == "time to condition" })
        #expect(elapsed.value == 100)
    }

    @Test func samplingWritesTheJournalAsItGoesAndDerivesMeasurements() async throws {
        let yaml =
            ProcedureLoaderTests.header + """
                main:
                  - sample: [dev.pressure, dev.temperature]
                    every: 1 s
                    for: 10 min
                    measurements:
                      - {name: decay, of: dev.pressure, statistic: drop, limits: {high: 2 kPa}}
                      - {name: rate, of: dev.pressure, statistic: slope, limits: {low: -0.5 kPa/min}}
                      - {name: mean temperature, of: dev.temperature, statistic: mean}
                """
        let reports = bench.directory + "/reports"
        let folder = try RunFolder(reportsDirectory: reports, runID: "sampled")
        let (procedure, configuration) = try bench.load(yaml)
        let clock = SimulationClock()
        // 300 kPa falling at 0.1 kPa/min: 1 kPa over 10 minutes.
        let device = FakeDevice(clock: clock, values: ["temperature": .quantity(Quantity(25, .celsius))]) {
            name, seconds in
            name == "pressure" ? .quantity(Quantity(300 - seconds / 600, .kilopascal)) : nil
        }
        let settings = RunSettings(runID: "sampled", procedure: procedure, parameters: [:], station: "test")
        let record = await Runner(
            settings: settings, bus: DeviceBus(configuration: configuration, devices: ["dev": device]),
            clock: clock, console: AutomaticOperator(), folder: folder
        ).run()
        #expect(record.verdict == .pass)
        let measurements = try #require(record.steps.first?.measurements)
        #expect(abs((measurements[0].value ?? 0) - 1) < 1e-9 && measurements[0].unit == "kPa")
        #expect(abs((measurements[1].value ?? 0) - -0.1) < 1e-9 && measurements[1].unit == "kPa/min")
        #expect(measurements[2].value == 25)

        let journal = try String(contentsOfFile: folder.file("journal.jsonl"), encoding: .utf8)
        let lines = journal.split(separator: "\n")
        let samples = lines.filter { $0.contains("\"event\":\"sample\"") }
        #expect(samples.count == 601)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["event"] is String, "every line is an event: \(line)")
        }
        let csv = try String(contentsOfFile: folder.file("series-main-1.csv"), encoding: .utf8)
        #expect(csv.hasPrefix("t_s,dev.pressure [kPa],dev.temperature [°C]\n0,300,25\n1,"))
        #expect(csv.split(separator: "\n").count == 602)
        let recordData = try Data(contentsOf: URL(fileURLWithPath: folder.file("record.json")))
        let decoded = try JSONDecoder().decode(RunRecord.self, from: recordData)
        #expect(decoded.verdict == .pass)
        #expect(decoded.steps.first?.series?.file == "series-main-1.csv")
    }

    @Test(arguments: [
        "wait: 1e20 s", "wait: -5 s", "sample: dev.pressure\n    every: 1 ms\n    for: 2 h",
        "sample: dev.pressure\n    every: 11 min\n    for: 10 min",
        "wait-until: dev.alarm\n    timeout: 1 min\n    poll: 0 s",
    ])
    func absurdTimesAreAnErrorBeforeAnythingMoves(step: String) async throws {
        let yaml = ProcedureLoaderTests.header + "main:\n  - set: dev.valve\n    value: closed\n  - " + step + "\n"
        // Times made of literals are refused when the procedure is checked; the rest in preflight.
        if step.hasPrefix("wait:") {
            #expect(throws: DiagnosticsError.self) { try makeRunner(yaml) }
            return
        }
        let (runner, device) = try makeRunner(yaml)
        let record = await runner.run()
        #expect(record.verdict == .error, "\(record.message ?? "")")
        #expect(device.writes.isEmpty, "caught in preflight, before the valve moved")
    }

    @Test func theLastSampleIsAtTheEndOfTheDuration() async throws {
        let yaml =
            ProcedureLoaderTests.header + """
                main:
                  - sample: dev.pressure
                    every: 7 min
                    for: 10 min
                    measurements: [{name: decay, statistic: drop, limits: {high: 2 kPa}}]
                """
        let clock = SimulationClock()
        let (procedure, configuration) = try bench.load(yaml)
        let device = FakeDevice(clock: clock, values: [:]) { name, seconds in
            name == "pressure" ? .quantity(Quantity(300 - seconds / 100, .kilopascal)) : nil
        }
        let settings = RunSettings(runID: "r", procedure: procedure, parameters: [:], station: "test")
        let record = await Runner(
            settings: settings, bus: DeviceBus(configuration: configuration, devices: ["dev": device]),
            clock: clock, console: AutomaticOperator()
        ).run()
        #expect(record.clock.elapsedSeconds == 600)
        #expect(record.verdict == .fail, "6 kPa over the full 10 minutes, not 4.2 over 7")
        #expect(abs((record.steps.first?.measurements.first?.value ?? 0) - 6) < 1e-9)
    }

    @Test func nothingMovesAfterAStopRequest() async throws {
        let stop = StopController()
        let observer = RecordingObserver(onStepStarted: { step in
            // The stop arrives while the first main step (a write) is in flight.
            if step.id == "main.1" { stop.requestStop(.terminate) }
        })
        let (runner, device) = try makeRunner(observer: observer, stop: stop)
        let record = await runner.run()
        #expect(record.verdict == .aborted)
        #expect(record.steps(in: .main).dropFirst().allSatisfy { $0.verdict == .skipped })
        #expect(device.writes.count <= 2, "at most the in-flight write, then only cleanup: \(device.writes)")
        #expect(device.writes.last?.1 == .text("open"))
    }

    @Test func patternsMatchTheWholeValue() async throws {
        let yaml =
            ProcedureLoaderTests.header + """
                setup:
                  - prompt: Serial
                    input: rack_serial
                    pattern: 'NVL72-[0-9]{6}|NVL72-[0-9]{6}-R[0-9]'
                main:
                  - check: dev.alarm == false
                """
        for (serial, verdict) in [
            ("NVL72-000123-R1", Verdict.pass), ("NVL72-000123", .pass), ("xNVL72-000123", .error),
        ] {
            let (runner, _) = try makeRunner(yaml, inputs: ["rack_serial": serial])
            #expect(await runner.run().verdict == verdict, "\(serial)")
        }
    }

    @Test func hugeValuesDoNotTrapTheCodec() throws {
        let states = PointDefinition(
            name: "m", table: .inputRegister, address: 0, type: .float32,
            states: [0: "off", 1: "on"])
        #expect(try PointCodec.decode([0x7F7F, 0xFFFF], for: states) == .text("unknown(3.4028234663852886e+38)"))
        #expect(throws: PointCodecError.self) { try PointCodec.encode(.number(1e30), for: states) }
        #expect(Duration.seconds(1e300) > .seconds(1_000_000))
        #expect(Quantity(1e20, .second).duration == nil)
    }

    @Test func aPacedClockAlwaysReachesItsDeadline() async throws {
        for scale in [0.001, 1, 1e6] {
            let clock = SimulationClock(timeScale: scale)
            try await clock.sleep(until: .milliseconds(scale < 1 ? 1 : 10_000))
            #expect(clock.now() == .milliseconds(scale < 1 ? 1 : 10_000))
        }
    }

    @Test func twoRunsNeverShareAFolder() throws {
        let reports = bench.directory + "/reports"
        _ = try RunFolder(reportsDirectory: reports, runID: "same")
        #expect(throws: RecordWriteError.self) { try RunFolder(reportsDirectory: reports, runID: "same") }
    }

    @Test func statisticsOfASeries() {
        let times = [0.0, 60, 120, 180]
        let values = [10.0, 9, 8.5, 7]
        #expect(SeriesStatistic.first.value(times: times, values: values) == 10)
        #expect(SeriesStatistic.last.value(times: times, values: values) == 7)
        #expect(SeriesStatistic.min.value(times: times, values: values) == 7)
        #expect(SeriesStatistic.max.value(times: times, values: values) == 10)
        #expect(SeriesStatistic.mean.value(times: times, values: values) == 8.625)
        #expect(SeriesStatistic.delta.value(times: times, values: values) == -3)
        #expect(SeriesStatistic.drop.value(times: times, values: values) == 3)
        #expect(abs(SeriesStatistic.slope.value(times: times, values: values) - -0.95) < 1e-12)
        #expect(SeriesStatistic.slope.value(times: [0], values: [1]).isNaN)
    }
}

@Suite("Simulation clock pacing")
struct SimulationClockPacingTests {
    @Test func concurrentPacedSleepersAdvanceAtThePacedRateNotFaster() async throws {
        // Ten members of a for_each step each sleep 1 simulated second at 10× real time: that is 0.1 s of real time,
        // however many sleep at once (each used to add its own slice, so ten sleepers ran the clock ten times fast).
        // Real time here is a manual clock the test moves, so the check does not depend on the machine's load.
        let wall = ManualClock()
        let clock = SimulationClock(timeScale: 10, pacer: wall)
        let sleepers = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<10 { group.addTask { try await clock.sleep(until: .seconds(1)) } }
                try await group.waitForAll()
            }
        }
        await wall.waitForSleepers(10)
        wall.advance(by: .milliseconds(50))
        await wall.waitForSleepers(10)
        #expect(clock.now() == .milliseconds(500), "50 ms of real time at 10× is 0.5 simulated seconds, whoever slept")
        wall.advance(by: .milliseconds(50))
        try await sleepers.value
        #expect(clock.now() == .seconds(1))
    }
}

/// A clock of real time that moves only when a test says so: sleepers wait until it is advanced past their deadline.
final class ManualClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct State {
        var now = Duration.zero
        var sleepers: [(deadline: Duration, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    var now: Instant { Instant(offset: state.withLock { $0.now }) }
    var minimumResolution: Duration { .nanoseconds(1) }

    func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        await withCheckedContinuation { continuation in
            let due = state.withLock { state -> Bool in
                if deadline.offset <= state.now { return true }
                state.sleepers.append((deadline.offset, continuation))
                return false
            }
            if due { continuation.resume() }
        }
    }

    /// Moves time on and wakes every sleeper whose deadline has come.
    func advance(by duration: Duration) {
        let woken = state.withLock { state in
            state.now += duration
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }.map(\.continuation)
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for continuation in woken { continuation.resume() }
    }

    /// Returns once `count` tasks are asleep on this clock.
    func waitForSleepers(_ count: Int) async {
        while state.withLock({ $0.sleepers.count }) < count { await Task.yield() }
    }
}
