import AcceptanceCore
import Foundation
import Harness
import ModbusCore
import ModbusTransport
import Simulation
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "acceptance-e2e-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Runs leak-test on the simulated rack the way `acceptance run` does, without a terminal.
func runLeakTest(
    scenario: String = "nominal", parameters: [String: String] = [:], observer: any RunObserver = SilentObserver()
)
    async throws -> (RunRecord, PreparedRun)
{
    var request = RunRequest(
        procedure: "leak-test",
        workspace: Workspace(
            procedures: "\(repositoryRoot)/Procedures",
            fixtures: "\(repositoryRoot)/Fixtures"))
    request.scenario = scenario
    request.parameters = parameters
    request.reportsDirectory = temporaryDirectory()
    let prepared = try await PreparedRun.prepare(request)
    let record = await prepared.run(console: AutomaticOperator(), observer: observer, stop: StopController())
    return (record, prepared)
}

func measurement(_ record: RunRecord, _ name: String) -> MeasurementRecord? {
    record.steps.flatMap(\.measurements).first { $0.name == name }
}

@Suite("leak-test end to end on the simulated rack")
struct EndToEndTests {
    @Test func nominalPasses() async throws {
        let (record, prepared) = try await runLeakTest()
        #expect(record.verdict == .pass, "\(record.message ?? "")")
        let decay = try #require(measurement(record, "Pressure decay over hold"))
        #expect(decay.unit == "kPa" && decay.high == 2)
        #expect((decay.value ?? 99) < 1)
        #expect(record.clock.kind == .simulated)
        #expect(record.clock.elapsedSeconds >= 600)
        #expect(record.rackSerial == "SIM-NVL72-0001")
        #expect(record.steps(in: .cleanup).allSatisfy { $0.verdict == .pass })
        #expect(record.cleanupCompleted)
        // The record on disk is the record returned, and says where each value came from.
        let folder = try #require(prepared.folder)
        let json = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: folder.file("record.json"))))
        let object = try #require(json as? [String: Any])
        #expect(object["verdict"] as? String == "PASS")
        #expect((object["procedure"] as? [String: Any])?["sha256"] as? String == prepared.settings.procedure.sha256)
        #expect((object["clock"] as? [String: Any])?["kind"] as? String == "simulated")
        let csv = try String(contentsOfFile: folder.file("series-main-14.csv"), encoding: .utf8)
        #expect(csv.hasPrefix("t_s,cdu.loop_pressure [kPa],cdu.supply_temperature [°C]\n"))
        #expect(csv.split(separator: "\n").count == 602)
        // The CDU was handed back: automatic mode, valve open.
        let cdu = try #require(prepared.rack?.cdus["cdu"]).snapshot()
        #expect(cdu.reportedMode == "automatic" && cdu.valvePosition == 1)
    }

    @Test func aLeakingLoopFailsOnDecay() async throws {
        let (record, prepared) = try await runLeakTest(scenario: "loop-leak")
        #expect(record.verdict == .fail)
        #expect(record.verdict.exitCode == 1)
        let decay = try #require(measurement(record, "Pressure decay over hold"))
        #expect((decay.value ?? 0) > 10 && decay.verdict == .fail)
        #expect(record.steps(in: .cleanup).count == 4)
        #expect(record.steps(in: .cleanup).allSatisfy { $0.verdict == .pass })
        #expect(try #require(prepared.rack?.cdus["cdu"]).snapshot().valvePosition == 1)
    }

    @Test func aPumpThatCannotBuildPressureFails() async throws {
        let (record, _) = try await runLeakTest(scenario: "pump-failure")
        #expect(record.verdict == .fail)
        let failed = try #require(record.steps.first { $0.verdict == .fail })
        #expect(failed.name == "Pressurise loop to test pressure")
        #expect(failed.message?.contains("not reached within") == true)
        #expect(record.steps(in: .main).filter { $0.verdict == .skipped }.count > 5)
        #expect(record.steps(in: .cleanup).allSatisfy { $0.verdict == .pass })
    }

    @Test func aSilentCDUIsAnErrorNamingTheDevice() async throws {
        let (record, _) = try await runLeakTest(scenario: "cdu-silent")
        #expect(record.verdict == .error)
        #expect(record.verdict.exitCode == 2)
        #expect(record.message?.contains("device 'cdu'") == true)
        let hold = try #require(record.steps.first { $0.name == "Hold" })
        #expect(hold.verdict == .error)
        // Cleanup was attempted in full, and its failures are recorded, not hidden.
        #expect(record.steps(in: .cleanup).count == 4)
        #expect(record.steps(in: .cleanup).allSatisfy { $0.verdict == .error && $0.error?.contains("cdu") == true })
        #expect(!record.cleanupCompleted)
    }

    @Test func aTrippedLeakSensorFails() async throws {
        let (record, _) = try await runLeakTest(scenario: "leak-sensor")
        #expect(record.verdict == .fail)
        // The sensor trips 4 minutes in: the cdu-leak interlock (polled every second, apart from the step) stops
        // the hold there, and cleanup depressurises the loop at once.
        let trip = try #require(record.interlocks?.first { $0.name == "cdu-leak" }?.trip)
        #expect(trip.readings == ["cdu.leak_detected = true"])
        #expect(record.message?.contains("interlock 'cdu-leak' tripped") == true)
        let hold = try #require(record.steps.first { $0.name == "Hold" })
        #expect(hold.verdict == .aborted)
        #expect(record.clock.elapsedSeconds < 300)
        #expect(record.steps(in: .cleanup).allSatisfy { $0.verdict == .pass })
    }

    @Test func parametersChangeTheRun() async throws {
        let (record, _) = try await runLeakTest(parameters: ["hold": "2min", "sample_interval": "2s"])
        #expect(record.verdict == .pass)
        let hold = try #require(record.steps.first { $0.name == "Hold" })
        #expect(hold.series?.samples == 61)
        #expect(record.parameters["hold"] == "2 min")
    }

    @Test func mistakesBeforeTheRunNameWhatToFix() async throws {
        let workspace = Workspace(procedures: "\(repositoryRoot)/Procedures", fixtures: "\(repositoryRoot)/Fixtures")
        var request = RunRequest(procedure: "leak-tst", workspace: workspace)
        await #expect(throws: HarnessError.self) { try await PreparedRun.prepare(request, recordToDisk: false) }
        do {
            _ = try await PreparedRun.prepare(request, recordToDisk: false)
        } catch {
            #expect(error.description.contains("did you mean 'leak-test'"))
        }
        request.procedure = "leak-test"
        request.parameters = ["hold": "10 kPa"]
        await #expect(throws: HarnessError.self) { try await PreparedRun.prepare(request, recordToDisk: false) }
        request.parameters = [:]
        request.scenario = "loop-leek"
        do {
            _ = try await PreparedRun.prepare(request, recordToDisk: false)
            Issue.record("unknown scenario accepted")
        } catch {
            #expect(error.description.contains("did you mean 'loop-leak'"))
        }
    }
}

@Suite("Console")
struct ConsoleTests {
    @Test func showsTheDecayWithUnitAndLimitAndTheSimulatedTime() async throws {
        let path = temporaryDirectory() + "/console.txt"
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(descriptor >= 0)
        var request = RunRequest(
            procedure: "leak-test",
            workspace: Workspace(
                procedures: "\(repositoryRoot)/Procedures",
                fixtures: "\(repositoryRoot)/Fixtures"))
        request.reportsDirectory = temporaryDirectory()
        request.scenario = "loop-leak"
        let prepared = try await PreparedRun.prepare(request)
        let reporter = ConsoleReporter(
            style: .plain, output: ConsoleOutput(descriptor: descriptor), clock: prepared.clock,
            header: .init(
                scenario: "loop-leak", simulated: true, timeScale: nil,
                folder: prepared.folder?.path))
        let record = await prepared.run(console: AutomaticOperator(), observer: reporter, stop: StopController())
        close(descriptor)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(record.verdict == .fail)
        #expect(text.contains("SIMULATED rack (scenario 'loop-leak')"))
        #expect(text.contains("FAIL    Hold"))
        #expect(text.contains("Pressure decay over hold = "))
        #expect(text.contains("limit ≤ 2 kPa  ✗ out of limits"))
        #expect(text.contains("VERDICT:  FAIL   the rack FAILED a limit"))
        #expect(text.contains("Simulated 12 min"))
        #expect(text.contains("CLEANUP"))
        #expect(text.contains("Cleanup completed"))
        #expect(!text.contains("\u{1B}["), "no escape codes without a terminal")
    }
}

/// Case 8 of issue 10: what a device or a file says reaches the operator's screen escaped. A BMC's text could clear
/// the screen, set the window title, or draw a forged verdict on a line of its own.
@Suite("Console escapes")
struct ConsoleEscapeTests {
    @Test func deviceAndFileTextCannotSteerTheTerminal() throws {
        let path = temporaryDirectory() + "/console.txt"
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(descriptor >= 0)
        let reporter = ConsoleReporter(
            style: .plain, output: ConsoleOutput(descriptor: descriptor), clock: SimulationClock(),
            header: .init(scenario: nil, simulated: false, timeScale: nil, folder: nil))
        let hostile = "\u{1B}[2J\u{1B}]0;pwned\u{07}ok\n  VERDICT:  PASS   the rack met every limit\u{202E}"
        let step = Step(
            name: "Read serial \u{1B}[8m", group: .main, number: 1,
            kind: .check(Expression.constant(.bool(true), source: "true")),
            location: SourceLocation(file: "p.yaml", line: 1, column: 1))
        var record = StepRecord(
            id: "main.1", group: .main, number: 1, name: step.name, kind: "check", verdict: .error, measurements: [],
            message: hostile, source: "p.yaml:1:1")
        record.error = "device 'compute01' said: " + hostile
        reporter.handle(.stepFinished(step, record))
        reporter.handle(.notice("compute01: " + hostile))
        reporter.handle(.retry(device: "compute01", message: hostile))
        close(descriptor)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{07}" || $0 == "\u{202E}" })
        #expect(text.contains("\\e[2J\\e]0;pwned\\x07ok\\n  VERDICT:  PASS"))
        #expect(!text.split(separator: "\n").contains { $0.hasPrefix("  VERDICT:") }, "no forged verdict line")
    }
}

@Suite("A second vendor's CDU: a new profile, no new code")
struct SecondVendorTests {
    /// The CoolFlow CDU-2000 profile (float32 CDAB, bar, status bitfield) fitted instead of the rack's reference CDU:
    /// no copy of the fixtures, no edit of the rack profile.
    static let coolflow = ["cdu": "coolflow-cdu-2000"]

    @Test(arguments: [
        (SimulatorTransport.memory, "nominal", Verdict.pass), (.tcp, "nominal", .pass),
        (.memory, "loop-leak", .fail), (.tcp, "cdu-silent", .error),
    ])
    func leakTestRunsUnchanged(transport: SimulatorTransport, scenario: String, expected: Verdict) async throws {
        var request = RunRequest(
            procedure: "leak-test",
            workspace: Workspace(
                procedures: "\(repositoryRoot)/Procedures",
                fixtures: "\(repositoryRoot)/Fixtures"))
        request.models = Self.coolflow
        request.scenario = scenario
        request.simulatorTransport = transport
        request.reportsDirectory = temporaryDirectory()
        let prepared = try await PreparedRun.prepare(request)
        #expect(prepared.configuration.profile(of: "cdu")?.model == "coolflow-cdu-2000")
        #expect(prepared.configuration.profiles["reference-cdu"] == nil, "the rack profile's CDU is not loaded")
        let record = await prepared.run(
            console: AutomaticOperator(), observer: SilentObserver(), stop: StopController())
        #expect(record.verdict == expected, "\(record.message ?? "")")
        if expected == .pass {
            let decay = try #require(measurement(record, "Pressure decay over hold"))
            #expect(decay.unit == "bar" && decay.high == 0.02, "limits converted into the device's unit")
        }
    }

    @Test func theSimulatorServesEveryPointOfTheNewProfile() throws {
        let configuration = try RackConfiguration.load(
            rackID: "gb200-nvl72", fixtures: "\(repositoryRoot)/Fixtures",
            protocols: testProtocols, models: Self.coolflow)
        let profile = try #require(configuration.profiles["coolflow-cdu-2000"])
        let cdu = SimulatedCDU(name: "cdu", profile: profile, scenario: .nominal, clock: SimulationClock())
        #expect(cdu.unsimulatedPoints.isEmpty)
        // The status word packs the valve-open switch into bit 4: open at start, nothing else set.
        #expect(cdu.read(.inputRegister, startingAt: 120, count: 1, unit: 1) == .values([0b1_0000]))
        // The humidity sensor is not fitted: its register holds the sentinel 0x8000.
        #expect(cdu.read(.inputRegister, startingAt: 114, count: 1, unit: 1) == .values([0x8000]))
    }
}

@Suite("Protocol faults within the retry budget")
struct ProtocolFaultTests {
    @Test(arguments: [SimulatorTransport.memory, .tcp])
    func aFlakyControllerStillPassesAndEveryRetryIsRecorded(transport: SimulatorTransport) async throws {
        var request = RunRequest(
            procedure: "leak-test",
            workspace: Workspace(
                procedures: "\(repositoryRoot)/Procedures",
                fixtures: "\(repositoryRoot)/Fixtures"))
        request.scenario = "cdu-flaky"
        request.simulatorTransport = transport
        request.reportsDirectory = temporaryDirectory()
        let prepared = try await PreparedRun.prepare(request)
        let record = await prepared.run(
            console: AutomaticOperator(), observer: SilentObserver(), stop: StopController())
        #expect(record.verdict == .pass, "\(record.message ?? "")")
        let retries = record.steps.flatMap { $0.retries ?? [] }
        #expect(retries.contains { $0.contains("Modbus exception 0x06 (server device busy)") })
        #expect(retries.contains { $0.contains("Connection reset by peer") })
        let journal = try String(contentsOfFile: try #require(prepared.folder).file("journal.jsonl"), encoding: .utf8)
        #expect(journal.components(separatedBy: "\"event\":\"retry\"").count - 1 == retries.count)
    }
}

@Suite("The simulated power shelf over Modbus")
struct PowerShelfModbusTests {
    @Test(arguments: [SimulatorTransport.memory, .tcp])
    func sixSuppliesAnswerByUnitIdAndShareTheLoad(transport: SimulatorTransport) async throws {
        let directory = temporaryDirectory()
        try """
        name: psu-fault
        power_shelf: {load: 18 kW}
        faults:
          - {at: 0 s, device: psu3, fault: supply-failure}
        """.write(toFile: "\(directory)/psu-fault.yaml", atomically: true, encoding: .utf8)
        let fixtures = directory + "/fixtures"
        try FileManager.default.copyItem(atPath: "\(repositoryRoot)/Fixtures", toPath: fixtures)
        try FileManager.default.copyItem(
            atPath: "\(directory)/psu-fault.yaml", toPath: "\(fixtures)/scenarios/psu-fault.yaml")
        var request = RunRequest(
            procedure: "",
            workspace: Workspace(
                procedures: "\(repositoryRoot)/Procedures",
                fixtures: fixtures))
        request.scenario = "psu-fault"
        request.simulatorTransport = transport
        let configuration = try RackConfiguration.load(
            rackID: "gb200-nvl72", fixtures: fixtures, protocols: testProtocols)
        let plan = try DevicePlan.make(request: request, configuration: configuration)
        let names = (1...6).flatMap { ["psu\($0).serial_number", "psu\($0).output_power", "psu\($0).output_fault"] }
        let (read, endpoints) = try await plan.withDevices(events: DiscardingTransportEvents()) { bus, connected in
            do {
                return (Result<[String: Value], any Error>.success(try await bus.read(names)), connected.endpoints)
            } catch {
                return (.failure(error), connected.endpoints)
            }
        }
        let values = try read.get()
        #expect(values["psu1.serial_number"] == .text("SIMPSU-0001"))
        #expect(values["psu6.serial_number"] == .text("SIMPSU-0006"))
        #expect(values["psu3.output_fault"] == .bool(true))
        #expect(values["psu3.output_power"] == .quantity(Quantity(0, .watt)))
        for index in [1, 2, 4, 5, 6] {
            #expect(values["psu\(index).output_power"] == .quantity(Quantity(3_600, .watt)))
        }
        if transport == .tcp {
            #expect(endpoints["psu1"]?.hasSuffix("unit 192") == true)
            #expect(endpoints["psu6"]?.hasSuffix("unit 197") == true)
        }
    }
}

@Suite("Station files")
struct StationFileTests {
    @Test func everyShippedStationLoads() throws {
        let directory = "\(repositoryRoot)/Fixtures/stations"
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".yaml") }
        #expect(files.count >= 3)
        for file in files {
            _ = try StationConfiguration.load(path: "\(directory)/\(file)", connectors: Transports.connectors)
        }
        let rtu = try StationConfiguration.load(path: "\(directory)/line-3-rtu.yaml", connectors: Transports.connectors)
        #expect(rtu.bindings.count == 7)
        let psu1 = try #require(rtu.bindings["psu1"] as? ModbusBinding)
        let psu6 = try #require(rtu.bindings["psu6"] as? ModbusBinding)
        #expect(psu6.unit == 197)
        #expect(psu1.summary.hasPrefix("Modbus /dev/"), "bound to a serial line")
        #expect(psu1.summary.dropLast(4) == psu6.summary.dropLast(4), "the shelf's supplies share one line")
        #expect(psu1.settings.retry.retries == 2)
    }

    @Test func onePortHasOneSetOfLineSettings() async throws {
        let path = temporaryDirectory() + "/conflict.yaml"
        try """
        station: s
        rack: gb200-nvl72
        devices:
          psu1: {modbus: {rtu: /dev/ttyUSB1, baud: 19200, unit: 192}}
          psu2: {modbus: {rtu: /dev/ttyUSB1, baud: 9600, unit: 193}}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        var request = RunRequest(
            procedure: "",
            workspace: Workspace(
                procedures: "\(repositoryRoot)/Procedures",
                fixtures: "\(repositoryRoot)/Fixtures"))
        request.station = path
        let configuration = try RackConfiguration.load(
            rackID: "gb200-nvl72", fixtures: "\(repositoryRoot)/Fixtures", protocols: testProtocols)
        do {
            let plan = try DevicePlan.make(request: request, configuration: configuration)
            try await plan.withDevices(events: DiscardingTransportEvents()) { _, _ in }
            Issue.record("two settings for one bus were accepted")
        } catch {
            #expect(error.description.contains("share /dev/ttyUSB1"))
        }
    }

    @Test func mistakesInAStationAreNamedWithPositions() throws {
        let path = temporaryDirectory() + "/station.yaml"
        try """
        station: s
        devices:
          cdu:
            modbus: {tcp: 10.0.4.20, unit: 300, retries: 20}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try StationConfiguration.load(path: path, connectors: Transports.connectors)
            Issue.record("a bad station loaded")
        } catch {
            #expect(error.description.contains("tcp must be host:port"))
            #expect(error.description.contains("unit must be 0 to 247"))
            #expect(error.description.contains("retries must be 0 to 10"))
        }
    }
}
