import Foundation
import TestSupport
import Testing

@Suite("A line: eight bays at once in one process", .serialized)
struct LineTests {
    static let line = "\(repositoryRoot)/Fixtures/lines/sim-line.yaml"

    func record(_ folder: String) throws -> [String: Any] {
        try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/record.json")))
                as? [String: Any])
    }

    func folders(_ reports: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: reports).sorted().map { "\(reports)/\($0)" }
    }

    @Test("Eight simulated racks, one leaking: seven PASS, bay 3 FAIL, eight signed bundles, exit 1")
    func eightBaysOneLeak() async throws {
        let home = temporaryDirectory()
        try await makeKeyring(in: home, station: "line")
        let result = try await run([
            "run", "leak-test", "--line", Self.line, "--scenario", "3=loop-leak", "--param", "hold=2min",
            "--signing-key", "\(home)/keys/line.key.pem", "--report-dir", "\(home)/r",
        ])
        #expect(result.status == 1, "\(result.stdout.suffix(3000))\(result.stderr)")
        // The final table: a row per bay.
        let table = result.stdout.components(separatedBy: "━━━━ LINE sim-line: FAIL").last ?? ""
        for bay in 1...8 {
            let row = table.split(separator: "\n").first { $0.hasPrefix("\(bay) ") }.map(String.init) ?? ""
            #expect(row.contains(bay == 3 ? "FAIL (SIMULATED)" : "PASS (SIMULATED)"), "bay \(bay): \(row)")
            #expect(row.contains("SIM-LINE-B\(bay)") && row.contains("signed"), "bay \(bay): \(row)")
        }
        // Output without a terminal: every line says its bay.
        #expect(result.stdout.contains("[bay 3]   ✗ Pressure decay over hold"), "\(result.stdout.suffix(2000))")
        let runs = try folders("\(home)/r")
        #expect(runs.count == 8)
        var verdicts: [String: String] = [:]
        for folder in runs {
            let record = try record(folder)
            verdicts[record["station"] as? String ?? "?"] = record["verdict"] as? String
            let verified = try await run(["verify", folder, "--keyring", "\(home)/keyring.yaml"])
            #expect(verified.status == 0, "\(folder): \(verified.stderr)")
        }
        #expect(verdicts.count == 8)
        #expect(verdicts["sim-line bay 3"] == "FAIL")
        #expect(verdicts.filter { $0.value == "PASS" }.count == 7, "\(verdicts)")
    }

    @Test("Ctrl-C during the hold stops every bay; each cleans up and ends ABORTED with its safe state verified")
    func ctrlCStopsEveryBay() async throws {
        let reports = temporaryDirectory()
        let running = try Running(
            [
                "run", "leak-test", "--line", Self.line, "--time-scale", "5", "--param", "hold=60s", "--param",
                "stabilise=30s",
                "--report-dir", reports,
            ], directory: temporaryDirectory())
        // Wait until every bay is sampling its hold.
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline {
            let journals = ((try? folders(reports)) ?? []).compactMap {
                try? String(contentsOfFile: $0 + "/journal.jsonl", encoding: .utf8)
            }
            if journals.count == 8, journals.allSatisfy({ sampleCount($0) >= 3 }) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        running.signal(SIGINT)
        let status = try await running.wait(seconds: 120)
        #expect(status == 3, "\(running.stdout.suffix(3000))\(running.stderr)")
        let runs = try folders(reports)
        #expect(runs.count == 8)
        for folder in runs {
            let record = try record(folder)
            #expect(record["verdict"] as? String == "ABORTED", "\(folder)")
            #expect((record["safe_state"] as? [String: Any])?["verified"] as? Bool == true, "\(folder)")
            let steps = record["steps"] as? [[String: Any]] ?? []
            #expect(steps.first { $0["name"] as? String == "Hold" }?["verdict"] as? String == "ABORTED")
            let cleanup = steps.filter { $0["group"] as? String == "cleanup" }
            #expect(!cleanup.isEmpty && cleanup.allSatisfy { $0["verdict"] as? String == "PASS" }, "\(folder)")
        }
        #expect(running.stdout.contains("━━━━ LINE sim-line: ABORTED"))
    }

    @Test("The status page, rendered in headless Chromium during a line run, shows all eight bays and their step")
    func theLineAtAGlance() async throws {
        let state = temporaryDirectory()
        let environment = ["ACCEPTANCE_STATE_DIR": state]
        let reports = temporaryDirectory()
        let running = try Running(
            [
                "run", "leak-test", "--line", Self.line, "--time-scale", "5", "--param", "hold=60s", "--param",
                "stabilise=30s",
                "--report-dir", reports,
            ], directory: temporaryDirectory(), environment: environment)
        defer { running.signal(SIGINT) }
        let page = try Running(
            ["line", "status", "--line", "sim-line", "--serve", "127.0.0.1:0"], directory: temporaryDirectory(),
            environment: environment)
        defer { page.signal(SIGTERM) }
        let said = try await waitFor(page.stdoutPath) { $0.contains("serving the line status on") }
        let port = try #require(
            said.split(separator: ":").dropFirst(2).first?.split(separator: "/").first.flatMap { Int($0) })
        // Every bay in its hold.
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline {
            let journals = ((try? folders(reports)) ?? []).compactMap {
                try? String(contentsOfFile: $0 + "/journal.jsonl", encoding: .utf8)
            }
            if journals.count == 8, journals.allSatisfy({ sampleCount($0) >= 3 }) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let (status, dom) = try await runProgram(
            try program("chromium"),
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=1000", "--dump-dom",
                "http://127.0.0.1:\(port)/",
            ])
        #expect(status == 0, "\(dom.suffix(2000))")
        #expect(dom.contains("Line sim-line · leak-test"), "\(dom.prefix(2000))")
        for bay in 1...8 {
            let row =
                dom.components(separatedBy: "<tr id=\"bay-\(bay)\">").dropFirst().first?
                .components(separatedBy: "</tr>").first ?? ""
            #expect(row.contains("SIM-LINE-B\(bay)"), "bay \(bay): \(row)")
            #expect(row.contains("Hold"), "bay \(bay) is holding: \(row)")
            #expect(row.contains("<progress"), "bay \(bay) shows how far: \(row)")
        }
        // The same as data.
        let (_, json) = try await runProgram(
            try program("chromium"),
            ["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "http://127.0.0.1:\(port)/status.json"])
        #expect(json.contains("acceptance.line-status\\/1") || json.contains("acceptance.line-status/1"), "\(json)")
        #expect(json.components(separatedBy: "\"bay\":").count - 1 == 8, "\(json)")
        running.signal(SIGINT)
        #expect(try await running.wait(seconds: 120) == 3)
    }
}
