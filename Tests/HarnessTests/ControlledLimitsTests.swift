import AcceptanceCore
import Foundation
import Harness
import Testing

@Suite("Controlled limits")
struct ControlledLimitsTests {
    @Test("Parameters used in limits (or marked limit: true) are limits; the rest are tunable")
    func limitsAreFoundInTheProcedure() throws {
        let (leak, _) = try ProcedureLoader(fixtures: "\(repositoryRoot)/Fixtures", protocols: Transports.protocols)
            .load(path: "\(repositoryRoot)/Procedures/leak-test.yaml")
        #expect(leak.limitParameters == ["test_pressure", "max_decay", "max_decay_rate", "max_gauge_disagreement"])
        let (busbar, _) = try ProcedureLoader(fixtures: "\(repositoryRoot)/Fixtures", protocols: Transports.protocols)
            .load(path: "\(repositoryRoot)/Procedures/busbar-voltage.yaml")
        #expect(busbar.limitParameters == ["busbar_low", "busbar_high", "max_shelf_disagreement"])
    }

    @Test("On the simulated rack a changed limit is allowed, and still recorded as a deviation")
    func simulatedDeviationIsRecorded() async throws {
        var request = RunRequest(
            procedure: "leak-test",
            workspace: Workspace(procedures: "\(repositoryRoot)/Procedures", fixtures: "\(repositoryRoot)/Fixtures"))
        request.parameters = ["max_decay": "10 kPa", "hold": "1 min"]
        request.reportsDirectory = temporaryDirectory()
        let prepared = try await PreparedRun.prepare(request)
        let record = await prepared.run(
            console: AutomaticOperator(), observer: SilentObserver(), stop: StopController())
        #expect(record.deviations?.map(\.parameter) == ["max_decay"], "hold is tunable: no deviation")
        #expect(record.deviations?.first?.reason == "simulated rack")
        #expect(
            record.warnings?.contains { $0.hasPrefix("DEVIATION from the procedure: max_decay 2 kPa → 10 kPa") } == true
        )
    }
}
