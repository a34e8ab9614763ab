import Foundation
import TestSupport
import Testing

@Suite("acceptance keys, verify, approve and archive, as QA types them")
struct ReportCommandTests {
    @Test func aQAEngineersDayFromKeysToArchive() async throws {
        let home = temporaryDirectory()
        let keys = try await run(["keys", "generate", "--out", "\(home)/keys", "--name", "line1"])
        #expect(keys.status == 0, "\(keys.stderr)")
        let qa = try await run(["keys", "generate", "--out", "\(home)/keys", "--name", "qa"])
        #expect(qa.status == 0)
        let again = try await run(["keys", "generate", "--out", "\(home)/keys", "--name", "line1"])
        #expect(again.status != 0, "keys are never overwritten")
        let fingerprint = try await run(["keys", "fingerprint", "\(home)/keys/line1.pub.pem"])
        #expect(fingerprint.stdout.count > 64)
        try """
        keys:
          - {name: line-1, role: station, public_key: keys/line1.pub.pem, valid_from: 2026-01-01T00:00:00Z}
          - {name: QA, role: approver, public_key: keys/qa.pub.pem}
        """.write(toFile: "\(home)/keyring.yaml", atomically: true, encoding: .utf8)

        let reports = "\(home)/reports"
        let signed = try await run([
            "run", "leak-test", "--scenario", "loop-leak", "--rack-serial", "QA-RACK-0042",
            "--signing-key", "\(home)/keys/line1.key.pem", "--report-dir", reports,
        ])
        #expect(signed.status == 1)
        #expect(signed.stdout.contains("Report bundle signed"))
        let bundle = try runFolder(in: reports)
        let verified = try await run(["verify", bundle, "--keyring", "\(home)/keyring.yaml"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        #expect(verified.stdout.contains("VERIFIED"))

        let approved = try await run([
            "approve", bundle, "--key", "\(home)/keys/qa.key.pem", "--meaning", "reviewed and approved",
            "--keyring", "\(home)/keyring.yaml",
        ])
        #expect(approved.status == 0, "\(approved.stderr)")
        let archive = "\(home)/archive"
        let simulated = try await run([
            "archive", "add", bundle, "--keyring", "\(home)/keyring.yaml", "--archive", archive,
        ])
        #expect(simulated.status == 1)
        #expect(simulated.stderr.contains("SIMULATED"))
        let added = try await run([
            "archive", "add", bundle, "--keyring", "\(home)/keyring.yaml", "--archive", archive,
            "--allow-simulated",
        ])
        #expect(added.status == 0, "\(added.stderr)")
        let listed = try await run(["archive", "list", "--rack", "QA-RACK-0042", "--archive", archive])
        #expect(listed.stdout.hasPrefix("STARTED "), "a header row first: \(listed.stdout)")
        #expect(
            listed.stdout.split(separator: "\n").first?.split(separator: " ").map(String.init)
                == ["STARTED", "RUN", "RACK", "PROCEDURE", "VERDICT", "STATION", "SIGNED", "BY", "APPROVAL"])
        #expect(listed.stdout.contains("leak-test"))
        #expect(listed.stdout.contains("FAIL"))
        #expect(listed.stdout.contains("APPROVED"))
        #expect(listed.stdout.contains("1 run"))

        // One flipped byte: verify says what, and exits 1; the archive refuses it.
        let record = "\(bundle)/report.html"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: record))
        bytes[200] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: record))
        let tampered = try await run(["verify", bundle, "--keyring", "\(home)/keyring.yaml"])
        #expect(tampered.status == 1)
        #expect(tampered.stderr.contains("changed since signing: report.html"))
        let refused = try await run([
            "archive", "add", bundle, "--keyring", "\(home)/keyring.yaml", "--archive", archive,
            "--allow-simulated",
        ])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("does not verify"))

        // An unsigned run says so loudly.
        let unsigned = try await run(["run", "leak-test", "--report-dir", "\(home)/unsigned"])
        #expect(unsigned.stderr.contains("WARNING: UNSIGNED"))
        #expect(unsigned.stdout.contains("UNSIGNED report bundle"))
    }
}
