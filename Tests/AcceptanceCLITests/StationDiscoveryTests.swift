import Foundation
import TestSupport
import Testing

@Suite("A station knows what it is; a simulated run says so everywhere", .serialized)
struct StationDiscoveryTests {
    @Test("ACCEPTANCE_STATION makes run use that station, against acceptance simulate")
    func configuredByEnvironment() async throws {
        let (simulator, port) = try await startSimulatorOnAnyPort()
        defer { simulator.signal(SIGTERM) }
        let station = try stationFile(port: port)
        let reports = temporaryDirectory()
        let result = try await run(
            [
                "run", "leak-test", "--time-scale", "20", "--param", "hold=30s", "--rack-serial", "NVL72-CONF-01",
                "--report-dir", reports,
            ], environment: ["ACCEPTANCE_STATION": station])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("station \(station) (configured by ACCEPTANCE_STATION)"))
        #expect(result.stdout.contains("cdu: Modbus 127.0.0.1:\(port) unit 1"))
        #expect(!result.stdout.contains("SIMULATED"))
        let folder = try runFolder(in: reports)
        let record = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/record.json")))
                as? [String: Any])
        #expect(record["station"] as? String == "test-station")
        #expect(record["scenario"] == nil)
        let junit = try String(contentsOfFile: folder + "/junit.xml", encoding: .utf8)
        #expect(junit.contains("<property name=\"simulated\" value=\"false\"/>"))
        let html = try String(contentsOfFile: folder + "/report.html", encoding: .utf8)
        #expect(!html.contains("id=\"simulated\""))

        // Simulator options on a configured station are a usage error that says how to ask for the simulator.
        let mixed = try await run(
            ["run", "leak-test", "--scenario", "loop-leak"], environment: ["ACCEPTANCE_STATION": station])
        #expect(mixed.status == 64)
        #expect(mixed.stderr.contains("add --simulated"), "\(mixed.stderr)")
    }

    @Test("A station whose rack is a simulator (simulate --station-out) makes every run SIMULATED, signature included")
    func aSimulatorStationIsNeverARealRack() async throws {
        let home = temporaryDirectory()
        try await makeKeyring(in: home, station: "bench")
        let (simulator, port) = try await startSimulatorOnAnyPort()
        defer { simulator.signal(SIGTERM) }
        let station = try stationFile(
            port: port,
            more: "simulator: acceptance simulate in this test\nsigning_key: \(home)/keys/bench.key.pem")
        let reports = "\(home)/r"
        let result = try await run([
            "run", "leak-test", "--station", station, "--time-scale", "20", "--param", "hold=30s", "--rack-serial",
            "NVL72-LOOKS-REAL", "--report-dir", reports,
        ])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("station test-station's rack is a simulator (acceptance simulate in this test)"))
        let folder = try runFolder(in: reports)
        let record = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/record.json")))
                as? [String: Any])
        #expect(record["simulator"] as? String == "acceptance simulate in this test")
        #expect(record["scenario"] == nil, "no scenario: it went through the station's real transports")
        let junit = try String(contentsOfFile: folder + "/junit.xml", encoding: .utf8)
        #expect(junit.contains("<property name=\"simulated\" value=\"true\"/>"))
        let html = try String(contentsOfFile: folder + "/report.html", encoding: .utf8)
        #expect(html.contains("id=\"simulated\">SIMULATED"))
        let verified = try await run(["verify", folder, "--keyring", "\(home)/keyring.yaml", "--json"])
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.contains("\"simulated\":true"), "the signed predicate says so")
        let refused = try await run([
            "archive", "add", folder, "--keyring", "\(home)/keyring.yaml", "--archive", "\(home)/archive",
        ])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("SIMULATED"), "\(refused.stderr)")
    }

    @Test("A station file in $XDG_CONFIG_HOME/acceptance is used by read; one that forbids it refuses --simulated")
    func configuredByFile() async throws {
        let closed = try ClosedPort()
        let config = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: config + "/acceptance", withIntermediateDirectories: true)
        try """
        station: bay-7
        rack: gb200-nvl72
        allow_simulated: false
        devices:
          cdu:
            modbus: {tcp: 127.0.0.1:\(closed.port), unit: 1, response_timeout: 200 ms, retries: 0}
        """.write(toFile: config + "/acceptance/station.yaml", atomically: true, encoding: .utf8)
        let read = try await run(["read", "cdu.mode"], environment: ["XDG_CONFIG_HOME": config])
        #expect(read.status == 2, "the configured station's CDU is not there: \(read.stdout)")
        #expect(read.stderr.contains("127.0.0.1:\(closed.port)"), "\(read.stderr)")
        let refused = try await run(["run", "leak-test", "--simulated"], environment: ["XDG_CONFIG_HOME": config])
        #expect(refused.status == 64)
        #expect(refused.stderr.contains("station 'bay-7'") && refused.stderr.contains("allow_simulated: false"))
        withExtendedLifetime(closed) {}
    }

    @Test("With no station configured, the run, the report and JUnit all say SIMULATED")
    func simulatedSaysSo() async throws {
        let reports = temporaryDirectory()
        let result = try await run(["run", "leak-test", "--report-dir", reports])
        #expect(result.status == 0)
        #expect(result.stdout.contains(" SIMULATED "), "the verdict box says it")
        #expect(result.stdout.contains("no real rack was tested"))
        let folder = try runFolder(in: reports)
        let html = try String(contentsOfFile: folder + "/report.html", encoding: .utf8)
        #expect(html.contains("<div class=\"watermark\" id=\"simulated\">SIMULATED</div>"))
        #expect(html.contains("PASS · SIMULATED"))
        let junit = try String(contentsOfFile: folder + "/junit.xml", encoding: .utf8)
        #expect(junit.contains("<property name=\"simulated\" value=\"true\"/>"))
    }
}
