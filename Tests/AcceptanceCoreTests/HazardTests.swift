import Foundation
import Synchronization
import Testing

@testable import AcceptanceCore

/// Answers hazard confirmations from a script of operator ids, the way people at a terminal would type them.
final class BadgeReader: OperatorConsole {
    let answers: Mutex<[String]>
    let asked = Mutex<[(number: Int, problem: String?)]>([])

    init(_ answers: [String]) { self.answers = Mutex(answers) }

    var isInteractive: Bool { true }
    func confirm(_ text: String, step: Step) async throws -> Bool { true }
    func ask(_ text: String, input: String, pattern: String?, step: Step, problem: String?) async throws -> String {
        ""
    }
    func confirmHazard(
        _ hazard: String, step: Step, number: Int, required: Int, problem: String?
    ) async throws -> String {
        asked.withLock { $0.append((number, problem)) }
        guard let next = answers.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else {
            throw OperatorDeclined(step: step.name)
        }
        return next
    }
}

@Suite("Hazardous steps need identified operators")
struct HazardTests {
    static let procedure =
        ProcedureLoaderTests.header + """
            main:
              - set: dev.valve
                value: closed
                name: Shut the loop in
                hazard: traps the loop at pressure
                confirm_by: 2
              - wait: 1 s
            cleanup:
              - set: dev.valve
                value: open
            """

    /// Two different operators: the same badge twice is refused (and so is something that is not an id), the step
    /// waits until a second person confirms, and only then moves the rack. Who, when and what is in the record and
    /// the journal, before the write.
    @Test func twoOperatorsMustBeTwoPeople() async throws {
        let reports = NSTemporaryDirectory() + "acceptance-hazard-" + UUID().uuidString
        let folder = try RunFolder(reportsDirectory: reports, runID: "run")
        let badges = BadgeReader(["4711", " 4711 ", "?", "0815"])
        let (runner, device) = try SupervisorTests().makeRunner(
            Self.procedure, folder: folder, console: badges, configure: { _ in })
        let record = await runner.run()
        #expect(record.verdict == .pass, "\(record.message ?? "")")
        let hazard = try #require(record.steps.first { $0.name == "Shut the loop in" }?.hazard)
        #expect(hazard.hazard == "traps the loop at pressure" && hazard.required == 2)
        #expect(hazard.confirmations.map(\.operator) == ["4711", "0815"])
        #expect(hazard.confirmations.allSatisfy { $0.automatic == nil && !$0.at.isEmpty })
        #expect(hazard.refused?.count == 2)
        #expect(hazard.refused?.first?.contains("4711 has confirmed already") == true)
        let asked = badges.asked.withLock { $0 }
        #expect(asked.map(\.number) == [1, 2, 2, 2])
        #expect(asked[2].problem?.contains("a second, different operator") == true)
        #expect(device.writes.map(\.0) == ["valve", "valve"])
        let journal = try String(contentsOfFile: folder.file("journal.jsonl"), encoding: .utf8)
        let confirmed = try #require(journal.range(of: #""event":"hazard_confirmed""#))
        let actuated = try #require(journal.range(of: #""event":"actuated""#))
        #expect(confirmed.lowerBound < actuated.lowerBound, "confirmed before anything moved")
        #expect(journal.contains(#""operator":"0815""#))
    }

    /// `--yes` (no person at a terminal) on a real station: the hazard is not confirmed, the step does not move the
    /// rack, the run is an ERROR saying why.
    @Test func nobodyAtATerminalConfirmsNoHazard() async throws {
        let (runner, device) = try SupervisorTests().makeRunner(Self.procedure, configure: { _ in })
        let record = await runner.run()
        #expect(record.verdict == .error)
        let step = try #require(record.steps.first { $0.name == "Shut the loop in" })
        #expect(step.error?.contains("needs an identified operator at a terminal") == true, "\(step.error ?? "")")
        #expect(device.writes.isEmpty, "nothing moved, so nothing to clean up")
    }

    /// The simulated rack (nobody at a terminal) confirms a hazard itself, and the record says so and why.
    @Test func theSimulatedRackConfirmsAutomaticallyAndSaysSo() async throws {
        let (runner, _) = try SupervisorTests().makeRunner(
            Self.procedure, automaticHazards: "simulated rack", configure: { _ in })
        let record = await runner.run()
        #expect(record.verdict == .pass)
        let hazard = try #require(record.steps.first { $0.name == "Shut the loop in" }?.hazard)
        #expect(hazard.confirmations.count == 2 && hazard.confirmations.allSatisfy { $0.automatic == "simulated rack" })
        #expect(hazard.summary == "confirmed automatically (simulated rack)")
    }

    /// An operator who refuses the hazard stops the run before the step moves anything.
    @Test func refusingTheHazardAbortsBeforeAnythingMoves() async throws {
        let (runner, device) = try SupervisorTests().makeRunner(
            Self.procedure, console: BadgeReader(["4711"]), configure: { _ in })
        let record = await runner.run()
        #expect(record.verdict == .aborted)
        #expect(device.writes.isEmpty)
    }

    @Test(arguments: [
        ("cleanup:\n  - wait: 1 s\n    hazard: x", "a cleanup step cannot wait for a hazard confirmation"),
        ("main:\n  - wait: 1 s\n    confirm_by: 2", "'confirm_by' goes with 'hazard'"),
        ("main:\n  - wait: 1 s\n    hazard: x\n    confirm_by: 9", "confirm_by is how many different operators"),
        ("main:\n  - wait: 1 s\n    hazard: ' '", "'hazard' says what can go wrong"),
    ])
    func badHazardsAreErrorsAtTheirLine(yaml: String, message: String) throws {
        let bench = try TestBench(rack: SupervisorTests.interlock, device: SupervisorTests.safeState)
        #expect(throws: (any Error).self) { try bench.load(ProcedureLoaderTests.header + yaml) }
        do {
            _ = try bench.load(ProcedureLoaderTests.header + yaml)
        } catch {
            #expect("\(error)".contains(message), "\(error)")
            #expect("\(error)".contains("procedure.yaml:"), "names the file and line: \(error)")
        }
    }
}
