import Foundation
import Testing

@testable import AcceptanceCore

/// The safety supervisor against fake devices on the simulated clock: its polls keep their own rate whatever the
/// steps do, and a sensor that goes quiet trips within its staleness bound.
@Suite("Safety supervisor")
struct SupervisorTests {
    static let interlock = """
        interlocks:
          alarm:
            description: The test rig's alarm
            trip_if: dev.alarm
            poll: 1 s
            stale_after: 3 s
            reaction:
              - {set: dev.valve, value: open}
        """
    static let safeState = """
        safe_state:
          drive:
            - {set: valve, value: open}
          check: valve == open
          settle: 5 s
        """

    func makeRunner(
        _ yaml: String, timeScale: Double? = nil, folder: RunFolder? = nil,
        console: any OperatorConsole = AutomaticOperator(), automaticHazards: String? = nil,
        dynamic: @escaping @Sendable (String, Double) -> Value? = { _, _ in nil },
        configure: (FakeDevice) -> Void
    ) throws -> (Runner, FakeDevice) {
        let bench = try TestBench(rack: Self.interlock, device: Self.safeState)
        let (procedure, configuration) = try bench.load(yaml)
        let clock = SimulationClock(originDate: Date(timeIntervalSince1970: 1_800_000_000), timeScale: timeScale)
        let device = FakeDevice(
            clock: clock,
            values: [
                "pressure": .quantity(Quantity(120, .kilopascal)), "valve": .text("open"), "alarm": .bool(false),
                "count": .number(1),
            ], dynamic: dynamic)
        configure(device)
        var settings = RunSettings(
            runID: "test-run", procedure: procedure, parameters: try procedure.resolveParameters([:]), station: "test")
        settings.interlocks = configuration.interlocks
        settings.automaticHazards = automaticHazards
        let runner = Runner(
            settings: settings, bus: DeviceBus(configuration: configuration, devices: ["dev": device]), clock: clock,
            console: console, folder: folder)
        return (runner, device)
    }

    /// A step blocked 10 s on a slow answer does not hold the supervisor up: its polls of the alarm go on every second
    /// of the run's clock through those 10 s.
    @Test func aSlowStepDoesNotDelayAPoll() async throws {
        let yaml =
            ProcedureLoaderTests.header + """
                main:
                  - set: dev.valve
                    value: closed
                  - check: dev.count >= 0
                    name: Slow device
                  - wait: 5 s
                cleanup:
                  - set: dev.valve
                    value: open
                """
        let (runner, device) = try makeRunner(yaml) { $0.state.withLock { $0.slow["count"] = .seconds(10) } }
        let record = await runner.run()
        #expect(record.verdict == .pass, "\(record.message ?? "")")
        let log = device.state.withLock { $0.readLog }
        let slowStart = try #require(log.first { $0.point == "count" }?.time)
        let polls = log.filter { $0.point == "alarm" }.map(\.time)
        // Every second of the slow answer has its poll, on time.
        let during = polls.filter { $0 >= slowStart && $0 <= slowStart + 10 }
        #expect(during == (0...10).map { slowStart + Double($0) }, "polls during the slow read: \(during)")
        #expect(record.interlocks?.first?.polls == polls.count)
    }

    /// The alarm's device goes quiet at 20 s (its transport would wait 60 s): losing the sensor is a trip of its own
    /// within the 3 s staleness bound, with the reaction run and the verdict ERROR, never a quiet PASS.
    @Test func aQuietSensorTripsWithinItsStalenessBound() async throws {
        let yaml =
            ProcedureLoaderTests.header + """
                main:
                  - set: dev.valve
                    value: closed
                  - wait: 2 min
                cleanup:
                  - set: dev.valve
                    value: open
                """
        // Paced (4× real time), so time passes by itself and the bound cuts the read short, as on a station.
        let (runner, device) = try makeRunner(yaml, timeScale: 4) {
            $0.state.withLock { $0.silentFrom = (20, ["alarm"]) }
        }
        let record = await runner.run()
        #expect(record.verdict == .error, "\(record.message ?? "")")
        let trip = try #require(record.interlocks?.first?.trip)
        #expect(trip.cause == .stale)
        // Quiet from 20 s, bound 3 s after the last good poll (19 s, or earlier if a busy machine delayed polls): the
        // trip is due by 22 s, not when the 60 s transport timeout ends at 80 s. Paced time moves in slices of 50 ms
        // of real time (0.2 simulated seconds each); a machine busy with the rest of the suite can hold the supervisor
        // up for a while longer (at 50× the staleness bound was 60 ms of wall time and the window below 0.8 s; at 4×
        // 0.75 s and 10 s): anything well before 80 s shows the bound, not the transport, ended the read.
        #expect(trip.clockSeconds >= 20 && trip.clockSeconds < 60, "tripped at \(trip.clockSeconds) s")
        #expect(trip.reaction.map(\.action) == ["dev.valve ← open"] && trip.reaction.allSatisfy { $0.succeeded })
        #expect(record.message?.contains("interlock 'alarm' lost its sensor") == true)
        #expect(device.writes.contains { $0.0 == "valve" && $0.1 == .text("open") })
        // The wait was stopped by the trip, and cleanup ran.
        #expect(record.steps.first { $0.kind == "wait" }?.verdict == .aborted)
        #expect(record.safeState?.verified == true)
    }

    /// The condition itself: an alarm that comes on at 30.5 s trips at the next poll (31 s), the run FAILs naming
    /// the interlock, and the safe state is read back at the end.
    @Test func anAlarmTripsAtTheNextPollAndFails() async throws {
        let yaml =
            ProcedureLoaderTests.header + """
                main:
                  - set: dev.valve
                    value: closed
                  - wait: 1 min
                cleanup:
                  - check: dev.valve == open
                """
        let (runner, device) = try makeRunner(
            yaml, dynamic: { point, time in point == "alarm" ? .bool(time >= 30.5) : nil }, configure: { _ in })
        let record = await runner.run()
        #expect(record.verdict == .fail, "\(record.message ?? "")")
        let trip = try #require(record.interlocks?.first?.trip)
        #expect(trip.cause == .condition && trip.clockSeconds == 31, "tripped at \(trip.clockSeconds) s")
        #expect(trip.readings == ["dev.alarm = true"])
        #expect(record.message?.hasPrefix("interlock 'alarm' tripped (The test rig's alarm)") == true)
        // The reaction opened the valve (cleanup only checks it): the safe state is verified as it was left.
        #expect(device.writes.map(\.0) == ["valve", "valve"])
        #expect(record.safeState?.devices.first?.outcome == .verified)
    }
}
