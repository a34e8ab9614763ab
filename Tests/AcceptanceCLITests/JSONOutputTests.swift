import Foundation
import TestSupport
import Testing

/// `--json` documents, validated against the schemas `acceptance schema` prints, by Python's jsonschema (draft
/// 2020-12, formats checked): a validator we did not write.
@Suite("--json output validates against its versioned schema")
struct JSONOutputTests {
    /// Writes `text` to a file and validates it (and any more) against schema `name`.
    func validate(_ name: String, _ documents: [String]) async throws {
        let folder = temporaryDirectory()
        let schema = try await run(["schema", name])
        #expect(schema.status == 0, "\(schema.stderr)")
        try schema.stdout.write(toFile: "\(folder)/schema.json", atomically: true, encoding: .utf8)
        var files: [String] = []
        for (index, document) in documents.enumerated() {
            let file = "\(folder)/document-\(index).json"
            try document.write(toFile: file, atomically: true, encoding: .utf8)
            files.append(file)
        }
        let (status, output) = try await runProgram(
            try program("python3"),
            ["\(repositoryRoot)/Tests/AcceptanceCLITests/Peers/json_validate.py", "\(folder)/schema.json"] + files)
        #expect(status == 0, "\(name): \(output)")
        #expect(output.components(separatedBy: "ok ").count - 1 == documents.count, "\(output)")
    }

    func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func listPointsAndReadValidate() async throws {
        let list = try await run(["list", "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        let listed = try object(list.stdout)
        #expect(listed["schema"] as? String == "acceptance.list/1")
        let leak = try #require(
            (listed["procedures"] as? [[String: Any]])?.first { $0["id"] as? String == "leak-test" })
        let maxDecay = (leak["parameters"] as? [[String: Any]])?.first { $0["name"] as? String == "max_decay" }
        #expect(maxDecay?["limit"] as? Bool == true && maxDecay?["default"] as? String == "2 kPa")
        #expect((listed["suites"] as? [[String: Any]])?.first?["id"] as? String == "fat-suite")

        let points = try await run(["points", "cdu", "--json"])
        let all = try await run(["points", "--json"])
        #expect(points.status == 0 && all.status == 0, "\(points.stderr)\(all.stderr)")
        let cdu = try #require((try object(points.stdout)["devices"] as? [[String: Any]])?.first)
        let valve = (cdu["points"] as? [[String: Any]])?.first { $0["point"] as? String == "cdu.isolation_valve" }
        #expect(valve?["access"] as? String == "read-write")

        // The built-in simulated rack, and a point a station cannot reach (its CDU port is closed).
        let read = try await run(["read", "cdu.loop_pressure", "cdu.mode", "cdu.leak_detected", "--json"])
        #expect(read.status == 0, "\(read.stderr)")
        let readings = try #require(try object(read.stdout)["readings"] as? [[String: Any]])
        #expect(readings.first?["unit"] as? String == "kPa" && readings.first?["value"] is Double)
        #expect(readings[1]["value"] as? String == "automatic" && readings[2]["value"] as? Bool == false)
        let closed = try ClosedPort()
        let station = try stationFile(port: closed.port, retries: 0, timeout: "200 ms")
        let unreachable = try await run(["read", "cdu.loop_pressure", "--station", station, "--json"])
        #expect(unreachable.status == 2)
        let failed = try #require((try object(unreachable.stdout)["readings"] as? [[String: Any]])?.first)
        #expect(failed["error"] is String && failed["value"] == nil, "\(unreachable.stdout)")
        withExtendedLifetime(closed) {}

        try await validate("list", [list.stdout])
        try await validate("points", [points.stdout, all.stdout])
        try await validate("read", [read.stdout, unreachable.stdout])
    }

    @Test func verifyAndTheArchiveValidate() async throws {
        let home = temporaryDirectory()
        try await makeKeyring(in: home)
        let ran = try await run([
            "run", "leak-test", "--param", "hold=1min", "--signing-key", "\(home)/keys/line1.key.pem",
            "--report-dir", "\(home)/r",
        ])
        #expect(ran.status == 0, "\(ran.stderr)")
        let bundle = try runFolder(in: "\(home)/r")
        let verified = try await run(["verify", bundle, "--keyring", "\(home)/keyring.yaml", "--json"])
        #expect(verified.status == 0, "\(verified.stderr)")
        let document = try object(verified.stdout)
        #expect(document["verified"] as? Bool == true && document["simulated"] as? Bool == true)
        #expect(document["procedure"] as? String == "leak-test")

        let added = try await run([
            "archive", "add", bundle, "--keyring", "\(home)/keyring.yaml", "--archive", "\(home)/a",
            "--allow-simulated",
        ])
        #expect(added.status == 0, "\(added.stderr)")
        let listed = try await run(["archive", "list", "--archive", "\(home)/a", "--json"])
        let runs = try #require(try object(listed.stdout)["runs"] as? [[String: Any]])
        #expect(runs.count == 1 && runs.first?["procedure"] as? String == "leak-test")
        let runID = try #require(runs.first?["run_id"] as? String)
        let shown = try await run(["archive", "show", runID, "--archive", "\(home)/a", "--json"])
        #expect(shown.status == 0, "\(shown.stderr)")
        let files = try #require(try object(shown.stdout)["files"] as? [[String: Any]])
        #expect(files.contains { $0["name"] as? String == "record.json" })

        // A tampered bundle: still a valid document, saying what failed.
        let report = "\(bundle)/report.html"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: report))
        bytes[100] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: report))
        let tampered = try await run(["verify", bundle, "--keyring", "\(home)/keyring.yaml", "--json"])
        #expect(tampered.status == 1)
        let failedChecks = (try object(tampered.stdout)["checks"] as? [[String: Any]] ?? []).filter {
            $0["passed"] as? Bool == false
        }
        #expect(failedChecks.contains { ($0["text"] as? String ?? "").contains("report.html") })

        try await validate("verify", [verified.stdout, tampered.stdout])
        try await validate("archive-list", [listed.stdout])
        try await validate("archive-show", [shown.stdout])
    }

    @Test func everySchemaIsListedAndAMistypedNameIsAUsageError() async throws {
        let names = try await run(["schema"])
        #expect(
            names.stdout.split(separator: "\n").map { String($0.split(separator: " ").first ?? "") }
                == ["archive-list", "archive-show", "list", "points", "read", "verify"])
        let wrong = try await run(["schema", "verfy"])
        #expect(wrong.status == 64)
        #expect(wrong.stderr.contains("did you mean 'verify'?"))
    }
}
