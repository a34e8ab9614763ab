import AcceptanceCore
import Foundation
import ModbusCore

/// Physical settings of a simulated CDU and its rack loop. Every value is in SI-ish engineering units
/// (kPa gauge, L/min, °C, kW, seconds) and can be set by a scenario.
public struct CDUSettings: Sendable, Hashable {
    /// Expansion-tank pre-charge: the loop pressure with the pump stopped (kPa).
    public var fillPressure = 150.0
    /// Pressure the pump adds at 100 % speed into a closed loop (kPa); scales with speed squared.
    public var pumpHead = 400.0
    /// Fraction of the head the pump can actually make (1 healthy; a worn or air-locked pump is lower).
    public var pumpHealth = 1.0
    /// Loop flow at 100 % speed with the valve open (L/min).
    public var maxFlow = 120.0
    /// Pump speed change per second (%/s).
    public var pumpRamp = 25.0
    /// Time constant of loop pressure following the pump (s).
    public var pressureTimeConstant = 3.0
    /// Isolation valve full travel (s).
    public var valveTravel = 5.0
    /// Leak at 300 kPa, as pressure loss of the isolated loop (kPa/min); grows with √pressure.
    public var leakRate = 0.02
    /// Pressure lost to thermal contraction right after isolation (kPa), and how fast it settles (s).
    public var thermalDrop = 2.0
    public var thermalTimeConstant = 45.0
    /// Heat the rack puts into the coolant (kW).
    public var heatLoad = 0.0
    /// Facility water temperature the CDU holds the supply at (°C).
    public var facilitySupplyTemperature = 30.0
    /// Pump speed in automatic mode (%).
    public var automaticSpeed = 60.0
    /// Seconds a mode change takes to be reported as done.
    public var modeChangeDelay = 2.0
    /// Pressure sensor noise, standard deviation (kPa).
    public var pressureNoise = 0.03
    /// The CDU's own loop-pressure transducer: a fixed error (kPa) and a drift (kPa/min of running time). The true
    /// pressure (what a reference gauge reads) is unaffected.
    public var pressureOffset = 0.0
    public var pressureDrift = 0.0
    public var seed: UInt64 = 1

    public init() {}
}

/// The CDU's physics: pump, isolation valve, rack loop pressure and leak, temperatures, alarms.
///
/// Integrated with a fixed step by `advance(by:)`. The model knows points by their standard names
/// (`loop_pressure`, `mode`, ...), and a device profile maps those names onto a vendor's registers.
public struct CDUModel: SimulatedPhysics {
    public var settings: CDUSettings
    public private(set) var time = 0.0

    // Commands (what the holding registers and coils say).
    public var mode = "automatic"
    public var pumpEnabled = false
    public var speedSetpoint = 50.0
    public var valveCommandOpen = true
    public var supplyTemperatureSetpoint = 30.0

    // State.
    public private(set) var reportedMode = "automatic"
    private var modeChangedAt = 0.0
    public private(set) var pumpSpeed = 0.0
    /// 0 closed ... 1 open.
    public private(set) var valvePosition = 1.0
    public private(set) var loopPressure: Double
    public private(set) var pumpPressure: Double
    public private(set) var flow = 0.0
    public private(set) var supplyTemperature: Double
    public private(set) var returnTemperature: Double
    public private(set) var runSeconds = 0.0
    private var isolatedFor = 0.0
    public var leakDetected = false
    public var pumpFault = false
    private var lowFlowFor = 0.0
    private var weakPumpFor = 0.0
    private var random: SplitMix64

    public init(settings: CDUSettings = CDUSettings()) {
        self.settings = settings
        loopPressure = settings.fillPressure
        pumpPressure = settings.fillPressure
        supplyTemperature = settings.facilitySupplyTemperature
        returnTemperature = settings.facilitySupplyTemperature
        supplyTemperatureSetpoint = settings.facilitySupplyTemperature
        random = SplitMix64(seed: settings.seed)
        // A CDU found in automatic mode is already circulating.
        pumpSpeed = settings.automaticSpeed
        settle()
    }

    /// Starts at the steady state of the current commands.
    private mutating func settle() {
        let head = settings.pumpHead * settings.pumpHealth * pow(pumpSpeed / 100, 2)
        pumpPressure = settings.fillPressure + head
        loopPressure = settings.fillPressure + head * 0.55
        flow = settings.maxFlow * pumpSpeed / 100 * sqrt(max(settings.pumpHealth, 0))
    }

    var targetSpeed: Double {
        switch reportedMode {
        case "automatic": settings.automaticSpeed
        case "manual": pumpEnabled ? min(max(speedSetpoint, 0), 100) : 0
        default: 0
        }
    }

    var valveTargetOpen: Bool { reportedMode == "manual" ? valveCommandOpen : true }

    public var lowFlowAlarm: Bool { lowFlowFor >= 10 }

    /// Integrates the physics forward by `seconds` in fixed steps.
    public mutating func advance(by seconds: Double) {
        guard seconds > 0 else { return }
        let step = 0.1
        var remaining = seconds
        while remaining > 1e-12 {
            let dt = min(step, remaining)
            integrate(dt)
            remaining -= dt
        }
    }

    private mutating func integrate(_ dt: Double) {
        time += dt
        if reportedMode != mode, time - modeChangedAt >= settings.modeChangeDelay { reportedMode = mode }

        // Pump speed ramps toward its target.
        let target = targetSpeed
        let maxChange = settings.pumpRamp * dt
        pumpSpeed += min(max(target - pumpSpeed, -maxChange), maxChange)
        if pumpSpeed > 0.5 { runSeconds += dt }

        // Valve travels at a constant rate.
        let valveStep = dt / settings.valveTravel
        valvePosition = valveTargetOpen ? min(1, valvePosition + valveStep) : max(0, valvePosition - valveStep)

        // Pump discharge pressure: fill pressure plus head, speed squared, scaled by pump health.
        let head = settings.pumpHead * settings.pumpHealth * pow(pumpSpeed / 100, 2)
        let pumpTarget = settings.fillPressure + head
        pumpPressure += (pumpTarget - pumpPressure) * min(1, dt / settings.pressureTimeConstant)

        if valvePosition > 0 {
            // Connected: the loop follows the pump side; with flow, the loop sits between supply and return.
            isolatedFor = 0
            // Connected: the loop sits between pump discharge and return, about 55 % of the head above fill.
            let loopTarget = settings.fillPressure + (pumpPressure - settings.fillPressure) * 0.55
            let tau = settings.pressureTimeConstant / max(valvePosition, 0.05)
            loopPressure += (loopTarget - loopPressure) * min(1, dt / tau)
            flow = settings.maxFlow * pumpSpeed / 100 * valvePosition * sqrt(max(settings.pumpHealth, 0))
        } else {
            // Isolated: the loop holds its pressure, less the leak and the thermal settling after isolation.
            isolatedFor += dt
            let gauge = max(loopPressure, 0)
            let leak = settings.leakRate / 60 * sqrt(gauge / 300)
            let thermal =
                settings.thermalDrop / settings.thermalTimeConstant
                * exp(-isolatedFor / settings.thermalTimeConstant)
            loopPressure = max(0, loopPressure - (leak + thermal) * dt)
            flow = 0
        }

        // Temperatures: the supply follows the facility; the return carries the rack's heat.
        supplyTemperature += (supplyTemperatureSetpoint - supplyTemperature) * min(1, dt / 60)
        let massFlow = flow / 60  // kg/s of water
        let rise = massFlow > 0.05 ? settings.heatLoad / (massFlow * 4.186) : settings.heatLoad > 0 ? 15 : 0
        returnTemperature += (supplyTemperature + min(rise, 40) - returnTemperature) * min(1, dt / 30)

        lowFlowFor = reportedMode == "automatic" && flow < 20 ? lowFlowFor + dt : 0

        // The controller flags a pump that runs without building pressure (dry run, air lock) after 20 s.
        let expected = settings.pumpHead * pow(pumpSpeed / 100, 2)
        let weak = pumpSpeed > 20 && pumpPressure - settings.fillPressure < 0.5 * expected
        weakPumpFor = weak ? weakPumpFor + dt : 0
        if weakPumpFor >= 20 { pumpFault = true }
    }

    /// Sets a command as a register write would. Throws a Modbus "illegal data value" for values a real CDU rejects.
    public mutating func command(_ name: String, _ value: Value) throws(CDUCommandError) {
        switch (name, value) {
        case let ("mode", .text(text)):
            guard ["automatic", "manual", "standby"].contains(text) else { throw CDUCommandError(name: name) }
            if text != mode { modeChangedAt = time }
            mode = text
        case let ("pump_enable", .bool(on)): pumpEnabled = on
        case let ("pump_speed_setpoint", .quantity(quantity)):
            guard let percent = try? quantity.converted(to: .percent).value, (0...100).contains(percent) else {
                throw CDUCommandError(name: name)
            }
            speedSetpoint = percent
        case let ("isolation_valve", .text(state)):
            guard state == "open" || state == "closed" else { throw CDUCommandError(name: name) }
            valveCommandOpen = state == "open"
        case let ("isolation_valve", .bool(open)): valveCommandOpen = open
        case let ("supply_temperature_setpoint", .quantity(quantity)):
            guard let celsius = try? quantity.converted(to: .celsius).value, (15...45).contains(celsius) else {
                throw CDUCommandError(name: name)
            }
            supplyTemperatureSetpoint = celsius
        default:
            throw CDUCommandError(name: name)
        }
    }

    /// The value of a standard point, or nil if the model has no such point.
    public mutating func reading(_ name: String) -> Value? {
        switch name {
        case "loop_pressure":
            .quantity(
                Quantity(
                    loopPressure + settings.pressureOffset + settings.pressureDrift * time / 60 + noise(), .kilopascal))
        case "supply_pressure": .quantity(Quantity(pumpPressure + noise(), .kilopascal))
        case "return_pressure":
            .quantity(
                Quantity(
                    (valvePosition > 0
                        ? settings.fillPressure + (pumpPressure - settings.fillPressure) * 0.1
                        : settings.fillPressure) + noise(), .kilopascal))
        case "supply_temperature": .quantity(Quantity(supplyTemperature, .celsius))
        case "return_temperature": .quantity(Quantity(returnTemperature, .celsius))
        case "flow": .quantity(Quantity(flow, .litersPerMinute))
        case "pump_speed": .quantity(Quantity(pumpSpeed, .percent))
        case "pump_power": .quantity(Quantity(1500 * pow(pumpSpeed / 100, 3) * (pumpFault ? 0.4 : 1), .watt))
        case "pump_run_hours": .quantity(Quantity(runSeconds / 3600, .hour))
        case "heartbeat": .number(Double(Int(time) % 65536))
        case "mode": .text(mode)
        case "mode_state": .text(reportedMode)
        case "pump_enable": .bool(pumpEnabled)
        case "pump_speed_setpoint": .quantity(Quantity(speedSetpoint, .percent))
        case "supply_temperature_setpoint": .quantity(Quantity(supplyTemperatureSetpoint, .celsius))
        case "isolation_valve": .text(valveCommandOpen ? "open" : "closed")
        case "valve_open": .bool(valvePosition >= 0.999)
        case "valve_closed": .bool(valvePosition <= 0.001)
        case "leak_detected": .bool(leakDetected)
        case "pump_fault": .bool(pumpFault)
        case "low_flow_alarm": .bool(lowFlowAlarm)
        default: nil
        }
    }

    private mutating func noise() -> Double {
        guard settings.pressureNoise > 0 else { return 0 }
        // Box-Muller from a seeded generator: the same scenario gives the same readings.
        let u1 = max(random.nextUnit(), 1e-12)
        let u2 = random.nextUnit()
        return settings.pressureNoise * sqrt(-2 * log(u1)) * cos(2 * .pi * u2)
    }
}

extension CDUModel {
    public mutating func apply(_ fault: ScheduledFault.Kind) {
        switch fault {
        case let .leak(rate): settings.leakRate = rate
        case .leakSensor: leakDetected = true
        // The alarm follows once the controller notices the pump is not building pressure.
        case let .pumpFailure(health): settings.pumpHealth = health
        default: break
        }
    }
}

/// A write the simulated controller rejects (answered with "illegal data value").
public struct CDUCommandError: Error, Sendable {
    public var name: String
}

/// A small, fast, seeded generator, so simulated noise is repeatable.
struct SplitMix64: Sendable {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
