import Foundation
import Testing

@testable import AcceptanceCore

/// A run's record rebuilt from its journal after the station stopped (the journal cut where a `kill -9` would cut
/// it): what was measured is kept, the step it was in is ABORTED with its samples, the devices it moved are driven
/// to their safe state and read back.
@Suite("Recovery from the journal")
struct RecoveryReplayTests {
    static let procedure =
        ProcedureLoaderTests.header + """
            main:
              - set: dev.valve
                value: closed
              - measure: dev.pressure
                name: Pressure before
              - sample: [dev.pressure]
                every: 1 s
                for: 20 s
                name: Hold
              - wait: 1 s
                name: After the hold
            cleanup:
              - set: dev.valve
                value: open
            """

    /// Runs the procedure to its end with a journal, then keeps the journal's lines up to `cut` (and half of the next
    /// one, torn) in a new run folder: the folder a station killed at that line leaves.
    func crashedFolder(
        dynamic: @escaping @Sendable (String, Double) -> Value? = { _, _ in nil },
        cut: (String) -> Bool
    ) async throws -> String {
        let reports = NSTemporaryDirectory() + "acceptance-replay-" + UUID().uuidString
        let whole = try RunFolder(reportsDirectory: reports, runID: "whole")
        let (runner, _) = try SupervisorTests().makeRunner(
            Self.procedure, folder: whole, dynamic: dynamic, configure: { _ in })
        _ = await runner.run()
        let lines = try String(contentsOfFile: whole.file("journal.jsonl"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        let found = lines.firstIndex(where: cut)
        let end = try #require(found)
        let crashed = try RunFolder(reportsDirectory: reports, runID: "crashed")
        let torn = String(lines[end + 1].prefix(25))
        try (lines[...end].joined(separator: "\n") + "\n" + torn).write(
            toFile: crashed.file("journal.jsonl"), atomically: true, encoding: .utf8)
        return crashed.path
    }

    func recover(_ path: String) async throws -> (RunRecord, FakeDevice) {
        let replay = try JournalReplay.read(path: path + "/journal.jsonl")
        let (runner, device) = try SupervisorTests().makeRunner(
            Self.procedure, folder: try RunFolder(existing: path),
            configure: { device in
                // As the killed run left it.
                device.state.withLock { $0.values["valve"] = .text("closed") }
            })
        let safe = await runner.makeSafe(after: replay)
        return (runner.writeRecovered(replay, safe: safe, recoveredBy: "tester"), device)
    }

    @Test func aRunCutDuringTheHoldKeepsItsSamplesAndIsMadeSafe() async throws {
        let folder = try await crashedFolder { $0.contains(#""event":"sample""#) && $0.contains(#""index":6,"#) }
        let (record, device) = try await recover(folder)
        #expect(record.verdict == .aborted)
        #expect(record.message == "station stopped unexpectedly during 'Hold'")
        #expect(record.steps.map(\.verdict) == [.pass, .pass, .aborted, .skipped, .skipped])
        let before = try #require(record.steps.first { $0.name == "Pressure before" }?.measurements.first)
        #expect(before.value == 120 && before.unit == "kPa" && before.verdict == .pass)
        let hold = try #require(record.steps.first { $0.name == "Hold" })
        #expect(hold.series?.samples == 7 && hold.series?.intervalSeconds == 1)
        let csv = try String(contentsOfFile: folder + "/" + (hold.series?.file ?? ""), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 8 && csv.hasPrefix("t_s,dev.pressure [kPa]\n0,120\n1,120\n"))
        // The valve the run closed is driven open and read back; nothing else was moved.
        #expect(device.writes.map(\.0) == ["valve"] && device.writes.first?.1 == .text("open"))
        #expect(record.safeState?.verified == true && record.safeState?.devices.first?.outcome == .driven)
        #expect(record.recovery?.lastCommanded["dev"] == ["dev.valve ← closed"])
        #expect(record.warnings?.contains { $0.contains("1 journal line(s) could not be read") } == true)
        #expect(!record.cleanupCompleted)
        // The journal goes on where the run's stopped: the recovery and the end are in it.
        let journal = try String(contentsOfFile: folder + "/journal.jsonl", encoding: .utf8)
        #expect(journal.contains(#""event":"safe_state""#) && journal.hasSuffix("\n"))
        #expect(journal.contains(#""event":"run_finished","verdict":"ABORTED""#))
    }

    /// An interlock that had tripped before the station stopped still decides the verdict: the rack was unsafe.
    @Test func aTripBeforeTheStopMakesTheRecoveredRunFail() async throws {
        let folder = try await crashedFolder(
            dynamic: { point, time in point == "alarm" ? .bool(time >= 4.5) : nil },
            cut: { $0.contains(#""event":"interlock""#) })
        let (record, _) = try await recover(folder)
        #expect(record.verdict == .fail, "\(record.message ?? "")")
        #expect(record.message?.contains("interlock 'alarm' tripped") == true)
        #expect(record.interlocks?.first?.trip?.clockSeconds == 5)
    }
}
