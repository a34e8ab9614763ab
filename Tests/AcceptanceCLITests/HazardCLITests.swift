import Foundation
import TestSupport
import Testing

/// Runs `acceptance` on a pseudo-terminal (Python's `pty`), typing `answers` as the prompts appear: each waits until
/// its text has been shown `occurrence` times.
func runAtTerminal(
    _ arguments: [String], answers: [(text: String, occurrence: Int, answer: String)],
    environment: [String: String] = [:]
) async throws -> (status: Int32, output: String) {
    let script = "\(repositoryRoot)/Tests/AcceptanceCLITests/Peers/drive_terminal.py"
    let plan = try JSONSerialization.data(withJSONObject: answers.map { [$0.text, $0.occurrence, $0.answer] as [Any] })
    var variables = ProcessInfo.processInfo.environment
    variables.merge(environment) { $1 }
    return try await runProgram(
        try program("python3"),
        [script, String(decoding: plan, as: UTF8.self), try binary()] + arguments,
        environment: variables, directory: repositoryRoot, seconds: 180)
}

@Suite("Hazardous steps at a real station", .serialized)
struct HazardCLITests {
    static let procedure = """
        id: hazard-check
        title: Two people before the loop is shut in
        version: 1.0.0
        rack: gb200-nvl72
        main:
          - prompt: Walk round the rack, then press Enter.
          - set: cdu.mode
            value: manual
            name: CDU to manual
            hazard: hands the loop to manual control; the next steps pressurise it
            confirm_by: 2
        cleanup:
          - set: cdu.mode
            value: automatic
        """

    /// `--yes` confirms the ordinary prompt, but on a station the hazard still stops and asks, on the terminal, for
    /// two different operators: the same badge twice is refused. Without a terminal the hazard cannot be confirmed at
    /// all, and nothing moves.
    @Test func yesStillAsksTwoDifferentOperators() async throws {
        let home = temporaryDirectory()
        let file = "\(home)/hazard-check.yaml"
        try Self.procedure.write(toFile: file, atomically: true, encoding: .utf8)
        let (simulator, port) = try await startSimulatorOnAnyPort(scale: "20")
        defer { simulator.signal(SIGTERM) }
        let station = try stationFile(port: port, automaticHazards: false)
        let state = ["ACCEPTANCE_STATE_DIR": "\(home)/state"]

        let unattended = try await run(
            ["run", file, "--station", station, "--yes", "--report-dir", "\(home)/unattended"], environment: state)
        #expect(unattended.status == 2, "\(unattended.stdout)")
        #expect(unattended.stdout.contains("needs an identified operator at a terminal"), "\(unattended.stdout)")
        let untouched = try await run(["read", "cdu.mode", "--station", station], environment: state)
        #expect(untouched.stdout.contains("cdu.mode = automatic"), "nothing moved: \(untouched.stdout)")

        let reports = "\(home)/reports"
        let (status, output) = try await runAtTerminal(
            ["run", file, "--station", station, "--yes", "--report-dir", reports],
            answers: [
                ("First operator: type your operator id", 1, "4711"),
                ("Operator 2 of 2: type your operator id", 1, "4711"),
                ("Operator 2 of 2: type your operator id", 2, "0815"),
            ],
            environment: state)
        #expect(status == 0, "\(output)")
        #expect(output.contains("HAZARD") && output.contains("hands the loop to manual control"))
        #expect(output.contains("operator 4711 has confirmed already: a second, different operator must confirm"))
        #expect(!output.contains("Walk round the rack, then press Enter.\r\n    Press Enter"), "--yes confirmed it")
        let record = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: try runFolder(in: reports) + "/record.json")))
                as? [String: Any])
        let steps = try #require(record["steps"] as? [[String: Any]])
        let hazard = try #require(steps.first { $0["name"] as? String == "CDU to manual" }?["hazard"] as? [String: Any])
        let confirmations = try #require(hazard["confirmations"] as? [[String: Any]])
        #expect(confirmations.compactMap { $0["operator"] as? String } == ["4711", "0815"])
        #expect(confirmations.allSatisfy { $0["automatic"] == nil && $0["at"] is String })
        #expect(steps.first { $0["kind"] as? String == "prompt" }?["confirmed_by"] as? String == "auto")
        simulator.signal(SIGINT)
        #expect(try await simulator.wait() == 0)
    }
}
