import Foundation
import TestSupport
import Testing

/// One coil, discrete input or holding register read with mbpoll (a Modbus client we did not write).
func mbpollRead(port: Int, table: String, address: Int) async throws -> Int? {
    let (status, output) = try await runProgram(
        try program("mbpoll"),
        ["-m", "tcp", "-a", "1", "-0", "-r", "\(address)", "-c", "1", "-t", table, "-1", "-p", "\(port)", "127.0.0.1"])
    guard status == 0 else { throw CLIError(message: "mbpoll: \(output)") }
    // `[0]: 	1`
    guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("[\(address)]") }),
        let value = line.split(separator: ":").last
    else { return nil }
    return Int(value.trimmingCharacters(in: .whitespaces))
}

@Suite("Crash recovery: a station killed mid-run", .serialized)
struct RecoveryTests {
    /// `kill -9` during the hold leaves the simulated rack's CDU pressurised and isolated, as a real station would
    /// leave a real one. The next command at that station refuses; `acceptance recover` makes it safe (read back with
    /// mbpoll) and writes the killed run's record, with every sample taken, in a bundle `acceptance verify` accepts.
    @Test func aRunKilledDuringTheHoldIsRecovered() async throws {
        let home = temporaryDirectory()
        let state = ["ACCEPTANCE_STATE_DIR": "\(home)/state"]
        let keys = try await run(["keys", "generate", "--out", "\(home)/keys", "--name", "line1"])
        #expect(keys.status == 0, "\(keys.stderr)")
        try """
        keys:
          - {name: line-1, role: station, public_key: keys/line1.pub.pem, valid_from: 2026-01-01T00:00:00Z}
        """.write(toFile: "\(home)/keyring.yaml", atomically: true, encoding: .utf8)
        let (simulator, port) = try await startSimulatorOnAnyPort(scale: "20")
        defer { simulator.signal(SIGTERM) }
        let station = try stationFile(port: port, more: "signing_key: \(home)/keys/line1.key.pem")
        let reports = "\(home)/reports"
        let killed = try Running(
            [
                "run", "leak-test", "--station", station, "--time-scale", "20", "--param", "hold=60s",
                "--rack-serial", "NVL72-TEST-01", "--report-dir", reports,
            ],
            directory: temporaryDirectory(), environment: state)
        let folder = try await runFolderAppearing(in: reports)
        _ = try await waitFor(folder + "/journal.jsonl", seconds: 60) { sampleCount($0) >= 8 }
        killed.signal(SIGKILL)
        _ = try await killed.wait()
        let journalAtKill = try String(contentsOfFile: folder + "/journal.jsonl", encoding: .utf8)
        let samplesTaken = sampleCount(journalAtKill)
        let runID = (folder as NSString).lastPathComponent
        // The CDU as the killed run left it: pump stopped, valve shut, loop pressurised, manual mode.
        #expect(try await mbpollRead(port: port, table: "1", address: 3) == 0, "valve not open after the kill")
        #expect(try await mbpollRead(port: port, table: "4", address: 0) == 1, "manual mode after the kill")

        // Nothing moves the rack until the run is recovered.
        let refused = try await run(
            ["run", "leak-test", "--station", station, "--param", "hold=10s", "--report-dir", "\(home)/other"],
            environment: state)
        #expect(refused.status == 2, "\(refused.stdout)\(refused.stderr)")
        #expect(refused.stderr.contains(runID) && refused.stderr.contains("acceptance recover"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(home)/other"), "a refused run creates no run folder")
        let write = try await run(
            ["write", "cdu.mode", "automatic", "--station", station, "--yes"], environment: state)
        #expect(write.status == 2 && write.stderr.contains(runID), "\(write.stderr)")
        let read = try await run(["read", "cdu.loop_pressure", "--station", station], environment: state)
        #expect(read.status == 0 && read.stderr.contains("WARNING") && read.stderr.contains(runID), "\(read.stderr)")
        let unconfirmed = try await run(["recover", "--station", station], environment: state)
        #expect(unconfirmed.status == 64, "real hardware: recovery needs a person or --yes")

        let recovered = try await run(
            ["recover", "--station", station, "--yes", "--operator", "J. Smith"], environment: state)
        #expect(recovered.status == 0, "\(recovered.stdout)\(recovered.stderr)")
        #expect(recovered.stdout.contains("driven     cdu"), "\(recovered.stdout)")
        #expect(recovered.stdout.contains("station stopped unexpectedly during 'Hold'"))
        // Read back by a client we did not write: pump off (coil 0), valve open (limit switch, discrete input 3),
        // automatic mode (holding register 0 = 0, reported in input register 8).
        #expect(try await mbpollRead(port: port, table: "0", address: 0) == 0)
        #expect(try await mbpollRead(port: port, table: "1", address: 3) == 1)
        #expect(try await mbpollRead(port: port, table: "4", address: 0) == 0)
        #expect(try await mbpollRead(port: port, table: "3", address: 8) == 0)

        let record = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/record.json")))
                as? [String: Any])
        #expect(record["verdict"] as? String == "ABORTED")
        #expect((record["message"] as? String)?.hasPrefix("station stopped unexpectedly") == true)
        let recovery = try #require(record["recovery"] as? [String: Any])
        #expect(recovery["recovered_by"] as? String == "J. Smith")
        let commanded = try #require((recovery["last_commanded"] as? [String: [String]])?["cdu"])
        #expect(commanded.last == "cdu.pump_enable ← false", "\(commanded)")
        let steps = try #require(record["steps"] as? [[String: Any]])
        let hold = try #require(steps.first { $0["name"] as? String == "Hold" })
        #expect(hold["verdict"] as? String == "ABORTED")
        let series = try #require(hold["series"] as? [String: Any])
        #expect(series["samples"] as? Int == samplesTaken, "every sample taken before the kill")
        let csv = try String(contentsOfFile: "\(folder)/\(series["file"] as? String ?? "")", encoding: .utf8)
        #expect(csv.split(separator: "\n").count == samplesTaken + 1)
        let pressurised = try #require(steps.first { $0["name"] as? String == "Pressurise loop to test pressure" })
        #expect(pressurised["verdict"] as? String == "PASS", "steps finished before the kill keep their results")
        let safe = try #require(record["safe_state"] as? [String: Any])
        #expect(safe["verified"] as? Bool == true)
        #expect(!FileManager.default.fileExists(atPath: "\(home)/state/test-station.run.json"))

        let verified = try await run(["verify", folder, "--keyring", "\(home)/keyring.yaml"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        #expect(verified.stdout.contains("VERIFIED"))
        let nothingLeft = try await run(["recover", "--station", station, "--yes"], environment: state)
        #expect(nothingLeft.status == 0 && nothingLeft.stdout.contains("Nothing to recover"))
        simulator.signal(SIGINT)
        #expect(try await simulator.wait() == 0)
    }
}
