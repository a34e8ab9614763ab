import AcceptanceCore
import Foundation
import ModbusCore
import Testing

@testable import Simulation

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

@Suite("Simulated CDU over its register map")
struct SimulatedCDUTests {
    let configuration: RackConfiguration
    let profile: DeviceProfile

    init() throws {
        configuration = try RackConfiguration.load(
            rackID: "gb200-nvl72", fixtures: "\(repositoryRoot)/Fixtures", protocols: testProtocols)
        profile = try #require(configuration.profiles["reference-cdu"])
    }

    func makeCDU(_ scenario: Scenario = .nominal, clock: SimulationClock = SimulationClock()) -> SimulatedCDU {
        var quiet = scenario
        quiet.cdu.pressureNoise = 0
        return SimulatedCDU(name: "cdu", profile: profile, scenario: quiet, clock: clock)
    }

    @Test func servesEveryProfilePoint() {
        #expect(makeCDU().unsimulatedPoints.isEmpty)
    }

    @Test func registersHoldTheScaledValues() async throws {
        let cdu = makeCDU()
        let loop = try #require(profile.point(named: "loop_pressure")?.modbus)
        let raw = try await cdu.readInputRegisters(startingAt: loop.address, count: 1)
        let expected = cdu.snapshot().loopPressure
        #expect(abs(Double(Int16(bitPattern: raw[0])) / 10 - expected) <= 0.05)
        let mode = try await cdu.readHoldingRegisters(startingAt: 0, count: 1)
        #expect(mode == [0], "automatic is raw 0")
    }

    @Test func writesThroughTheRegisterMapCommandThePhysics() async throws {
        let clock = SimulationClock()
        let cdu = makeCDU(clock: clock)
        try await cdu.writeRegisters(startingAt: 0, values: [1])  // mode = manual
        try await cdu.writeRegisters(startingAt: 1, values: [900])  // 90.0 %
        try await cdu.writeCoils(startingAt: 0, values: [true])  // pump on
        clock.advance(to: .seconds(30))
        let state = cdu.snapshot()
        #expect(state.reportedMode == "manual")
        #expect(abs(state.pumpSpeed - 90) < 0.01)
    }

    @Test func answersExceptionsLikeARealDevice() async {
        let cdu = makeCDU()
        await #expect(throws: ModbusError.self) { try await cdu.readInputRegisters(startingAt: 9, count: 1) }
        do {
            _ = try await cdu.readInputRegisters(startingAt: 100, count: 2)
        } catch {
            #expect(error.kind == .exception(.illegalDataAddress))
        }
        do {
            try await cdu.writeRegisters(startingAt: 0, values: [9])  // mode 9 is not a state
        } catch {
            #expect(error.kind == .exception(.illegalDataValue))
        }
        do {
            try await cdu.writeRegisters(startingAt: 1, values: [2000])  // 200 % is out of range
        } catch {
            #expect(error.kind == .exception(.illegalDataValue))
        }
    }

    @Test func aSilentDeviceTimesOutAtTheScheduledTime() async throws {
        let clock = SimulationClock()
        let scenario = Scenario(name: "s", faults: [ScheduledFault(at: 60, device: "cdu", kind: .silent)])
        let cdu = makeCDU(scenario, clock: clock)
        _ = try await cdu.readInputRegisters(startingAt: 0, count: 3)
        clock.advance(to: .seconds(61))
        do {
            _ = try await cdu.readInputRegisters(startingAt: 0, count: 3)
            Issue.record("a silent device answered")
        } catch {
            #expect(error.kind == .timeout)
            #expect(error.description.contains("no response to read input registers (0x04) at address 0"))
        }
        #expect(clock.now() == .seconds(62), "the client waited out its response timeout")
    }

    @Test func scheduledFaultsApplyAtTheirSimulatedTime() throws {
        let clock = SimulationClock()
        let scenario = Scenario(name: "s", faults: [ScheduledFault(at: 120, device: "cdu", kind: .leakSensor)])
        let cdu = makeCDU(scenario, clock: clock)
        clock.advance(to: .seconds(119))
        #expect(!cdu.snapshot().leakDetected)
        clock.advance(to: .seconds(121))
        #expect(cdu.snapshot().leakDetected)
    }

    @Test func everyShippedScenarioLoads() throws {
        let names = Scenario.available(in: "\(repositoryRoot)/Fixtures/scenarios")
        #expect(Set(["nominal", "loop-leak", "pump-failure", "cdu-silent"]).isSubset(of: Set(names)))
        for name in names {
            let scenario = try Scenario.load(named: name, in: "\(repositoryRoot)/Fixtures/scenarios")
            #expect(scenario.inputs["rack_serial"] != nil, "\(name) supplies a simulated serial")
        }
        let leak = try Scenario.load(named: "loop-leak", in: "\(repositoryRoot)/Fixtures/scenarios")
        #expect(leak.cdu.leakRate == 1.5)
        let silent = try Scenario.load(named: "cdu-silent", in: "\(repositoryRoot)/Fixtures/scenarios")
        #expect(silent.faults == [ScheduledFault(at: 360, device: "cdu", kind: .silent)])
    }

    @Test func badScenariosAreReportedWithPositions() throws {
        let path = NSTemporaryDirectory() + "scenario-\(UUID().uuidString).yaml"
        try """
        name: bad
        cdu:
          leak_rate: 3 °C
          pump_hed: 100 kPa
        faults:
          - {at: 5 min, fault: explode}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try Scenario.load(path: path)
            Issue.record("a bad scenario loaded")
        } catch {
            let text = error.description
            #expect(text.contains(":3:14: error: leak_rate: cannot convert temperature"))
            #expect(text.contains(":4:3: error: unknown key 'pump_hed'"))
            #expect(text.contains("unknown fault 'explode'"))
        }
        #expect(throws: DiagnosticsError.self) {
            try Scenario.load(named: "no-such", in: "\(repositoryRoot)/Fixtures/scenarios")
        }
    }
}
