import AcceptanceCore
import InstrumentCore
import Testing

@testable import Simulation

@Suite("Simulated bench instruments")
struct SimulatedInstrumentTests {
    static func dmm(
        _ faults: InstrumentFaults = InstrumentFaults(), clock: SimulationClock
    ) throws -> SimulatedInstrument {
        try SimulatedInstrument(
            name: "dmm", kind: .dmm,
            identity: InstrumentIdentity(manufacturer: "Sim", model: "34465A", serial: "S1", firmware: "1"),
            unit: .volt, clock: clock, faults: faults, measure: { 49.9 })
    }

    @Test("Answers *IDN?, measurements in NR3, its error queue, and settings it accepts")
    func answers() async throws {
        let clock = SimulationClock()
        let dmm = try Self.dmm(clock: clock)
        #expect(dmm.handle("*IDN?") == "Sim,34465A,S1,1")
        #expect(dmm.handle("MEAS:VOLT:DC?") == "+4.99000000E+01")
        #expect(dmm.handle("VOLT:DC:NPLC 10") == nil)
        #expect(dmm.handle("VOLT:DC:NPLC?") == "10")
        #expect(dmm.handle("SYST:ERR?") == #"+0,"No error""#)
        #expect(dmm.handle("FREQ:APER 1") == nil)
        #expect(dmm.handle("SYST:ERR?") == #"-113,"Undefined header""#)
        #expect(dmm.handle("*CLS;*IDN?") == "Sim,34465A,S1,1")
        let answers = try await dmm.transact(
            [SCPIMessage("MEAS:VOLT:DC?"), SCPIMessage("SYST:ERR?")], timeout: .seconds(1))
        #expect(answers == ["+4.99000000E+01", #"+0,"No error""#])
    }

    @Test("Offset and drift are added on the run's clock")
    func offsetAndDrift() throws {
        var faults = InstrumentFaults()
        faults.offset = Quantity(-1, .volt)
        faults.drift = Quantity(0.5, try #require(PhysicalUnit.volt.per(.minute)))
        let clock = SimulationClock()
        let dmm = try Self.dmm(faults, clock: clock)
        #expect(dmm.handle("MEAS:VOLT:DC?") == "+4.89000000E+01")
        clock.advance(to: .seconds(120))
        #expect(dmm.handle("MEAS:VOLT:DC?") == "+4.99000000E+01")
    }

    @Test("A silent instrument costs its timeout on the simulated clock; an absent one is gone; an error is queued")
    func faults() async throws {
        var silent = InstrumentFaults()
        silent.silentAt = 60
        let clock = SimulationClock()
        let dmm = try Self.dmm(silent, clock: clock)
        #expect(try await dmm.transact([SCPIMessage("*IDN?")], timeout: .seconds(2)) == ["Sim,34465A,S1,1"])
        clock.advance(to: .seconds(60))
        do {
            _ = try await dmm.transact([SCPIMessage("MEAS:VOLT:DC?")], timeout: .seconds(2))
            Issue.record("a silent instrument answered")
        } catch {
            #expect(error.kind == .timeout && error.command == "MEAS:VOLT:DC?")
        }
        #expect(clock.now() >= .seconds(62))
        var absent = InstrumentFaults()
        absent.absent = true
        await #expect(throws: InstrumentError.self) {
            _ = try await Self.dmm(absent, clock: clock).transact([SCPIMessage("*IDN?")], timeout: .seconds(1))
        }
        var failing = InstrumentFaults()
        failing.errorAt = 0
        let erring = try Self.dmm(failing, clock: clock)
        _ = erring.handle("MEAS:VOLT:DC?")
        #expect(erring.handle("SYST:ERR?") == #"-222,"Data out of range""#)
    }

    @Test("The rack's bench: the DMM reads the busbar, which droops as trays power on; the gauge reads the true loop")
    func bench() throws {
        let rack = try makeRack()
        let dmm = try #require(rack.instruments["dmm"])
        let gauge = try #require(rack.instruments["gauge"])
        let idle = Double(dmm.handle("MEAS:VOLT:DC?") ?? "") ?? 0
        #expect(abs(idle - rack.redfish.model.busbarVoltage()) < 1e-6)
        #expect(idle > 49.9 && idle < 50.01)
        let pressure = Double(gauge.handle("MEAS:PRES?") ?? "") ?? 0
        #expect(abs(pressure - (rack.cdus["cdu"]?.snapshot().loopPressure ?? 0)) < 1e-6)
    }
}

func makeRack(_ scenario: Scenario = .nominal) throws -> SimulatedRack {
    let configuration = try RackConfiguration.load(
        rackID: "gb200-nvl72", fixtures: "\(repositoryRoot)/Fixtures", protocols: testProtocols)
    return try SimulatedRack(configuration: configuration, scenario: scenario, clock: SimulationClock())
}
