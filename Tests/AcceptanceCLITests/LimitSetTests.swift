import Foundation
import TestSupport
import Testing

@Suite("Limit sets per rack SKU: reviewed files, pinned by digest at a station", .serialized)
struct LimitSetTests {
    func json(_ path: String) throws -> [String: Any] {
        try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// The digest as QA computes it, with coreutils' sha256sum.
    func sha256sum(_ path: String) async throws -> String {
        let (status, output) = try await runProgram(try program("sha256sum"), [path])
        #expect(status == 0, "\(output)")
        return String(output.prefix(64))
    }

    @Test func aSKUsLimitsJudgeTheRackAndTheRecordSaysWhichByDigest() async throws {
        let home = temporaryDirectory()
        let result = try await run([
            "run", "leak-test", "--limits", "leak-test-nvl72-hp", "--param", "hold=1min", "--report-dir", "\(home)/r",
        ])
        #expect(result.status == 0, "\(result.stdout.suffix(1500))\(result.stderr)")
        #expect(result.stderr.contains("limit set leak-test-nvl72-hp (leak-test-nvl72-hp.yaml, SHA-256"))
        #expect(result.stdout.contains("limit ≤ 2.5 kPa"), "the set's decay limit, not the procedure's 2 kPa")
        let bundle = try runFolder(in: "\(home)/r")
        let record = try json("\(bundle)/record.json")
        let set = try #require(record["limit_set"] as? [String: Any])
        let digest = try await sha256sum("\(repositoryRoot)/Fixtures/limits/leak-test-nvl72-hp.yaml")
        #expect(set["sha256"] as? String == digest)
        #expect((set["values"] as? [String: String]) == ["max_decay": "2.5 kPa", "test_pressure": "320 kPa"])
        #expect((set["procedure_values"] as? [String: String]) == ["max_decay": "2 kPa", "test_pressure": "300 kPa"])
        #expect((record["parameters"] as? [String: String])?["max_decay"] == "2.5 kPa")
        #expect(record["deviations"] == nil, "a reviewed set is not a deviation")
        let html = try String(contentsOfFile: "\(bundle)/report.html", encoding: .utf8)
        #expect(html.contains("<tr><td>Limit set</td><td>leak-test-nvl72-hp — High-pressure loop variant"))
        #expect(html.contains("2.5 kPa  (limit set leak-test-nvl72-hp; the procedure's default is 2 kPa)"))

        // Loosened beyond the set: a deviation from the set's value, recorded as such.
        let loosened = try await run([
            "run", "leak-test", "--limits", "leak-test-nvl72-hp", "--param", "hold=1min", "--param", "max_decay=4kPa",
            "--report-dir", "\(home)/d",
        ])
        #expect(loosened.status == 0, "\(loosened.stderr)")
        let deviated = try json(try runFolder(in: "\(home)/d") + "/record.json")
        let deviation = try #require((deviated["deviations"] as? [[String: String]])?.first)
        #expect(
            deviation["procedure_value"] == "2.5 kPa (limit set leak-test-nvl72-hp)" && deviation["value"] == "4 kPa")

        let unknown = try await run(["run", "leak-test", "--limits", "leak-test-nvl72-hq"])
        #expect(unknown.status == 64)
        #expect(unknown.stderr.contains("did you mean 'leak-test-nvl72-hp'?"), "\(unknown.stderr)")
    }

    @Test func aStationJudgesByThePinnedSetAndRefusesAChangedFile() async throws {
        let home = temporaryDirectory()
        let set = "\(home)/nvl72-hp.yaml"
        try FileManager.default.copyItem(
            atPath: "\(repositoryRoot)/Fixtures/limits/leak-test-nvl72-hp.yaml", toPath: set)
        let digest = try await sha256sum(set)
        let closed = try ClosedPort()
        let station = try stationFile(
            port: closed.port, retries: 0, timeout: "200 ms",
            more: "limits:\n  leak-test: {file: \(set), sha256: \(digest)}")
        // Another set than the pinned one: refused before anything, naming the pin.
        let other = try await run(["run", "leak-test", "--station", station, "--limits", "leak-test-nvl72-hp"])
        #expect(other.status == 64, "\(other.stderr)")
        #expect(other.stderr.contains("judges 'leak-test' by the limit set it pins"), "\(other.stderr)")
        // A station without a pin: a set chosen on the line is a deviation, refused where deviations are not allowed.
        let unpinned = try stationFile(port: closed.port, retries: 0, timeout: "200 ms")
        let chosen = try await run(["run", "leak-test", "--station", unpinned, "--limits", "leak-test-nvl72-hp"])
        #expect(chosen.status == 64, "\(chosen.stderr)")
        #expect(chosen.stderr.contains("pins no limit set for 'leak-test'"), "\(chosen.stderr)")
        // The pinned set, unchanged, is accepted: the run gets past it to what this bench lacks (a gauge).
        let pinned = try await run(["run", "leak-test", "--station", station, "--report-dir", "\(home)/r"])
        #expect(pinned.stderr.contains("uses gauge, which station 'test-station' does not connect"), "\(pinned.stderr)")
        #expect(!pinned.stderr.contains("pins"), "\(pinned.stderr)")
        // One value edited on the line: refused, naming both digests, nothing run and no run folder.
        try String(contentsOfFile: set, encoding: .utf8).replacingOccurrences(of: "2.5 kPa", with: "5 kPa")
            .write(toFile: set, atomically: true, encoding: .utf8)
        let edited = try await run(["run", "leak-test", "--station", station, "--report-dir", "\(home)/e"])
        #expect(edited.status == 2)
        #expect(edited.stderr.contains("but station 'test-station' pins \(digest)"), "\(edited.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(home)/e"))
        withExtendedLifetime(closed) {}
    }

    @Test func aSetsMistakesAreReportedAtTheirPlace() async throws {
        let home = temporaryDirectory()
        try """
        limits: wrong
        procedure: leak-test
        procedure_version: 0.9.0
        values:
          max_decai: 2 kPa
          pump_speed: 95 %
          max_decay: 3 °C
        """.write(toFile: "\(home)/wrong.yaml", atomically: true, encoding: .utf8)
        let result = try await run(["run", "leak-test", "--limits", "\(home)/wrong.yaml"])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("wrong.yaml:1:1: error: limit set 'wrong' was reviewed for leak-test 0.9.0"))
        #expect(
            result.stderr.contains(
                "wrong.yaml:5:14: error: procedure 'leak-test' has no parameter 'max_decai'; did you mean 'max_decay'?"),
            "\(result.stderr)")
        #expect(result.stderr.contains("wrong.yaml:6:15: error: 'pump_speed' is not a limit"), "\(result.stderr)")
        #expect(result.stderr.contains("wrong.yaml:7:14: error: parameter 'max_decay'"), "\(result.stderr)")
    }
}
