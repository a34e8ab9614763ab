import Foundation
import TestSupport
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// The `acceptance` binary this test target depends on, beside the test bundle.
func binary() throws -> String {
    var candidates: [String] = []
    if let first = CommandLine.arguments.first {
        let url = URL(fileURLWithPath: first).resolvingSymlinksInPath()
        var directory = url.deletingLastPathComponent()
        // The test bundle may be a directory (`.xctest`) or a file beside the product binaries.
        for _ in 0..<4 {
            candidates.append(directory.appendingPathComponent("acceptance").path)
            directory = directory.deletingLastPathComponent()
        }
    }
    candidates.append("\(repositoryRoot)/.build/debug/acceptance")
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw CLIError(message: "acceptance binary not found in \(candidates)")
    }
    return found
}

struct CLIError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "acceptance-cli-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A running `acceptance` process, its output going to files (so nothing blocks on a full pipe).
final class Running: @unchecked Sendable {
    /// Started with `posix_spawn` (`ChildProcess`), not Foundation's `Process`: see there why.
    let process: ChildProcess
    let stdoutPath: String
    let stderrPath: String

    /// Each process gets a station state folder of its own (`ACCEPTANCE_STATE_DIR`) unless `environment` names one:
    /// tests that use one station id at once must not find each other's runs.
    init(
        _ arguments: [String], directory: String, executable: String? = nil, environment: [String: String] = [:]
    ) throws {
        stdoutPath = directory + "/stdout.txt"
        stderrPath = directory + "/stderr.txt"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        var variables = ProcessInfo.processInfo.environment
        variables["ACCEPTANCE_STATE_DIR"] = directory + "/state"
        // No station configured on the machine running the tests leaks in: only the one a test sets.
        variables["ACCEPTANCE_STATION"] = nil
        variables["XDG_CONFIG_HOME"] = directory + "/config"
        variables.merge(environment) { $1 }
        process = try ChildProcess(
            try executable ?? binary(), arguments, environment: variables, directory: repositoryRoot,
            stdout: stdoutPath, stderr: stderrPath)
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Waits for exit, polling, up to a bound; kills the process if it overstays. The bound is a hang guard, not a
    /// speed check: generous, because CI shares its two cores with every other test (and with other jobs).
    func wait(seconds: Double = 240) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning {
            if Date() > deadline {
                process.terminate()
                throw CLIError(message: "process did not finish in \(seconds) s; output: \(stdout)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }
}

func run(
    _ arguments: [String], environment: [String: String] = [:]
) async throws -> (status: Int32, stdout: String, stderr: String) {
    let running = try Running(arguments, directory: temporaryDirectory(), environment: environment)
    let status = try await running.wait()
    return (status, running.stdout, running.stderr)
}

/// The keys every signing test starts from, made as QA makes them (`acceptance keys generate` into `home/keys`):
/// a station key `station` (and an approver key), and `home/keyring.yaml` trusting them.
func makeKeyring(in home: String, station: String = "line1", approver: String? = nil) async throws {
    for name in [station] + (approver.map { [$0] } ?? []) {
        let made = try await run(["keys", "generate", "--out", "\(home)/keys", "--name", name])
        guard made.status == 0 else { throw CLIError(message: "keys generate \(name): \(made.stderr)") }
    }
    var keyring =
        "keys:\n  - {name: line-1, role: station, public_key: keys/\(station).pub.pem, valid_from: 2026-01-01T00:00:00Z}\n"
    if let approver { keyring += "  - {name: QA, role: approver, public_key: keys/\(approver).pub.pem}\n" }
    try keyring.write(toFile: "\(home)/keyring.yaml", atomically: true, encoding: .utf8)
}

/// Waits until a file satisfies a condition (polling, bounded).
func waitFor(_ path: String, seconds: Double = 30, _ condition: (String) -> Bool) async throws -> String {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if let text = try? String(contentsOfFile: path, encoding: .utf8), condition(text) { return text }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw CLIError(message: "timed out waiting for \(path)")
}

/// The single run folder created under a reports directory.
func runFolder(in reports: String) throws -> String {
    let entries = try FileManager.default.contentsOfDirectory(atPath: reports)
    guard entries.count == 1, let entry = entries.first else { throw CLIError(message: "run folders: \(entries)") }
    return "\(reports)/\(entry)"
}

/// The run folder under `reports`, once the run has made it (polling, bounded).
func runFolderAppearing(in reports: String, seconds: Double = 30) async throws -> String {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if let folder = try? runFolder(in: reports) { return folder }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw CLIError(message: "no run folder in \(reports) after \(Int(seconds)) s")
}

func sampleCount(_ journal: String) -> Int {
    journal.split(separator: "\n").filter { $0.contains("\"event\":\"sample\"") }.count
}

@Suite("acceptance command line", .serialized)
struct CLITests {
    @Test(arguments: ["memory", "tcp"])
    func leakTestPassesWithExitZero(transport: String) async throws {
        let reports = temporaryDirectory()
        let result = try await run(["run", "leak-test", "--sim-transport", transport, "--report-dir", reports])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("VERDICT:  PASS"))
        #expect(result.stdout.contains("Pressure decay over hold"))
        #expect(result.stdout.contains("limit ≤ 2 kPa"))
        #expect(result.stdout.contains("simulated clock"))
        #expect(!result.stdout.contains("\u{1B}["), "no colour when piped")
        let folder = try runFolder(in: reports)
        #expect(FileManager.default.fileExists(atPath: "\(folder)/record.json"))
        #expect(FileManager.default.fileExists(atPath: "\(folder)/journal.jsonl"))
    }

    @Test(arguments: [("loop-leak", Int32(1)), ("pump-failure", 1), ("cdu-silent", 2)], ["memory", "tcp"])
    func scenariosExitWithTheirVerdicts(scenario: (String, Int32), transport: String) async throws {
        let (scenario, expected) = scenario
        let reports = temporaryDirectory()
        let result = try await run([
            "run", "leak-test", "--scenario", scenario, "--sim-transport", transport,
            "--report-dir", reports,
        ])
        #expect(result.status == expected, "\(result.stdout)")
        let record = try Data(contentsOf: URL(fileURLWithPath: try runFolder(in: reports) + "/record.json"))
        let object = try #require(try JSONSerialization.jsonObject(with: record) as? [String: Any])
        let steps = try #require(object["steps"] as? [[String: Any]])
        let cleanup = steps.filter { $0["group"] as? String == "cleanup" }
        #expect(cleanup.count == 4)
        #expect(cleanup.allSatisfy { $0["verdict"] as? String != "SKIPPED" }, "cleanup ran")
        if scenario == "cdu-silent" { #expect(result.stdout.contains("device 'cdu'")) }
    }

    @Test func commandLineMistakesExitWithUsage() async throws {
        let unknown = try await run(["run", "leak-tst"])
        #expect(unknown.status == 64)
        #expect(unknown.stderr.contains("did you mean 'leak-test'"))
        let badParameter = try await run(["run", "leak-test", "--param", "hold=5kPa"])
        #expect(badParameter.status == 64)
        #expect(badParameter.stderr.contains("'hold'"))
        let malformed = try await run(["run", "leak-test", "--param", "hold"])
        #expect(malformed.status == 64)
    }

    @Test(arguments: [SIGINT, SIGTERM, SIGHUP])
    func aStopSignalDuringTheHoldAbortsAfterCleanup(signal: Int32) async throws {
        let reports = temporaryDirectory()
        let running = try Running(
            [
                "run", "leak-test", "--time-scale", "30", "--param", "hold=120s",
                "--param", "stabilise=30s", "--report-dir", reports,
            ], directory: temporaryDirectory())
        let journalPath = try await { () async throws -> String in
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                if let folder = try? runFolder(in: reports) { return folder + "/journal.jsonl" }
                try await Task.sleep(for: .milliseconds(20))
            }
            throw CLIError(message: "no run folder")
        }()
        _ = try await waitFor(journalPath) { sampleCount($0) >= 5 }
        running.signal(signal)
        try await Task.sleep(for: .milliseconds(100))
        running.signal(signal)  // A second signal must not skip cleanup.
        let status = try await running.wait()
        #expect(status == 3, "\(running.stdout)\(running.stderr)")
        let name = [SIGINT: "SIGINT", SIGTERM: "SIGTERM", SIGHUP: "SIGHUP"][signal] ?? "?"
        #expect(running.stderr.contains("\(name): stopping"))
        #expect(running.stdout.contains("VERDICT:  ABORTED"))
        let folder = try runFolder(in: reports)
        let record = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: folder + "/record.json"))) as? [String: Any])
        #expect(record["verdict"] as? String == "ABORTED")
        #expect(record["cleanup_completed"] as? Bool == true)
        let steps = try #require(record["steps"] as? [[String: Any]])
        #expect(steps.first { $0["name"] as? String == "Hold" }?["verdict"] as? String == "ABORTED")
        #expect(steps.filter { $0["group"] as? String == "cleanup" }.allSatisfy { $0["verdict"] as? String == "PASS" })
        let journal = try String(contentsOfFile: folder + "/journal.jsonl", encoding: .utf8)
        #expect(journal.contains("\"event\":\"cleanup_started\""))
    }

    @Test func killNineKeepsEverySampleTakenSoFar() async throws {
        let reports = temporaryDirectory()
        let running = try Running(
            [
                "run", "leak-test", "--time-scale", "30", "--param", "stabilise=30s",
                "--report-dir", reports,
            ], directory: temporaryDirectory())
        var folder = ""
        let deadline = Date().addingTimeInterval(30)
        while folder.isEmpty, Date() < deadline {
            folder = (try? runFolder(in: reports)) ?? ""
            try await Task.sleep(for: .milliseconds(20))
        }
        let seen = try await waitFor(folder + "/journal.jsonl") { sampleCount($0) >= 40 }
        running.signal(SIGKILL)
        _ = try await running.wait()
        #expect(running.process.terminationReason == .uncaughtSignal)
        let journal = try String(contentsOfFile: folder + "/journal.jsonl", encoding: .utf8)
        let lines = journal.split(separator: "\n")
        #expect(journal.hasSuffix("\n"), "no torn last line")
        var indices: [Int] = []
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            if object["event"] as? String == "sample", let index = object["index"] as? Int { indices.append(index) }
        }
        #expect(indices.count >= sampleCount(seen))
        #expect(indices == Array(0..<indices.count), "every sample, in order, none missing")
        #expect(!FileManager.default.fileExists(atPath: folder + "/record.json"))
    }

    @Test func validateReportsEveryMistakeWithPositions() async throws {
        let directory = temporaryDirectory()
        let path = directory + "/three-mistakes.yaml"
        try """
        id: three-mistakes
        title: Three mistakes
        version: 0.1.0
        rack: gb200-nvl72
        main:
          - set: cdu.pump_speed_setpoint
            value: [80 %
          - wait-until: cdu.loop_presure >= 300 kPa
            timeout: 2 min
          - check: cdu.loop_pressure > 45 °C
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await run(["validate", path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(path):7:12: error: YAML syntax"))
        #expect(result.stderr.contains("\(path):8:17: error: wait-until: unknown point 'cdu.loop_presure'"))
        #expect(result.stderr.contains("\(path):10:30: error: check: '>' cannot combine pressure with temperature"))
        #expect(result.stderr.contains("    ^"))
        let clean = try await run(["validate"])
        #expect(clean.status == 0, "\(clean.stderr)")
        #expect(clean.stdout.contains("leak-test.yaml: OK"))
    }

    @Test func listShowsProcedures() async throws {
        let result = try await run(["list"])
        #expect(result.status == 0)
        let line = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("leak-test") })
        #expect(
            line.contains("1.0.0") && line.contains("15 min") && line.contains("Cooling loop pressure-decay leak test"))
    }
}
