import Foundation
import Synchronization
import Testing

@testable import AcceptanceCore

@Suite("retry, skip_if and only_if")
struct FlowControlTests {
    let bench: TestBench

    init() throws { bench = try TestBench() }

    /// A run of `yaml` against a device whose pressure rises 1 kPa per simulated second from 100 kPa.
    func run(
        _ yaml: String, folder: RunFolder? = nil, parameters: [String: String] = [:],
        observer: any RunObserver = SilentObserver(), stop: StopController = StopController(),
        configure: (FakeDevice) -> Void = { _ in }
    ) throws -> (Runner, FakeDevice) {
        let (procedure, configuration) = try bench.load(ProcedureLoaderTests.header + yaml)
        let clock = SimulationClock(originDate: Date(timeIntervalSince1970: 1_800_000_000))
        let device = FakeDevice(
            clock: clock, values: ["valve": .text("open"), "alarm": .bool(false), "mode": .text("auto")]
        ) { name, seconds in
            name == "pressure" ? .quantity(Quantity(100 + seconds, .kilopascal)) : nil
        }
        configure(device)
        let settings = RunSettings(
            runID: "flow", procedure: procedure, parameters: try procedure.resolveParameters(parameters),
            station: "test")
        let runner = Runner(
            settings: settings, bus: DeviceBus(configuration: configuration, devices: ["dev": device]),
            clock: clock, console: AutomaticOperator(), observer: observer, folder: folder, stop: stop)
        return (runner, device)
    }

    static let retried = """
        main:
          - measure: dev.pressure
            name: Loop pressure reached
            limits: {low: 115 kPa}
            retry: {attempts: 3, delay: 10 s}
          - check: dev.valve == open
        """

    @Test func aStepThatPassesOnItsThirdAttemptRecordsThreeAttempts() async throws {
        let folder = try RunFolder(reportsDirectory: bench.directory + "/reports", runID: "retried")
        let (runner, _) = try run(Self.retried, folder: folder)
        let record = await runner.run()
        #expect(record.verdict == .pass)
        let step = try #require(record.steps.first)
        #expect(step.verdict == .pass)
        let attempts = try #require(step.attempts)
        #expect(attempts.map(\.attempt) == [1, 2, 3])
        #expect(attempts.map(\.verdict) == [.fail, .fail, .pass])
        #expect(attempts.map { $0.measurements.first?.value } == [100, 110, 120], "10 s apart on the run's clock")
        #expect(step.message?.hasPrefix("passed on attempt 3 of 3") == true, "\(step.message ?? "")")
        #expect(step.measurements.first?.value == 120, "the step's measurement is the attempt that passed")
        #expect(record.clock.elapsedSeconds == 20)
        #expect(record.steps.dropFirst().first?.verdict == .pass, "the run went on")

        // The journal has each failed attempt as it happened, and the record keeps all three.
        let journal = try String(contentsOfFile: folder.file("journal.jsonl"), encoding: .utf8)
        let attemptLines = journal.split(separator: "\n").filter { $0.contains("\"event\":\"step_attempt\"") }
        #expect(attemptLines.count == 2)
        #expect(attemptLines.first?.contains("\"attempt\":1") == true)
        #expect(attemptLines.first?.contains("\"retry_in_s\":10") == true)
        let written = try JSONDecoder().decode(
            RunRecord.self, from: Data(contentsOf: URL(fileURLWithPath: folder.file("record.json"))))
        #expect(written.steps.first?.attempts?.count == 3)
    }

    @Test func aStepThatNeverPassesFailsWithEveryAttemptRecorded() async throws {
        let (runner, _) = try run(Self.retried.replacingOccurrences(of: "115 kPa", with: "500 kPa"))
        let record = await runner.run()
        #expect(record.verdict == .fail)
        let step = try #require(record.steps.first)
        #expect(step.attempts?.map(\.verdict) == [.fail, .fail, .fail])
        #expect(step.message?.hasPrefix("attempt 3 of 3") == true)
        #expect(record.steps.dropFirst().first?.verdict == .skipped, "a failed step still ends main")
    }

    @Test func errorsAreRetriedOnlyWhenTheStepSaysSo() async throws {
        // By default only FAIL earns another attempt: a device that does not answer is an ERROR at once.
        let (plain, _) = try run(Self.retried) { $0.state.withLock { $0.failing = ["pressure"] } }
        let first = await plain.run()
        #expect(first.verdict == .error)
        #expect(first.steps.first?.attempts?.count == 1)

        // `on: [fail, error]`: the device comes back before the second attempt.
        let device = Mutex<FakeDevice?>(nil)
        let observer = RecordingObserver()
        let healing = HealingObserver { device.withLock { $0 }?.state.withLock { $0.failing = [] } }
        let (runner, fake) = try run(
            Self.retried.replacingOccurrences(of: "delay: 10 s}", with: "delay: 10 s, on: [fail, error]}"),
            observer: MultiObserver([observer, healing])
        ) { $0.state.withLock { $0.failing = ["pressure"] } }
        device.withLock { $0 = fake }
        let record = await runner.run()
        #expect(record.verdict == .pass)
        let attempts = try #require(record.steps.first?.attempts)
        #expect(attempts.map(\.verdict) == [.error, .fail, .pass])
        #expect(attempts.first?.error?.contains("no response") == true)
    }

    @Test func aStopDuringTheDelayBetweenAttemptsAborts() async throws {
        let stop = StopController()
        let observer = HealingObserver { _ = stop.requestStop(.interrupt) }
        let (runner, device) = try run(Self.retried, observer: observer, stop: stop)
        let record = await runner.run()
        #expect(record.verdict == .aborted)
        #expect(record.steps.first?.verdict == .aborted)
        #expect(record.steps.first?.attempts?.count == 1, "no attempt after the stop")
        #expect(device.state.withLock { $0.readLog.count } == 1, "nothing read after the stop")
    }

    @Test func aStoppedRunsCleanupStillRetries() async throws {
        let stop = StopController()
        let device = Mutex<FakeDevice?>(nil)
        let stopping = RecordingObserver(onStepStarted: { step in
            if case .wait = step.kind { _ = stop.requestStop(.interrupt) }
        })
        // The device answers again once the first cleanup attempt has failed.
        let healing = HealingObserver { device.withLock { $0 }?.state.withLock { $0.failing = [] } }
        let yaml = """
            main:
              - set: dev.valve
                value: closed
              - wait: 5 min
            cleanup:
              - measure: dev.temperature
                name: Coolant temperature read back
                retry: {attempts: 3, on: error, delay: 10 s}
            """
        let (runner, fake) = try run(yaml, observer: MultiObserver([stopping, healing]), stop: stop) {
            $0.state.withLock { $0.failing = ["temperature"] }
        }
        device.withLock { $0 = fake }
        let record = await runner.run()
        #expect(record.verdict == .aborted)
        let cleanup = try #require(record.steps(in: .cleanup).first)
        #expect(cleanup.verdict == .pass, "\(cleanup.error ?? cleanup.message ?? "")")
        #expect(cleanup.attempts?.map(\.verdict) == [.error, .pass], "cleanup tried again after the stop")
    }

    @Test func aStopDuringAnAttemptIsRecordedAsThatAttempt() async throws {
        let stop = StopController()
        let yaml = """
            main:
              - wait-until: dev.pressure >= 1000 kPa
                timeout: 10 min
                retry: 2
            """
        let observer = RecordingObserver(onStepStarted: { _ in _ = stop.requestStop(.interrupt) })
        let (procedure, configuration) = try bench.load(ProcedureLoaderTests.header + yaml)
        let device = FakeDevice(clock: StuckClock(), values: ["pressure": .quantity(Quantity(100, .kilopascal))])
        let runner = Runner(
            settings: RunSettings(runID: "r", procedure: procedure, parameters: [:], station: "test"),
            bus: DeviceBus(configuration: configuration, devices: ["dev": device]), clock: StuckClock(),
            console: AutomaticOperator(), observer: observer, stop: stop)
        let record = await runner.run()
        let step = try #require(record.steps.first)
        #expect(step.verdict == .aborted)
        #expect(step.attempts?.map(\.verdict) == [.aborted], "the last attempt is the step's verdict")
    }

    @Test func skipIfAndOnlyIfRecordTheReasonAndTheRunGoesOn() async throws {
        let yaml = """
            parameters:
              pressure_check: {default: 0 kPa, min: 0 kPa, max: 1 kPa, description: 1 kPa runs the pressure check}
            main:
              - check: dev.pressure >= 100 kPa
                name: Pressure check
                skip_if: pressure_check == 0 kPa
              - measure: dev.pressure
                name: Pressure while the alarm is active
                only_if: dev.alarm
              - check: dev.valve == open
                name: Valve open
            """
        let (runner, _) = try run(yaml)
        let record = await runner.run()
        #expect(record.verdict == .pass)
        #expect(record.steps.map(\.verdict) == [.skipped, .skipped, .pass])
        #expect(record.steps[0].message == "skipped: skip_if pressure_check == 0 kPa is true (pressure_check = 0 kPa)")
        #expect(record.steps[1].message == "skipped: only_if dev.alarm is false (dev.alarm = false)")

        let (again, _) = try run(yaml, parameters: ["pressure_check": "1 kPa"])
        let ran = await again.run()
        #expect(ran.steps.map(\.verdict) == [.pass, .skipped, .pass])
    }

    @Test func mistakesAreReportedAtTheirPlace() throws {
        let result = try bench.check(
            ProcedureLoaderTests.header + """
                main:
                  - prompt: Seat the quick-disconnects
                    retry: 3
                  - check: dev.valve == open
                    retry: 1
                  - check: dev.valve == open
                    retry: {attempts: 2, on: abort}
                  - check: dev.valve == open
                    skip_if: dev.alarm
                    only_if: dev.alarm
                  - check: dev.valve == open
                    skip_if: dev.pressure
                  - check: dev.valve == open
                    retry: {attempts: 2, delay: 5 kPa}
                cleanup:
                  - set: dev.valve
                    value: open
                    only_if: dev.alarm
                """)
        let errors = result.diagnostics.filter { $0.severity == .error }.map {
            "\($0.location.line):\($0.location.column) \($0.message)"
        }
        #expect(errors.count == 7, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("7:12 a prompt is not retried") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("9:12 retry is the number of attempts in all") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("11:30 retry on 'abort'") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("14:14 a step has 'skip_if' or 'only_if', not both") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("16:14 skip_if must be true/false") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("18:33 retry delay must be a time") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("22:14 cleanup") && $0.contains("always run") }, "\(errors)")
    }
}

/// Runs an action at each failed attempt (heals a device, or stops the run during the delay).
struct HealingObserver: RunObserver {
    let action: @Sendable () -> Void
    func handle(_ event: RunEvent) {
        if case .attemptFailed = event { action() }
    }
}

struct MultiObserver: RunObserver {
    let observers: [any RunObserver]
    init(_ observers: [any RunObserver]) { self.observers = observers }
    func handle(_ event: RunEvent) { for observer in observers { observer.handle(event) } }
}
