import Foundation
import Synchronization
import TestSupport
import Testing

/// The instruments of each simulator the tests started, by its CDU's port: the gauge's and the DMM's SCPI ports.
let simulatorBenches = Mutex<[Int: (gauge: Int, dmm: Int)]>([:])

/// The `instruments:` section binding a simulator's bench (by its CDU's port) over its SCPI sockets, if it has one.
func benchSection(cduPort: Int) -> String {
    guard let bench = simulatorBenches.withLock({ $0[cduPort] }) else { return "" }
    return """
        instruments:
          gauge:
            scpi: {tcp: 127.0.0.1:\(bench.gauge), serial: SIMGAUGE0002}
            calibration: {certificate: SIMULATED-GAUGE, due: 2099-12-31}
          dmm:
            scpi: {tcp: 127.0.0.1:\(bench.dmm), serial: SIMDMM0001}
            calibration: {certificate: SIMULATED-DMM, due: 2099-12-31}
        """
}

/// A station with the CDU on `port`, and the instruments of the simulator whose CDU is on `bench` (the same
/// simulator by default).
func stationFile(
    port: Int, retries: Int = 5, backoff: String = "1 s", timeout: String = "500 ms", more: String = "",
    automaticHazards: Bool = true, bench: Int? = nil
) throws -> String {
    let path = temporaryDirectory() + "/station.yaml"
    try """
    station: test-station
    rack: gb200-nvl72
    devices:
      cdu:
        modbus:
          tcp: 127.0.0.1:\(port)
          unit: 1
          response_timeout: \(timeout)
          retries: \(retries)
          backoff: \(backoff)
    waive:
      coldplate-leak: this bench has the CDU only, no tray BMCs
    \(automaticHazards ? "confirm_hazards_automatically: the rack is acceptance simulate on this machine" : "")
    \(more)
    \(benchSection(cduPort: bench ?? port))
    """.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// `acceptance simulate` on a port, waited for until it says where it listens.
func startSimulator(
    port: Int, scenario: String = "nominal", scale: String = "20", scpiPort: Int = 0
) async throws -> Running {
    try await startSimulatorOnAnyPort(port: port, scenario: scenario, scale: scale, scpiPort: scpiPort).simulator
}

/// `acceptance simulate` with its CDU on `port` (from `freePort()`, outside the ephemeral range), or on a port the
/// system chooses (0, the default). Returns the simulator and the CDU's port, read from what it prints.
func startSimulatorOnAnyPort(
    port: Int = 0, scenario: String = "nominal", scale: String = "20", redfish: Bool = false, scpiPort: Int = 0
) async throws -> (simulator: Running, port: Int) {
    let simulator = try Running(
        ["simulate", "--port", "\(port)", "--time-scale", scale, "--scenario", scenario, "--scpi-port", "\(scpiPort)"]
            // The BMCs on ports the system chooses (a fixed 8443 collides with any simulator left running).
            + (redfish ? ["--redfish-port", "0"] : ["--redfish-port", "-1"]),
        directory: temporaryDirectory())
    // Until it says it serves; a simulator that exits first (a port it cannot bind) is reported with what it said.
    var text = ""
    let deadline = Date().addingTimeInterval(60)
    while !text.contains("Ctrl-C to stop") {
        guard simulator.process.isRunning, Date() < deadline else {
            simulator.signal(SIGKILL)
            throw CLIError(
                message: "the simulator did not start (\(simulator.process.isRunning ? "60 s" : "it exited")): "
                    + simulator.stdout + simulator.stderr)
        }
        try await Task.sleep(for: .milliseconds(20))
        text = simulator.stdout
    }
    func listening(after marker: String) -> Int? {
        guard let line = text.split(separator: "\n").first(where: { $0.contains(marker) }) else { return nil }
        return line.split(separator: ":").dropFirst().first?.split(separator: " ").first.flatMap { Int($0) }
    }
    guard let chosen = listening(after: "cdu  Modbus TCP 127.0.0.1:") else {
        throw CLIError(message: "the simulator did not say its port: \(text)")
    }
    if let gauge = listening(after: "gauge  SCPI 127.0.0.1:"), let dmm = listening(after: "dmm  SCPI 127.0.0.1:") {
        simulatorBenches.withLock { $0[chosen] = (gauge, dmm) }
    }
    return (simulator, chosen)
}

/// The gauge's SCPI port of the simulator whose CDU is on `cduPort`.
func gaugePort(cduPort: Int) -> Int? { simulatorBenches.withLock { $0[cduPort]?.gauge } }

@Suite("Stations: real Modbus TCP against `acceptance simulate`", .serialized)
struct StationTests {
    @Test(arguments: [("nominal", Int32(0)), ("loop-leak", 1)])
    func leakTestOverModbusTCP(scenario: String, expected: Int32) async throws {
        let (simulator, port) = try await startSimulatorOnAnyPort(scenario: scenario)
        defer { simulator.signal(SIGTERM) }
        let reports = temporaryDirectory()
        let result = try await run([
            "run", "leak-test", "--station", try stationFile(port: port), "--time-scale", "20",
            "--param", "hold=30s", "--rack-serial", "NVL72-TEST-01",
            "--report-dir", reports,
        ])
        #expect(result.status == expected, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("cdu: Modbus 127.0.0.1:\(port) unit 1"))
        let record = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: try runFolder(in: reports) + "/record.json")))
                as? [String: Any])
        #expect(record["station"] as? String == "test-station")
        #expect(record["scenario"] == nil, "a station run is not a scenario run")
        simulator.signal(SIGINT)
        #expect(try await simulator.wait() == 0)
    }

    @Test func technicianToolsReadAndWriteThroughAStation() async throws {
        let (simulator, port) = try await startSimulatorOnAnyPort(scale: "1")
        defer { simulator.signal(SIGTERM) }
        let station = try stationFile(port: port)
        let points = try await run(["points", "cdu"])
        #expect(points.status == 0)
        #expect(points.stdout.contains("cdu.pump_speed_setpoint") && points.stdout.contains("holding register 1"))
        let refused = try await run(["write", "cdu.mode", "manual", "--station", station])
        #expect(refused.status == 64, "real hardware needs --yes without a terminal")
        #expect(refused.stderr.contains("add --yes"))
        let written = try await run(["write", "cdu.mode", "manual", "--station", station, "--yes"])
        #expect(written.status == 0, "\(written.stderr)")
        #expect(written.stdout.contains("cdu.mode ← manual"))
        let read = try await run(["read", "cdu.mode", "cdu.loop_pressure", "--station", station])
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout.contains("cdu.mode = manual    (holding register 0)"))
        #expect(read.stdout.contains("cdu.loop_pressure = ") && read.stdout.contains(" kPa"))
        let badValue = try await run(["write", "cdu.pump_speed_setpoint", "40 kPa", "--station", station, "--yes"])
        #expect(badValue.status == 64)
    }

    @Test func aClosedPortIsAnErrorNamingDeviceAddressPortAndCause() async throws {
        let closed = try ClosedPort()
        let port = closed.port
        // The station's instruments are there (a simulator's bench); only its CDU is not.
        let (bench, benchPort) = try await startSimulatorOnAnyPort()
        defer { bench.signal(SIGTERM) }
        let reports = temporaryDirectory()
        let result = try await run([
            "run", "leak-test", "--station",
            try stationFile(port: port, retries: 1, backoff: "100 ms", bench: benchPort),
            "--rack-serial", "NVL72-TEST-01", "--report-dir", reports,
        ])
        #expect(result.status == 2, "\(result.stdout)")
        #expect(result.stdout.contains("device 'cdu'"))
        #expect(result.stdout.contains("127.0.0.1:\(port)"))
        #expect(result.stdout.contains("errno \(ECONNREFUSED): Connection refused"))
        // Bounded by the station's retry budget, not by patience: one retry, then ERROR (time is the benchmark's).
        let record = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: try runFolder(in: reports) + "/record.json")))
                as? [String: Any])
        let steps = try #require(record["steps"] as? [[String: Any]])
        let retries = steps.flatMap { ($0["retries"] as? [String]) ?? [] }
        #expect(
            !retries.isEmpty && retries.allSatisfy { $0.contains("retry 1 of 1") },
            "one retry each, no more: \(retries)")
        withExtendedLifetime(closed) {}
    }

    /// A station whose CDU is another vendor's says so with `model:`; the simulator stands in for that station's rack
    /// (`simulate --station`), and leak-test runs on it unchanged, with no copy of the fixtures.
    @Test func aStationFittingAnotherCDUModelRunsLeakTestAgainstTheSimulatorServingIt() async throws {
        let port = freePort()
        // Both simulators serve their instruments from the same port (DMM, then the gauge on the next).
        let scpi = freePort(consecutive: 2)
        let station = temporaryDirectory() + "/coolflow-station.yaml"
        try """
        station: coolflow-station
        rack: gb200-nvl72
        instruments:
          dmm:
            scpi: {tcp: 127.0.0.1:\(scpi)}
            calibration: {certificate: SIMULATED-DMM, due: 2099-12-31}
          gauge:
            scpi: {tcp: 127.0.0.1:\(scpi + 1)}
            calibration: {certificate: SIMULATED-GAUGE, due: 2099-12-31}
        devices:
          cdu:
            model: coolflow-cdu-2000
            modbus: {tcp: 127.0.0.1:\(port), unit: 1, response_timeout: 500 ms, retries: 5, backoff: 1 s}
        waive:
          coldplate-leak: this bench has the CDU only, no tray BMCs
        confirm_hazards_automatically: the rack is acceptance simulate on this machine
        """.write(toFile: station, atomically: true, encoding: .utf8)
        let points = try await run(["points", "cdu", "--station", station])
        #expect(points.status == 0, "\(points.stderr)")
        #expect(points.stdout.contains("float32 CDAB"), "the CoolFlow map: float32, low word first")
        #expect(points.stdout.contains(" bar "), "pressures in bar")
        let validated = try await run(["validate", "Procedures/leak-test.yaml", "--station", station])
        #expect(validated.status == 0, "\(validated.stdout)\(validated.stderr)")

        // The simulator serving the rack profile's CDU does not match what the station says is fitted.
        let reference = try Running(
            ["simulate", "--port", "\(port)", "--time-scale", "20", "--redfish-port", "-1", "--scpi-port", "\(scpi)"],
            directory: temporaryDirectory())
        _ = try await waitFor(reference.stdoutPath) { $0.contains("127.0.0.1:\(port)") }
        let mismatched = try await run([
            "run", "leak-test", "--station", station, "--time-scale", "20", "--param", "hold=30s",
            "--rack-serial", "NVL72-TEST-01", "--report-dir", temporaryDirectory(),
        ])
        #expect(
            mismatched.status == 2, "a reference CDU does not answer the CoolFlow register map: \(mismatched.stdout)")
        reference.signal(SIGINT)
        #expect(try await reference.wait() == 0)

        let simulator = try Running(
            [
                "simulate", "--station", station, "--port", "\(port)", "--time-scale", "20",
                "--redfish-port", "-1", "--scpi-port", "\(scpi)",
            ], directory: temporaryDirectory())
        defer { simulator.signal(SIGTERM) }
        let banner = try await waitFor(simulator.stdoutPath) { $0.contains("127.0.0.1:\(port)") }
        #expect(banner.contains("(coolflow-cdu-2000)"))
        let reports = temporaryDirectory()
        let result = try await run([
            "run", "leak-test", "--station", station, "--time-scale", "20", "--param", "hold=30s",
            "--rack-serial", "NVL72-TEST-01", "--report-dir", reports,
        ])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let record = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: try runFolder(in: reports) + "/record.json")))
                as? [String: Any])
        #expect(
            (record["models"] as? [String: String])?["cdu"] == "coolflow-cdu-2000", "the record names the fitted model")
        let steps = try #require(record["steps"] as? [[String: Any]])
        let units = steps.flatMap { ($0["measurements"] as? [[String: Any]]) ?? [] }.compactMap {
            $0["unit"] as? String
        }
        #expect(units.contains("bar"), "limits converted into the fitted device's unit")
        simulator.signal(SIGINT)
        #expect(try await simulator.wait() == 0)
    }

    @Test func aSimulatorRestartedWithinTheRetryBudgetLetsTheRunContinue() async throws {
        // Ports outside the kernel's ephemeral range for everything the restarted simulator binds again: a port the
        // system chose (port 0) can be given to another test's client, or to the run's own reconnecting client (a
        // loopback connection to itself), while the simulator is down; CI once saw the restart fail that way.
        let scpi = freePort(consecutive: 2)
        var (simulator, port) = try await startSimulatorOnAnyPort(port: freePort(), scpiPort: scpi)
        let reports = temporaryDirectory()
        let running = try Running(
            [
                // A station may allow its CDU link a longer outage than the rack's interlocks do (here as long as
                // the retry budget); otherwise losing the CDU's leak sensor for 5 s is a trip of its own.
                "run", "leak-test", "--station",
                try stationFile(
                    port: port,
                    more: "interlocks:\n  cdu-leak: {stale_after: 5 min}\n  loop-overpressure: {stale_after: 5 min}"),
                // At 4× the retry budget (1 + 2 + 4 + 8 + 16 s of station time) is 7.75 s of wall time: room for a
                // busy machine to start the simulator again (at 20× it was 1.55 s, and CI once took longer).
                "--time-scale", "4", "--param", "hold=60s", "--param", "stabilise=30s", "--rack-serial",
                "NVL72-TEST-01",
                "--report-dir", reports,
            ],
            directory: temporaryDirectory())
        var folder = ""
        let deadline = Date().addingTimeInterval(30)
        while folder.isEmpty, Date() < deadline {
            folder = (try? runFolder(in: reports)) ?? ""
            try await Task.sleep(for: .milliseconds(20))
        }
        _ = try await waitFor(folder + "/journal.jsonl") { sampleCount($0) >= 5 }
        // The CDU controller drops off the network mid-hold and comes back.
        simulator.signal(SIGKILL)
        _ = try await simulator.wait()
        try await Task.sleep(for: .milliseconds(300))
        // Its instruments come back on the same ports too.
        simulator = try await startSimulator(port: port, scpiPort: scpi)
        defer { simulator.signal(SIGTERM) }
        let status = try await running.wait()
        #expect(status != 2, "the run continued instead of ending in ERROR: \(running.stdout)")
        let record = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: folder + "/record.json"))) as? [String: Any])
        let steps = try #require(record["steps"] as? [[String: Any]])
        let retried = steps.flatMap { ($0["retries"] as? [String]) ?? [] }
        #expect(!retried.isEmpty, "the record lists the retries")
        #expect(retried.first?.contains("cdu: retry 1 of 5") == true)
        let journal = try String(contentsOfFile: folder + "/journal.jsonl", encoding: .utf8)
        #expect(journal.contains("\"event\":\"retry\""))
    }
}
