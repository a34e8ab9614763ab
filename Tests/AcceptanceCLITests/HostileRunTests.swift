import Foundation
import TestSupport
import Testing

/// When the run journaled `event` (its wall-clock `time`), for timing the run by its own record rather than by when
/// a busy test process got round to looking.
func journalTime(of event: String, in journal: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    for line in journal.split(separator: "\n") where line.contains("\"event\":\"\(event)\"") {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let time = object["time"] as? String
        else { continue }
        return formatter.date(from: time)
    }
    return nil
}

/// From the run's own journal: cleanup began within 2 s of the stop, and the run finished within 10 s of it.
func expectStopTimings(folder: String, stopped: Date) throws {
    let journal = try String(contentsOfFile: folder + "/journal.jsonl", encoding: .utf8)
    let cleanup = try #require(journalTime(of: "cleanup_started", in: journal))
    let finished = try #require(journalTime(of: "run_finished", in: journal))
    #expect(cleanup.timeIntervalSince(stopped) < 2, "the stop acted within 2 s")
    #expect(finished.timeIntervalSince(stopped) < 10)
}

/// Whole runs of the command line against hostile conditions (issue 10, cases 3, 12 and 13).
@Suite("Runs under hostile conditions", .serialized)
struct HostileRunTests {
    /// Case 13: Ctrl-C in the first 0.3 s killed the process outright (exit 130), and from 0.2 s left a run folder
    /// with an empty journal and no record. Now the handlers are installed first: every outcome is either nothing
    /// created (exit 3, saying so) or a run folder with its record.
    @Test func aStopInTheFirstMomentsNeverLeavesAnEmptyRunFolder() async throws {
        for delay in [0, 5, 15, 30, 50, 80, 120] {
            let reports = temporaryDirectory()
            let running = try Running(["run", "leak-test", "--report-dir", reports], directory: temporaryDirectory())
            try await Task.sleep(for: .milliseconds(delay))
            running.signal(SIGINT)
            let status = try await running.wait()
            #expect(running.process.terminationReason == .exit, "\(delay) ms: killed by the signal")
            #expect(status == 3 || status == 0, "\(delay) ms: exit \(status)\n\(running.stdout)\(running.stderr)")
            let folders = (try? FileManager.default.contentsOfDirectory(atPath: reports)) ?? []
            for folder in folders {
                #expect(
                    FileManager.default.fileExists(atPath: "\(reports)/\(folder)/record.json"),
                    "\(delay) ms: a run folder without a record")
            }
            if folders.isEmpty {
                #expect(running.stderr.contains("stopped by SIGINT"), "\(delay) ms")
            }
        }
    }

    /// Case 12: a disk that fills mid-run (here a file size limit, the same EFBIG/ENOSPC path). The CDU received
    /// every cleanup command, yet every cleanup step was an ERROR and the journal ended in half a line. Now cleanup
    /// is judged by what the devices did, the console says separately that the journal could not be written, and
    /// the journal parses up to its last whole event.
    @Test func aDiskThatFillsMidRunLeavesAWholeJournalAndAJudgedCleanup() async throws {
        let reports = temporaryDirectory()
        // No `trap '' XFSZ` here: the harness must survive the limit's signal itself.
        let script = "ulimit -f 24; exec \"$0\" run leak-test --report-dir \"$1\""
        let running = try Running(
            ["-c", script, try binary(), reports], directory: temporaryDirectory(), executable: "/bin/sh")
        let status = try await running.wait()
        #expect(status == 2, "\(running.stdout)\(running.stderr)")
        #expect(running.stdout.contains("the journal can no longer be written"))
        #expect(running.stdout.contains("Cleanup completed: the rack was returned to its safe state."))
        #expect(!running.stdout.contains("may NOT be in a safe state"))
        #expect(!running.stdout.contains("NSCocoaErrorDomain"))
        #expect(running.stdout.contains("File too large"))
        let cleanupLines = running.stdout.components(separatedBy: "CLEANUP").last ?? ""
        #expect(!cleanupLines.contains("journal:"), "cleanup steps are not marked for the journal")
        let folder = try runFolder(in: reports)
        let journal = try String(contentsOfFile: folder + "/journal.jsonl", encoding: .utf8)
        #expect(journal.hasSuffix("\n"), "no torn last line")
        var sequence = 0
        for line in journal.split(separator: "\n") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            sequence += 1
            #expect(object["seq"] as? Int == sequence)
        }
        #expect(sequence > 20)
    }

    /// Case 3, end to end: a CDU that starts dripping its replies (one byte every 450 ms, 250 announced) in the middle
    /// of a run. Ctrl-C acts within 2 s, and cleanup (four commands the device never confirms) ends within its own
    /// bounded deadlines: on main one transaction took 116 s and cleanup 8 minutes.
    @Test func ctrlCAgainstADrippingDeviceActsAtOnceAndCleanupIsBounded() async throws {
        let dripping = Locked(false)
        let device = try HostileModbusDevice(
            register: { _ in 0 },
            script: { _, _ in
                dripping.withLock { $0 } ? .drip(byteCount: 250, interval: .milliseconds(450)) : .honest
            })
        defer { device.stop() }
        // The station's instruments are a simulator's bench; its CDU is the hostile device.
        let (bench, benchPort) = try await startSimulatorOnAnyPort()
        defer { bench.signal(SIGTERM) }
        let reports = temporaryDirectory()
        let running = try Running(
            [
                "run", "leak-test", "--station",
                try stationFile(
                    port: device.port, retries: 1, backoff: "100 ms", timeout: "500 ms", bench: benchPort),
                "--rack-serial", "NVL72-TEST-01", "--report-dir", reports,
            ], directory: temporaryDirectory())
        // Main has begun once the CDU was switched to manual and the run polls for it (it stays automatic).
        let folder = try await runFolderAppearing(in: reports)
        _ = try await waitFor(folder + "/journal.jsonl") { $0.contains("CDU reports manual") }
        dripping.withLock { $0 = true }
        try await Task.sleep(for: .milliseconds(700))
        let stopped = Date()
        running.signal(SIGINT)
        let status = try await running.wait(seconds: 60)
        // Timed by the run's own journal: the stop acted within 2 s; then four cleanup steps, each at most
        // (1 retry + 1) × 500 ms + 100 ms against a device that never answers whole.
        try expectStopTimings(folder: folder, stopped: stopped)
        #expect(status == 3, "\(running.stdout)")
        #expect(running.stdout.contains("VERDICT:  ABORTED"))
        #expect(running.stdout.contains("CLEANUP DID NOT COMPLETE"))
        #expect(running.stdout.contains("incomplete reply"))
    }

    /// Case 2, end to end: a BMC that starts sending its bodies one byte every 2 s while a run waits on it. Ctrl-C
    /// acts within 2 s; cleanup (a ForceOff the BMC answers as slowly) and the logout end within their own deadlines,
    /// and the record and bundle are written. On main the logout hung and the process never exited.
    @Test func ctrlCAgainstASlowBMCActsAtOnceAndTheRunEnds() async throws {
        let slow = Locked(false)
        let system = """
            {"@odata.id": "/redfish/v1/Systems/System_0", "Id": "System_0", "PowerState": "Off",
             "Actions": {"#ComputerSystem.Reset": {
               "target": "/redfish/v1/Systems/System_0/Actions/ComputerSystem.Reset",
               "ResetType@Redfish.AllowableValues": ["On", "ForceOff"]}}}
            """
        let bmc = try HostileHTTPServer { request in
            var answer: HostileHTTPServer.Answer
            switch (request.method, request.path) {
            case ("POST", "/redfish/v1/SessionService/Sessions"):
                return .json(
                    "{}", status: "201 Created",
                    headers: [("X-Auth-Token", "t0k3n"), ("Location", "/redfish/v1/SessionService/Sessions/1")])
            case ("GET", "/redfish/v1/Systems/System_0"): answer = .json(system)
            default: answer = .json("{}")
            }
            if slow.withLock({ $0 }) { answer.drip = .seconds(2) }
            return answer
        }
        defer { bmc.stop() }
        let directory = temporaryDirectory()
        let procedure = directory + "/slow-bmc.yaml"
        try """
        id: slow-bmc
        title: One tray on, against a BMC that stalls
        version: 1.0.0
        rack: gb200-nvl72
        main:
          - action: compute01.reset
            value: On
          - wait-until: compute01.power_state == On
            timeout: 10 min
            poll: 1 s
            name: Tray on
        cleanup:
          - action: compute01.reset
            value: ForceOff
            name: Tray off
        """.write(toFile: procedure, atomically: true, encoding: .utf8)
        let station = directory + "/station.yaml"
        try """
        station: hostile-bmc
        rack: gb200-nvl72
        devices:
          compute01:
            redfish: {url: "http://127.0.0.1:\(bmc.port)", auth: session, username_env: HOSTILE_BMC_USER,
                      password_env: HOSTILE_BMC_PASSWORD, timeout: 1 s, retries: 1}
        waive: {coldplate-leak: one BMC only, cdu-leak: one BMC only, loop-overpressure: one BMC only}
        """.write(toFile: station, atomically: true, encoding: .utf8)
        let reports = temporaryDirectory()
        let running = try Running(
            ["run", procedure, "--station", station, "--report-dir", reports], directory: temporaryDirectory(),
            environment: ["HOSTILE_BMC_USER": "u", "HOSTILE_BMC_PASSWORD": "p"])
        let folder = try await runFolderAppearing(in: reports)
        _ = try await waitFor(folder + "/journal.jsonl") { $0.contains("\"step\":\"main.2\"") }
        slow.withLock { $0 = true }
        try await Task.sleep(for: .milliseconds(1200))
        let stopped = Date()
        running.signal(SIGINT)
        let status = try await running.wait(seconds: 60)
        // Timed by the run's own journal. Cleanup: the action's resource read and its POST, each within
        // (1 retry + 1) × 1 s; the logout after the record within 1 s more.
        try expectStopTimings(folder: folder, stopped: stopped)
        #expect(status == 3, "\(running.stdout)\(running.stderr)")
        #expect(running.stdout.contains("VERDICT:  ABORTED"))
        #expect(FileManager.default.fileExists(atPath: folder + "/record.json"))
        #expect(bmc.requests.contains { $0.method == "DELETE" }, "the session was logged out")
    }

    /// Station binding errors found after parsing (a device the rack lacks) name the file, line and column, and
    /// `validate --station` finds them; a half-bracketed IPv6 address is refused at its column.
    @Test func stationMistakesNameTheirPlace() async throws {
        let station = temporaryDirectory() + "/station.yaml"
        try """
        station: s
        rack: gb200-nvl72
        devices:
          cdu:
            modbus: {tcp: 127.0.0.1:1502, unit: 1}
          cdu2:
            modbus: {tcp: 127.0.0.1:1502, unit: 2}
        """.write(toFile: station, atomically: true, encoding: .utf8)
        let validate = try await run(["validate", "--station", station])
        #expect(validate.status == 1, "\(validate.stdout)\(validate.stderr)")
        #expect(validate.stderr.contains("station.yaml:6:3: station 's' binds 'cdu2'"))
        #expect(!validate.stderr.contains("Usage"))
        let bracket = temporaryDirectory() + "/station.yaml"
        try """
        station: s
        rack: gb200-nvl72
        devices:
          cdu:
            modbus: {tcp: '[::1:1502', unit: 1}
        """.write(toFile: bracket, atomically: true, encoding: .utf8)
        let refused = try await run(["validate", "--station", bracket])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("station.yaml:5:19: error: tcp must be host:port"))
    }
}
