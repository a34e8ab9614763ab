import AcceptanceCore
import Foundation
import Harness
import Simulation
import TestSupport
import Testing

/// The safety supervisor on the simulated rack: interlocks watched apart from the steps, their reactions, and the
/// safe-state check that ends every run.
@Suite("Safety: interlocks and safe state on the simulated rack")
struct SafetyTests {
    /// Runs `procedure` on the simulated rack (memory or loopback) the way `acceptance run` does.
    static func run(
        _ procedure: String = "leak-test", scenario: String, parameters: [String: String] = [:],
        transport: SimulatorTransport = .memory
    ) async throws -> (RunRecord, PreparedRun) {
        var request = RunRequest(
            procedure: procedure,
            workspace: Workspace(procedures: "\(repositoryRoot)/Procedures", fixtures: "\(repositoryRoot)/Fixtures"))
        request.scenario = scenario
        request.parameters = parameters
        request.reportsDirectory = temporaryDirectory()
        request.simulatorTransport = transport
        let prepared = try await PreparedRun.prepare(request)
        let record = await loopbackRacks.withSlot {
            await prepared.run(console: AutomaticOperator(), observer: SilentObserver(), stop: StopController())
        }
        return (record, prepared)
    }

    /// compute07's cold plate goes Critical at 316 s, three minutes into the hold, while the step samples only the
    /// CDU: the supervisor trips within one poll, the reaction makes the rack safe, and the run FAILs naming both.
    @Test(arguments: [SimulatorTransport.memory, .tcp])
    func aTrayLeakDuringTheHoldTripsTheInterlockWithinOnePoll(_ transport: SimulatorTransport) async throws {
        let (record, prepared) = try await Self.run(scenario: "tray-leak-during-hold", transport: transport)
        #expect(record.verdict == .fail, "\(record.message ?? "")")
        let message = try #require(record.message)
        #expect(message.contains("interlock 'coldplate-leak'") && message.contains("compute07"), "\(message)")
        let trip = try #require(record.interlocks?.first { $0.name == "coldplate-leak" }?.trip)
        #expect(trip.cause == .condition)
        #expect(trip.culprits == ["compute07"])
        #expect(trip.readings == ["compute07.leak_health = Critical"])
        // Within one poll interval (3 s) of the leak, on the run's clock.
        #expect(trip.clockSeconds >= 316 && trip.clockSeconds <= 319, "tripped at \(trip.clockSeconds) s")
        // The hold was running: it stopped there, and its samples up to the trip are kept.
        let hold = try #require(record.steps.first { $0.name == "Hold" })
        #expect(hold.verdict == .aborted)
        // The reaction, every action of it, succeeded: pump off, valve open, 18 trays forced off.
        #expect(trip.reaction.allSatisfy { $0.succeeded }, "\(trip.reaction)")
        let firstActions = Array(trip.reaction.map(\.action).prefix(2))
        #expect(firstActions == ["cdu.pump_enable ← false", "cdu.isolation_valve ← open"])
        #expect(trip.reaction.filter { $0.action.hasSuffix(".reset ForceOff") }.count == 18)
        // Cleanup ran and the safe state was measured: the CDU and every tray the reaction moved.
        #expect(record.cleanupCompleted)
        let safe = try #require(record.safeState)
        #expect(safe.verified)
        #expect(safe.devices.map(\.device) == ["cdu"] + (1...18).map { String(format: "compute%02d", $0) })
        #expect(safe.devices.allSatisfy { $0.outcome == .verified }, "\(safe.devices)")
        // And the simulated rack itself says so.
        let rack = try #require(prepared.rack)
        let cdu = try #require(rack.cdus["cdu"])
        let snapshot = cdu.snapshot()
        #expect(!snapshot.pumpEnabled && snapshot.valvePosition > 0.99 && snapshot.reportedMode == "automatic")
        #expect(rack.redfish.model.powerState(of: "compute07") == .off)
        // The journal has the interlock event: which, what it read, when, what it did.
        let journal = try String(contentsOfFile: try #require(prepared.folder).file("journal.jsonl"), encoding: .utf8)
        let line = try #require(journal.split(separator: "\n").first { $0.contains("\"event\":\"interlock\"") })
        #expect(line.contains("\"interlock\":\"coldplate-leak\"") && line.contains("\"succeeded\":true"))
    }

    /// The safe state is checked at the end of every run that moved something, and recorded.
    @Test func aPassingRunEndsWithItsSafeStateMeasured() async throws {
        let (record, _) = try await Self.run(scenario: "nominal")
        #expect(record.verdict == .pass, "\(record.message ?? "")")
        let safe = try #require(record.safeState)
        #expect(safe.verified && safe.devices.map(\.device) == ["cdu"])
        #expect(safe.devices[0].readings.contains("cdu.valve_open = true"))
        // Every interlock of the rack was watched the whole run, at its own rate.
        let interlocks = try #require(record.interlocks)
        #expect(Set(interlocks.map(\.name)) == ["coldplate-leak", "cdu-leak", "loop-overpressure"])
        for interlock in interlocks {
            let polls = try #require(interlock.polls)
            let due = record.clock.elapsedSeconds / (interlock.pollSeconds ?? 1)
            // A poll can only be late (merged with the next) when the machine is so busy that the observer's read
            // takes more than the clock's grace (250 ms of real time): allow a few on a loaded CI machine.
            #expect(Double(polls) >= due * 0.9, "\(interlock.name): \(polls) polls, \(Int(due)) due")
        }
    }

    /// A CDU that stops answering mid-hold: the cdu-leak interlock has lost its sensor. That is a trip of its own
    /// (ERROR), within its staleness bound of the last good reading, never "all clear".
    @Test func aSilentInterlockSensorTripsWithinItsStalenessBound() async throws {
        let (record, _) = try await Self.run(scenario: "cdu-silent")
        #expect(record.verdict == .error, "\(record.message ?? "")")
        let trips = (record.interlocks ?? []).compactMap(\.trip)
        let trip = try #require(trips.first { $0.interlock == "cdu-leak" })
        #expect(trip.cause == .stale)
        // Silent from 360 s with a 5 s bound. On simulated time run as fast as possible no timer cuts a read short
        // (it would jump time): the trip is judged when the failing read's own simulated timeouts end, so within
        // the bound plus one read's retries (the exact bound is shown on a paced clock: SupervisorTests).
        #expect(trip.clockSeconds >= 365 && trip.clockSeconds <= 380, "tripped at \(trip.clockSeconds) s")
        // The CDU cannot be read back: the record says the rack is not shown safe, in so many words.
        let safe = try #require(record.safeState)
        #expect(!safe.verified)
        #expect(safe.summary.contains("NOT in its safe state"))
    }
}
