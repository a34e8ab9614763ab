import Foundation
import TestSupport
import Testing

@Suite("acceptance run fat-suite: four procedures on one rack, one bundle, one report")
struct SuiteTests {
    func json(_ path: String) throws -> [String: Any] {
        try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    @Test func fourProceduresOneBundleThatVerifiesOneReport() async throws {
        let home = temporaryDirectory()
        try await makeKeyring(in: home)
        let reports = "\(home)/reports"
        let result = try await run([
            "run", "fat-suite", "--param", "hold=1min", "--signing-key", "\(home)/keys/line1.key.pem",
            "--report-dir", reports,
        ])
        #expect(result.status == 0, "\(result.stdout.suffix(3000))\(result.stderr)")
        #expect(result.stdout.contains("SUITE fat-suite: PASS"))
        #expect(result.stdout.contains("1 of 4: leak-test") && result.stdout.contains("4 of 4: psu-redundancy"))
        let bundle = try runFolder(in: reports)

        // One suite record: four procedures in order, each with its own run folder, all on the one rack.
        let suite = try json("\(bundle)/suite.json")
        #expect(suite["schema"] as? String == "acceptance.suite/1")
        #expect(suite["verdict"] as? String == "PASS")
        let procedures = try #require(suite["procedures"] as? [[String: Any]])
        #expect(procedures.map { $0["id"] as? String } == ["leak-test", "power-on", "bmc-inventory", "psu-redundancy"])
        #expect(procedures.allSatisfy { $0["verdict"] as? String == "PASS" })
        var serials = Set<String>()
        var clockStarts: [String] = []
        for procedure in procedures {
            let folder = try #require(procedure["folder"] as? String)
            let record = try json("\(bundle)/\(folder)/record.json")
            #expect(record["verdict"] as? String == "PASS")
            serials.insert(record["rack_serial"] as? String ?? "-")
            clockStarts.append(record["started"] as? String ?? "")
        }
        #expect(serials.count == 1 && suite["rack_serial"] as? String == serials.first, "one rack: \(serials)")
        #expect(clockStarts == clockStarts.sorted(), "one after another on one clock: \(clockStarts)")

        // One bundle: verify (ours, and the bundled script with stock OpenSSL) checks every file, nested ones too.
        let verified = try await run(["verify", bundle, "--keyring", "\(home)/keyring.yaml"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        #expect(verified.stdout.contains("VERIFIED"))
        let (status, output) = try await runProgram(
            try program("sh"), ["verify.sh", "\(home)/keys/line1.pub.pem"], directory: bundle)
        #expect(status == 0, "\(output)")
        #expect(output.contains("VERIFIED  run \(suite["run_id"] as? String ?? "?")"))

        // The archive takes the suite's bundle as one entry (the simulated rack only when told so).
        let archived = try await run([
            "archive", "add", bundle, "--keyring", "\(home)/keyring.yaml", "--archive", "\(home)/archive",
            "--allow-simulated",
        ])
        #expect(archived.status == 0, "\(archived.stderr)")
        let listed = try await run(["archive", "list", "--archive", "\(home)/archive"])
        #expect(listed.stdout.contains("fat-suite 1.0.0  PASS     simulated"), "\(listed.stdout)")

        // One report with all four: the suite's verdict, a row and a section per procedure, the watermark.
        let html = try String(contentsOfFile: "\(bundle)/report.html", encoding: .utf8)
        #expect(html.contains("<table id=\"procedures\">"))
        for id in ["leak-test", "power-on", "bmc-inventory", "psu-redundancy"] {
            #expect(html.contains("<section class=\"procedure\" id=\"procedure-\(id)\">"), "\(id)")
        }
        #expect(html.contains("Cooling loop pressure-decay leak test"))
        #expect(html.contains("id=\"simulated\">SIMULATED"))
        let junit = try String(contentsOfFile: "\(bundle)/junit.xml", encoding: .utf8)
        #expect(junit.components(separatedBy: "<testsuite ").count - 1 == 4)

        // A changed byte deep inside (a procedure's record) is caught by the suite's signature.
        let inner = try #require(procedures.first?["folder"] as? String)
        let recordPath = "\(bundle)/\(inner)/record.json"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: recordPath))
        bytes[40] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: recordPath))
        let tampered = try await run(["verify", bundle, "--keyring", "\(home)/keyring.yaml"])
        #expect(tampered.status == 1)
        #expect(tampered.stderr.contains("\(inner)/record.json"), "\(tampered.stderr)")
    }

    @Test func theSuiteStopsAtTheFirstFailUnlessToldToGoOn() async throws {
        let home = temporaryDirectory()
        let stopped = try await run([
            "run", "fat-suite", "--scenario", "loop-leak", "--param", "hold=1min", "--report-dir", "\(home)/a",
        ])
        #expect(stopped.status == 1, "\(stopped.stdout.suffix(2000))\(stopped.stderr)")
        let first = try json(try runFolder(in: "\(home)/a") + "/suite.json")
        let verdicts = (first["procedures"] as? [[String: Any]] ?? []).map { $0["verdict"] as? String ?? "" }
        #expect(verdicts == ["FAIL", "SKIPPED", "SKIPPED", "SKIPPED"])
        #expect(
            (first["procedures"] as? [[String: Any]])?.last?["message"] as? String
                == "not run: 'leak-test' FAILED (the suite stops at the first FAIL; --continue-on-fail goes on)")
        #expect(first["verdict"] as? String == "FAIL", "a suite that stopped at a FAIL is a FAIL")
        // CI sees the procedures that did not run, not a short green suite.
        let junit = try String(contentsOfFile: try runFolder(in: "\(home)/a") + "/junit.xml", encoding: .utf8)
        #expect(junit.contains("<testsuite name=\"power-on (not run)\""))
        #expect(junit.components(separatedBy: "<skipped message=\"not run:").count - 1 == 3)

        let goingOn = try await run([
            "run", "fat-suite", "--scenario", "loop-leak", "--param", "hold=1min", "--continue-on-fail",
            "--report-dir", "\(home)/b",
        ])
        #expect(goingOn.status == 1)
        let second = try json(try runFolder(in: "\(home)/b") + "/suite.json")
        let all = (second["procedures"] as? [[String: Any]] ?? []).map { $0["verdict"] as? String ?? "" }
        #expect(all == ["FAIL", "PASS", "PASS", "PASS"])
        #expect(second["verdict"] as? String == "FAIL")
    }

    @Test func aLimitSetGoesToItsProcedureOnly() async throws {
        let home = temporaryDirectory()
        let result = try await run([
            "run", "fat-suite", "--limits", "leak-test-nvl72-hp", "--param", "hold=1min", "--report-dir", home,
        ])
        #expect(result.status == 0, "\(result.stdout.suffix(2000))\(result.stderr)")
        let bundle = try runFolder(in: home)
        let suite = try json("\(bundle)/suite.json")
        var sets: [String: String] = [:]
        for procedure in suite["procedures"] as? [[String: Any]] ?? [] {
            let record = try json("\(bundle)/\(procedure["folder"] as? String ?? "")/record.json")
            sets[procedure["id"] as? String ?? ""] = (record["limit_set"] as? [String: Any])?["name"] as? String ?? "-"
        }
        #expect(
            sets == ["leak-test": "leak-test-nvl72-hp", "power-on": "-", "bmc-inventory": "-", "psu-redundancy": "-"])
    }

    @Test func ctrlCStopsTheProcedureRunningAndEveryOneAfterIt() async throws {
        let reports = temporaryDirectory()
        let running = try Running(
            // A hold of 20 s wall: the SIGINT must land in it however slowly a busy CI machine lets this test see
            // "Stabilise" (it ends in ABORTED right after, so the length costs nothing).
            ["run", "fat-suite", "--time-scale", "30", "--param", "hold=600s", "--report-dir", reports],
            directory: temporaryDirectory())
        _ = try await waitFor(running.stdoutPath, seconds: 60) { $0.contains("Stabilise") }
        running.signal(SIGINT)
        let status = try await running.wait(seconds: 120)
        #expect(status == 3, "\(running.stdout.suffix(2000))\(running.stderr)")
        let suite = try json(try runFolder(in: reports) + "/suite.json")
        #expect(suite["verdict"] as? String == "ABORTED")
        let verdicts = (suite["procedures"] as? [[String: Any]] ?? []).map { $0["verdict"] as? String ?? "" }
        #expect(verdicts == ["ABORTED", "SKIPPED", "SKIPPED", "SKIPPED"])
        #expect((suite["message"] as? String)?.contains("stopped by SIGINT") == true, "\(suite)")
        #expect(running.stdout.contains("Cleanup completed"), "the stopped procedure cleaned up")
    }

    @Test func aParameterNoProcedureHasIsAUsageError() async throws {
        let result = try await run(["run", "fat-suite", "--param", "hodl=1min"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("unknown parameter 'hodl'"), "\(result.stderr)")
    }
}
