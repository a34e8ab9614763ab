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
                // A 2 min hold (at 5×): the page is read and the SIGINT lands while every bay still holds, however
                // slowly Chromium starts on a busy machine; the run ends ABORTED right after, so it costs nothing.
                "run", "leak-test", "--line", Self.line, "--time-scale", "5", "--param", "hold=600s", "--param",
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
            #expect(row.contains("run ") && row.contains(" of ~"), "bay \(bay)'s run time and estimate: \(row)")
        }
        // The estimate: at least the 30 s stabilise and 10 min hold the bays run, more than the time so far.
        let file = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: "\(state)/lines/sim-line.json"))) as? [String: Any])
        for row in try #require(file["bays"] as? [[String: Any]]) {
            let run = try #require(row["run_s"] as? Double)
            let estimated = try #require(row["estimated_s"] as? Double)
            #expect(estimated >= 630 && estimated > run, "bay \(row["bay"] ?? "?"): run \(run) s of \(estimated) s")
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

@Suite("A line on a terminal: one live table of every bay")
struct LineTerminalTests {
    /// tmux at 120 × 60: while the bays run, one table (bay, rack, procedure, step, times, latest, verdict) stays
    /// under the scrolling bay lines, redrawn in place (its header never on screen twice, never left in the
    /// scrollback); each bay's prompt (seat the quick-disconnects) names its bay, is asked with the table out of
    /// the way, and is answered; the final table follows.
    /// Runs `command` in tmux at 120 × 60 until it prints RUN-ENDED, answering each bay's prompt and hazard as they
    /// come; with `stopping`, presses Ctrl-C once all eight bays are in their hold and answers the question with it.
    /// Returns the script's summary line, a screen taken while the most bays were running, and the whole scrollback.
    func drive(_ command: String, stopping: String = "") async throws -> (summary: String, during: String, end: String)
    {
        let tmux = try program("tmux")
        let session = "acceptance-line-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        // One shell drives tmux from start to end (a tmux server started by a process that then exits is gone with
        // it). It keeps the most table headers ever on the screen, the most bays seen in a running step, and a
        // screen taken while bays were running.
        let script = """
            tmux="$1"; session="$2"; command="$3"; stopping="$4"
            "$tmux" new-session -d -s "$session" -x 120 -y 60 "$command" || exit 1
            answered=0; hazards=0; most=0; running=0; during=""; screen=""; interrupted=0
            for i in $(seq 1 900); do
              screen=$("$tmux" capture-pane -p -t "$session")
              if [ -n "$stopping" ] && [ $interrupted = 0 ] \\
                && [ "$(printf '%s\n' "$screen" | grep -cE '^[1-8]  +SIM-LINE-B[1-8]  .* main\\.[0-9]+ Hold ')" -ge 8 ]
              then
                "$tmux" send-keys -t "$session" C-c; interrupted=1
              fi
              asked=$("$tmux" capture-pane -p -t "$session" -S -3000 | grep -cE "Press Enter when done|operator id")
              last=$(printf '%s\n' "$screen" | grep -v '^ *$' | tail -n 1)
              if [ "$asked" -gt "$answered" ] && printf '%s' "$last" | grep -qE "Press Enter|operator id"; then
                printf '%s\n' "$screen" | grep -q '^BAY  *RACK' && echo TABLE-UNDER-PROMPT
                if printf '%s' "$last" | grep -q "operator id"; then
                  "$tmux" send-keys -t "$session" 4711 Enter; hazards=$((hazards + 1))
                else
                  "$tmux" send-keys -t "$session" Enter
                fi
                answered=$((answered + 1))
              fi
              if [ $interrupted = 1 ] && printf '%s' "$last" | grep -q "stops nothing"; then
                printf '%s\n' "$screen" | grep -q '^BAY  *RACK' && echo TABLE-UNDER-PROMPT
                "$tmux" send-keys -t "$session" "$stopping" Enter; interrupted=2
              fi
              headers=$(printf '%s\\n' "$screen" | grep -c '^BAY  *RACK  *PROCEDURE  *STEP')
              [ "$headers" -gt "$most" ] && most=$headers
              now=$(printf '%s\\n' "$screen" | grep -cE '^[1-8]  +SIM-LINE-B[1-8]  +leak-test  +[0-9]+/[0-9]+ main\\.')
              if [ "$now" -gt "$running" ]; then running=$now; during="$screen"; fi
              printf '%s' "$screen" | grep -q RUN-ENDED && break
              sleep 0.1
            done
            echo "ANSWERED=$answered HAZARDS=$hazards MOST-HEADERS=$most RUNNING=$running INTERRUPTED=$interrupted"
            echo "----- during"; printf '%s\\n' "$during"
            echo "----- end"; "$tmux" capture-pane -p -t "$session" -S -3000
            "$tmux" kill-session -t "$session"
            """
        let (status, output) = try await runProgram(
            "/bin/sh", ["-c", script, "sh", tmux, session, command, stopping], seconds: 240)
        #expect(status == 0, "\(output)")
        let parts = output.components(separatedBy: "----- end")
        let during = parts.first?.components(separatedBy: "----- during").last ?? ""
        let summary = output.split(separator: "\n").first { $0.hasPrefix("ANSWERED=") }.map(String.init) ?? ""
        return (
            summary + "\n" + (output.contains("TABLE-UNDER-PROMPT") ? "TABLE-UNDER-PROMPT" : ""), during,
            parts.count > 1 ? parts[1] : ""
        )
    }

    @Test func oneLiveTableRedrawnInPlace() async throws {
        let folder = temporaryDirectory()
        let (summary, during, end) = try await drive(
            "cd \(repositoryRoot) && ACCEPTANCE_STATE_DIR=\(folder)/state XDG_CONFIG_HOME=\(folder)/config "
                + "\(try binary()) run leak-test --line Fixtures/lines/sim-line.yaml --scenario 3=loop-leak "
                // 10×: the simulated racks' interlocks allow 10 s without a reading, 1 s of wall time here for eight
                // racks in one process on a CI machine others keep busy (at 40× it was 0.25 s, and CI tripped it).
                + "--time-scale 10 --param hold=2min --report-dir \(folder)/reports; echo RUN-ENDED; sleep 30")
        #expect(end.contains("RUN-ENDED"), "the line did not end:\n\(end.suffix(4000))")
        #expect(summary.contains("MOST-HEADERS=1 "), "one table, redrawn in place:\n\(summary)\n\(during)")
        // Each bay's run time and estimate on its clock: the 2 min hold and 2 min stabilise ahead at least.
        #expect(during.contains("ELAPSED / EST."), "\(during)")
        #expect(during.range(of: #"\d+:\d\d / \d+:\d\d"#, options: .regularExpression) != nil, "\(during)")
        #expect(!summary.contains("RUNNING=0"), "no bay was seen running in the table:\n\(during)")
        #expect(summary.contains("ANSWERED=16 HAZARDS=8 "), "each bay asked twice:\n\(end.suffix(4000))")
        #expect(!summary.contains("TABLE-UNDER-PROMPT"), "the table is taken away while a bay asks")
        for bay in 1...8 {
            #expect(
                end.contains("Bay \(bay): Check that every quick-disconnect"),
                "bay \(bay)'s prompt names its bay:\n\(end.suffix(3000))")
        }
        // The live table is gone at the end (not one copy per redraw in the scrollback); the final table is there.
        #expect(!end.contains("STEP TIME"), "\(end.suffix(4000))")
        #expect(end.contains("━━━━ LINE sim-line: FAIL"), "\(end.suffix(3000))")
        let finalRows = end.components(separatedBy: "━━━━ LINE sim-line: FAIL").last ?? ""
        #expect(finalRows.contains("FAIL (SIMULATED)"))
    }

    /// Ctrl-C during the hold asks which bays to stop; answering 3 stops bay 3 alone: it cleans up and ends ABORTED
    /// with its safe state verified, and the seven others finish their hold and PASS.
    @Test func ctrlCAsksWhichBaysAndStopsOnlyThose() async throws {
        let folder = temporaryDirectory()
        let (summary, _, end) = try await drive(
            "cd \(repositoryRoot) && ACCEPTANCE_STATE_DIR=\(folder)/state XDG_CONFIG_HOME=\(folder)/config "
                + "\(try binary()) run leak-test --line Fixtures/lines/sim-line.yaml --time-scale 8 --param hold=2min "
                + "--report-dir \(folder)/reports; echo RUN-ENDED; sleep 30",
            stopping: "3")
        #expect(
            summary.contains("INTERRUPTED=2"), "the question was asked and answered:\n\(summary)\n\(end.suffix(4000))")
        #expect(!summary.contains("TABLE-UNDER-PROMPT"), "the table is taken away while the question is open")
        #expect(end.contains("Stop which bays? Running: 1, 2, 3, 4, 5, 6, 7, 8."), "\(end.suffix(4000))")
        #expect(end.contains("SIGINT: stopping bay 3."), "\(end.suffix(4000))")
        let table = end.components(separatedBy: "━━━━ LINE sim-line: ABORTED").last ?? ""
        for bay in 1...8 {
            let row = table.split(separator: "\n").first { $0.hasPrefix("\(bay) ") }.map(String.init) ?? ""
            #expect(row.contains(bay == 3 ? "ABORTED (SIMULATED)" : "PASS (SIMULATED)"), "bay \(bay): \(row)")
        }
        let records = try FileManager.default.contentsOfDirectory(atPath: "\(folder)/reports").map {
            try #require(
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: URL(fileURLWithPath: "\(folder)/reports/\($0)/record.json")))
                    as? [String: Any])
        }
        let aborted = try #require(records.first { $0["verdict"] as? String == "ABORTED" })
        #expect(aborted["station"] as? String == "sim-line bay 3")
        #expect(
            (aborted["safe_state"] as? [String: Any])?["verified"] as? Bool == true, "\(aborted["safe_state"] ?? "")")
        #expect(records.filter { $0["verdict"] as? String == "PASS" }.count == 7)
    }
}
