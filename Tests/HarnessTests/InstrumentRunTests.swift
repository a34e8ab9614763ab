import AcceptanceCore
import Foundation
import Harness
import Simulation
import Testing

/// Runs a procedure on the simulated rack and bench, in memory, as `acceptance run` does without a terminal.
func runSimulated(
    _ procedure: String, scenario: String = "nominal", station: String? = nil, allowUncalibrated: Bool = false
) async throws -> (RunRecord, PreparedRun) {
    var request = RunRequest(
        procedure: procedure,
        workspace: Workspace(procedures: "\(repositoryRoot)/Procedures", fixtures: "\(repositoryRoot)/Fixtures"))
    request.scenario = scenario
    request.station = station
    request.allowUncalibrated = allowUncalibrated
    request.reportsDirectory = temporaryDirectory()
    let prepared = try await PreparedRun.prepare(request)
    let record = await prepared.run(console: AutomaticOperator(), observer: SilentObserver(), stop: StopController())
    return (record, prepared)
}

@Suite("Procedures with the station's instruments, on the simulated bench")
struct InstrumentRunTests {
    @Test("leak-test checks the CDU against the reference gauge at the start and end of the hold, and lists the gauge")
    func leakTestCrossChecks() async throws {
        let (record, _) = try await runSimulated("leak-test")
        #expect(record.verdict == .pass, "\(record.message ?? "")")
        for name in ["at start of hold", "at end of hold"] {
            let agreement = try #require(measurement(record, "CDU pressure agrees with reference gauge \(name)"))
            #expect(agreement.verdict == .pass && agreement.high == 3 && agreement.unit == "kPa")
            #expect((agreement.value ?? 9) < 0.5)
        }
        let gauge = try #require(measurement(record, "Reference gauge at start of hold"))
        #expect((gauge.value ?? 0) > 290)
        let instrument = try #require(record.instruments?.first { $0.name == "gauge" })
        #expect(instrument.simulated && instrument.profile == "scpi-pressure-gauge")
        #expect(instrument.serial == "SIMGAUGE0002" && instrument.firmware == "1.0.0")
    }

    @Test("sensor-drift: the CDU's transducer hides a leak, and the gauge agreement check fails for it")
    func sensorDrift() async throws {
        let (record, _) = try await runSimulated("leak-test", scenario: "sensor-drift")
        #expect(record.verdict == .fail)
        // The CDU's own readings show no decay: without the gauge this rack would pass.
        #expect(measurement(record, "Pressure decay over hold")?.verdict == .pass)
        let end = try #require(measurement(record, "CDU pressure agrees with reference gauge at end of hold"))
        #expect(end.verdict == .fail && (end.value ?? 0) > 3)
        let failed = record.steps.filter { $0.verdict == .fail }.map(\.name)
        #expect(failed == ["CDU pressure agrees with reference gauge at end of hold"])
        #expect(record.cleanupCompleted)
    }

    @Test("busbar-voltage measures the bus with the DMM and every shelf agrees within 1 %")
    func busbarPasses() async throws {
        let (record, prepared) = try await runSimulated("busbar-voltage")
        #expect(record.verdict == .pass, "\(record.message ?? "")")
        let load = try #require(measurement(record, "Busbar under load"))
        let off = try #require(measurement(record, "Busbar with the trays off"))
        #expect((off.value ?? 0) > (load.value ?? 99), "the bus droops under load")
        #expect(abs((load.value ?? 0) - (prepared.rack?.redfish.model.busbarVoltage() ?? 0)) < 0.2)
        let step = try #require(record.steps.first { $0.name == "Shelf output voltage agrees with the DMM" })
        #expect(step.members?.count == 8)
        #expect(step.members?.allSatisfy { $0.verdict == .pass } == true)
        #expect(record.instruments?.map(\.name) == ["dmm"])
        #expect(record.cleanupCompleted)
    }

    @Test("dmm-offset: a DMM reading 1 V low fails every shelf's agreement")
    func dmmOffset() async throws {
        let (record, _) = try await runSimulated("busbar-voltage", scenario: "dmm-offset")
        #expect(record.verdict == .fail)
        let step = try #require(record.steps.first { $0.name == "Shelf output voltage agrees with the DMM" })
        #expect(step.verdict == .fail)
    }

    @Test(
        "An instrument that goes silent, reports an error or is absent ends the run in ERROR naming it; cleanup runs",
        arguments: [
            ("gauge-silent", "no answer"), ("gauge-error", #"-222,"Data out of range""#),
            ("gauge-absent", "not attached"),
        ])
    func instrumentFaults(scenario: String, expected: String) async throws {
        let (record, _) = try await runSimulated("leak-test", scenario: scenario)
        #expect(record.verdict == .error)
        let text = ([record.message ?? ""] + record.steps.compactMap(\.message)).joined(separator: "\n")
        #expect(text.contains("gauge"), "\(text)")
        #expect(text.contains(expected), "\(text)")
        if scenario == "gauge-absent" {
            // Nothing was moved: the run was refused before any step.
            #expect(record.steps.allSatisfy { $0.verdict == .skipped })
        } else {
            #expect(record.cleanupCompleted)
            #expect(record.steps(in: .cleanup).allSatisfy { $0.verdict == .pass })
        }
    }

    @Test("An instrument past its calibration due date is an ERROR before anything is actuated, naming it")
    func expiredCalibration() async throws {
        let folder = temporaryDirectory()
        let station = "\(folder)/bench.yaml"
        try """
        station: bench-expired
        rack: gb200-nvl72
        devices:
          cdu:
            modbus: {tcp: 127.0.0.1:1, unit: 1}
        instruments:
          gauge:
            scpi: {usb: 1209:0001, serial: PG123}
            calibration: {certificate: CAL-2019-7, due: 2020-01-31}
        waive:
          coldplate-leak: the trays are not connected on this bench
        """.write(toFile: station, atomically: true, encoding: .utf8)
        let (record, prepared) = try await runSimulated("leak-test", station: station)
        #expect(prepared.calibrationProblems()["gauge"] == "calibration CAL-2019-7 was due 2020-01-31")
        #expect(record.verdict == .error)
        let message = record.message ?? ""
        #expect(message.contains("instrument 'gauge'") && message.contains("2020-01-31"), "\(message)")
        #expect(message.contains("before anything was actuated"))
        #expect(record.steps.allSatisfy { $0.verdict == .skipped })
        // The day it is due it still holds; the day after, it does not.
        let due = try #require(ISO8601DateFormatter().date(from: "2020-01-31T23:59:59Z"))
        #expect(prepared.calibrationProblems(on: due).isEmpty)
    }
}
