import Foundation
import TestSupport
import Testing

@Suite("Controlled limits: a changed limit is refused, or a recorded deviation an approver signs", .serialized)
struct DeviationTests {
    @Test("Loosening a limit at a station that does not allow deviations is a usage error naming the limit")
    func refusedWithoutPermission() async throws {
        let closed = try ClosedPort()
        let station = try stationFile(port: closed.port)
        let refused = try await run(["run", "leak-test", "--station", station, "--param", "max_decay=10kPa"])
        #expect(refused.status == 64)
        #expect(refused.stderr.contains("'max_decay' is a limit of procedure 'leak-test' (2 kPa)"), "\(refused.stderr)")
        #expect(refused.stderr.contains("does not allow deviations"))
        withExtendedLifetime(closed) {}
    }

    @Test("An allowed deviation is in the record, the report and the signed predicate; the archive wants approval")
    func recordedSignedApproved() async throws {
        let home = temporaryDirectory()
        try await makeKeyring(in: home, approver: "qa")
        let (simulator, port) = try await startSimulatorOnAnyPort()
        defer { simulator.signal(SIGTERM) }
        let station = try stationFile(
            port: port, more: "allow_deviations: true\nsigning_key: \(home)/keys/line1.key.pem")
        let reports = "\(home)/reports"
        let arguments = [
            "run", "leak-test", "--station", station, "--time-scale", "20", "--param", "hold=30s", "--param",
            "max_decay=10kPa", "--rack-serial", "NVL72-DEV-01", "--operator", "J. Smith", "--report-dir", reports,
        ]
        let noReason = try await run(arguments)
        #expect(noReason.status == 64)
        #expect(noReason.stderr.contains("needs --deviation-reason"), "\(noReason.stderr)")
        let result = try await run(arguments + ["--deviation-reason", "retest after QD swap, QA-1234"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("DEVIATION max_decay 2 kPa → 10 kPa by J. Smith: retest after QD swap, QA-1234"))
        let bundle = try runFolder(in: reports)
        let record = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: bundle + "/record.json")))
                as? [String: Any])
        let deviation = try #require((record["deviations"] as? [[String: String]])?.first)
        #expect(
            deviation == [
                "parameter": "max_decay", "procedure_value": "2 kPa", "value": "10 kPa", "by": "J. Smith",
                "reason": "retest after QD swap, QA-1234",
            ])
        let html = try String(contentsOfFile: bundle + "/report.html", encoding: .utf8)
        #expect(html.contains("<table class=\"deviation\" id=\"deviations\">"))
        #expect(html.contains("10 kPa  (DEVIATION: the procedure says 2 kPa)"))
        // The signed statement carries it (read as a third party would: base64 payload of the DSSE envelope).
        let envelope = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: bundle + "/attestation.dsse.json"))) as? [String: Any])
        let payload = try #require(Data(base64Encoded: envelope["payload"] as? String ?? ""))
        let statement = try #require(try JSONSerialization.jsonObject(with: payload) as? [String: Any])
        let predicate = try #require(statement["predicate"] as? [String: Any])
        let signed = try #require((predicate["deviations"] as? [[String: String]])?.first)
        #expect(signed["parameter"] == "max_decay" && signed["value"] == "10 kPa")

        let archive = "\(home)/archive"
        let refused = try await run([
            "archive", "add", bundle, "--keyring", "\(home)/keyring.yaml", "--archive", archive,
        ])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("deviates from the procedure's limits (max_decay 2 kPa → 10 kPa)"))
        let approved = try await run([
            "approve", bundle, "--key", "\(home)/keys/qa.key.pem", "--meaning", "deviation reviewed and accepted",
            "--keyring", "\(home)/keyring.yaml",
        ])
        #expect(approved.status == 0, "\(approved.stderr)")
        let added = try await run(["archive", "add", bundle, "--keyring", "\(home)/keyring.yaml", "--archive", archive])
        #expect(added.status == 0, "\(added.stderr)")
    }
}
