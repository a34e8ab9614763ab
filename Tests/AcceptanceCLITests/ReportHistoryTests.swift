import Foundation
import TestSupport
import Testing

@Suite("The report QA files: this rack's previous runs from the archive, approvals rendered by verify", .serialized)
struct ReportHistoryTests {
    @Test func aSecondRunListsTheFirstAndVerifyRendersItsApproval() async throws {
        let home = temporaryDirectory()
        try await makeKeyring(in: home, approver: "qa")
        let (simulator, port) = try await startSimulatorOnAnyPort()
        defer { simulator.signal(SIGTERM) }
        let archive = "\(home)/archive"
        let station = try stationFile(
            port: port, more: "signing_key: \(home)/keys/line1.key.pem\narchive: \(archive)")
        func leakTest(_ reports: String) async throws -> String {
            let result = try await run([
                "run", "leak-test", "--station", station, "--time-scale", "20", "--param", "hold=30s",
                "--rack-serial", "NVL72-HIST-01", "--report-dir", reports,
            ])
            #expect(result.status == 0, "\(result.stdout.suffix(2000))\(result.stderr)")
            return try runFolder(in: reports)
        }

        // No archive yet: the report says nothing about history, and nothing was created to find out.
        let first = try await leakTest("\(home)/first")
        #expect(!FileManager.default.fileExists(atPath: archive))
        let firstPage = try String(contentsOfFile: "\(first)/report.html", encoding: .utf8)
        #expect(!firstPage.contains("Previous runs of this rack"))

        // Approved and archived, the first run is in the second run's report (signed with it).
        let approved = try await run([
            "approve", first, "--key", "\(home)/keys/qa.key.pem", "--meaning", "reviewed; rack may ship",
            "--keyring", "\(home)/keyring.yaml",
        ])
        #expect(approved.status == 0, "\(approved.stderr)")
        let added = try await run(["archive", "add", first, "--keyring", "\(home)/keyring.yaml", "--station", station])
        #expect(added.status == 0, "\(added.stderr)")
        let second = try await leakTest("\(home)/second")
        let page = try String(contentsOfFile: "\(second)/report.html", encoding: .utf8)
        let firstID = (first as NSString).lastPathComponent
        #expect(page.contains("<table id=\"previous-runs\">"))
        let row = try #require(page.components(separatedBy: "\n").first { $0.contains(firstID) })
        #expect(row.contains("leak-test 1.0.0") && row.contains(">PASS<") && row.contains("test-station"), "\(row)")
        #expect(row.contains("APPROVED"), "\(row)")
        #expect(!page.contains((second as NSString).lastPathComponent + "</td>"), "not itself")

        // verify --report: the signed page with what verify found and who approved it, from approval.dsse.json.
        let rendered = "\(home)/first-verified.html"
        let verified = try await run([
            "verify", first, "--keyring", "\(home)/keyring.yaml", "--report", rendered,
        ])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        let view = try String(contentsOfFile: rendered, encoding: .utf8)
        #expect(view.contains("id=\"verified\">VERIFIED"))
        let approval = try #require(view.components(separatedBy: "<table id=\"approvals\">").last)
        #expect(approval.contains("<td>QA</td><td>approver</td>") && approval.contains("reviewed; rack may ship"))
        #expect(view.hasPrefix(firstPage.components(separatedBy: "</body>").first ?? "-"), "the signed page, unchanged")
        let again = try await run(["verify", first, "--keyring", "\(home)/keyring.yaml"])
        #expect(again.status == 0, "rendering changed nothing in the bundle: \(again.stderr)")

        // Unapproved: the rendered page says so.
        let plain = try await run([
            "verify", second, "--keyring", "\(home)/keyring.yaml", "--report", "\(home)/second.html",
        ])
        #expect(plain.status == 0)
        let secondView = try String(contentsOfFile: "\(home)/second.html", encoding: .utf8)
        #expect(secondView.contains("No approval has been added to this bundle."))
    }
}
