import AcceptanceCore
import Foundation
import ModbusCore
import Testing

@testable import Simulation

@Suite("CDU physics")
struct CDUModelTests {
    func quiet(_ configure: (inout CDUSettings) -> Void = { _ in }) -> CDUModel {
        var settings = CDUSettings()
        settings.pressureNoise = 0
        configure(&settings)
        return CDUModel(settings: settings)
    }

    func pressure(_ model: inout CDUModel, _ name: String = "loop_pressure") -> Double {
        model.reading(name)?.quantity?.value ?? .nan
    }

    func manual(_ model: inout CDUModel, speed: Double) throws {
        try model.command("mode", .text("manual"))
        try model.command("pump_speed_setpoint", .quantity(Quantity(speed, .percent)))
        try model.command("pump_enable", .bool(true))
        model.advance(by: 60)
    }

    @Test func pumpPressureGrowsWithSpeedSquared() throws {
        var slow = quiet()
        var fast = quiet()
        try manual(&slow, speed: 50)
        try manual(&fast, speed: 100)
        let slowHead = pressure(&slow, "supply_pressure") - 150
        let fastHead = pressure(&fast, "supply_pressure") - 150
        #expect(abs(fastHead - 400) < 1)
        #expect(abs(fastHead / slowHead - 4) < 0.05)
        #expect(pressure(&fast) > pressure(&slow))
        #expect((fast.reading("flow")?.quantity?.value ?? 0) > 100)
    }

    @Test func modeChangesAreReportedAfterADelay() throws {
        var model = quiet()
        try model.command("mode", .text("manual"))
        model.advance(by: 1)
        #expect(model.reading("mode_state") == .text("automatic"))
        model.advance(by: 1.5)
        #expect(model.reading("mode_state") == .text("manual"))
    }

    func isolate(_ model: inout CDUModel) throws {
        try manual(&model, speed: 90)
        try model.command("isolation_valve", .text("closed"))
        model.advance(by: 10)
        try model.command("pump_enable", .bool(false))
        model.advance(by: 120)
    }

    @Test func anIsolatedLoopHoldsPressureAndALeakBleedsIt() throws {
        var tight = quiet { $0.leakRate = 0.02 }
        try isolate(&tight)
        #expect(tight.reading("valve_closed") == .bool(true))
        let start = pressure(&tight)
        #expect(start > 300)
        tight.advance(by: 600)
        let tightDrop = start - pressure(&tight)
        #expect(tightDrop > 0 && tightDrop < 1, "nominal: \(tightDrop) kPa over 10 min")

        var leaky = quiet { $0.leakRate = 1.5 }
        try isolate(&leaky)
        let leakyStart = pressure(&leaky)
        leaky.advance(by: 600)
        let leakyDrop = leakyStart - pressure(&leaky)
        #expect(leakyDrop > 12 && leakyDrop < 18, "1.5 kPa/min leak: \(leakyDrop) kPa over 10 min")
        // With the valve reopened the loop rejoins the CDU side and the pressure recovers.
        try leaky.command("isolation_valve", .text("open"))
        try leaky.command("pump_enable", .bool(true))
        leaky.advance(by: 60)
        #expect(pressure(&leaky) > leakyStart)
    }

    @Test func thermalSettlingHappensRightAfterIsolation() throws {
        var model = quiet { $0.leakRate = 0 }
        try manual(&model, speed: 90)
        try model.command("isolation_valve", .text("closed"))
        model.advance(by: 5)
        let closed = pressure(&model)
        model.advance(by: 120)
        let settled = pressure(&model)
        model.advance(by: 600)
        #expect(closed - settled > 1.5, "most of the 2 kPa thermal drop is in the first two minutes")
        #expect(settled - pressure(&model) < 0.2)
    }

    @Test func aWeakPumpRaisesItsAlarmAfterRunning() throws {
        var model = quiet { $0.pumpHealth = 0.15 }
        try model.command("mode", .text("manual"))
        try model.command("pump_speed_setpoint", .quantity(Quantity(90, .percent)))
        try model.command("pump_enable", .bool(true))
        model.advance(by: 10)
        #expect(model.reading("pump_fault") == .bool(false))
        model.advance(by: 50)
        #expect(model.reading("pump_fault") == .bool(true))
        #expect(pressure(&model) < 200)
    }

    @Test func heatLoadRaisesTheReturnTemperature() {
        var model = quiet { $0.heatLoad = 100 }
        model.advance(by: 600)
        let supply = model.reading("supply_temperature")?.quantity?.value ?? 0
        let returned = model.reading("return_temperature")?.quantity?.value ?? 0
        // 100 kW into 72 L/min (60 % of 120) of water: ΔT = 100 / (1.2 kg/s × 4.186) ≈ 19.9 K.
        #expect(abs(returned - supply - 19.9) < 0.5)
    }

    @Test func rejectsValuesARealControllerRejects() {
        var model = quiet()
        #expect(throws: CDUCommandError.self) { try model.command("mode", .text("turbo")) }
        #expect(throws: CDUCommandError.self) {
            try model.command("pump_speed_setpoint", .quantity(Quantity(140, .percent)))
        }
        #expect(throws: CDUCommandError.self) {
            try model.command("loop_pressure", .quantity(Quantity(1, .kilopascal)))
        }
    }

    @Test func noiseIsRepeatableForASeed() {
        var a = CDUModel()
        var b = CDUModel()
        let first = (0..<20).map { _ in a.reading("loop_pressure")?.quantity?.value ?? 0 }
        let second = (0..<20).map { _ in b.reading("loop_pressure")?.quantity?.value ?? 0 }
        #expect(first == second)
        #expect(Set(first).count > 1, "readings carry sensor noise")
    }
}
