import AcceptanceCore
import ModbusCore
import Synchronization

/// A power shelf's settings: the load it carries and the supplies' ratings.
public struct PowerShelfSettings: Sendable, Hashable {
    /// DC load the rack draws from this shelf (W).
    public var load = 18_000.0
    /// AC input voltage (V) and frequency (Hz).
    public var inputVoltage = 230.0
    public var inputFrequency = 50.0
    /// Regulated output voltage at no load (V); droops slightly with current for load sharing.
    public var outputVoltage = 50.0
    /// Rated output power of each supply (W).
    public var capacity = 5_500.0
    public var efficiency = 0.975

    public init() {}
}

/// One shelf of supplies sharing a DC load. A supply that fails or loses its input drops out of the sharing and the
/// others carry its part; past their combined rating the bus voltage sags.
public final class PowerShelf: Sendable {
    struct State {
        var settings: PowerShelfSettings
        var failed: Set<Int> = []
        var inputLost: Set<Int> = []
        var disabled: Set<Int> = []
        /// Scheduled supply faults, soonest first: (simulated seconds, supply index, fault).
        var faults: [(at: Double, index: Int, kind: ScheduledFault.Kind)] = []
    }

    public let count: Int
    private let state: Mutex<State>
    private let clock: (any RunClock)?

    /// A shelf whose supply faults fire at their simulated times, whichever supply is read: the load they shift
    /// lands on every other supply at once.
    public init(
        count: Int = 6, settings: PowerShelfSettings = PowerShelfSettings(),
        faults: [(at: Double, index: Int, kind: ScheduledFault.Kind)] = [], clock: (any RunClock)? = nil
    ) {
        self.count = count
        self.clock = clock
        state = Mutex(State(settings: settings, faults: faults.sorted { $0.at < $1.at }))
    }

    private func applyDueFaults(_ state: inout State) {
        guard let now = clock?.now().seconds else { return }
        while let fault = state.faults.first, fault.at <= now {
            state.faults.removeFirst()
            switch fault.kind {
            case .supplyFailure: state.failed.insert(fault.index)
            case .inputLoss: state.inputLost.insert(fault.index)
            default: break
            }
        }
    }

    func isActive(_ index: Int, _ state: State) -> Bool {
        !state.failed.contains(index) && !state.inputLost.contains(index) && !state.disabled.contains(index)
    }

    func fail(_ index: Int) { state.withLock { _ = $0.failed.insert(index) } }
    func loseInput(_ index: Int) { state.withLock { _ = $0.inputLost.insert(index) } }
    func enable(_ index: Int, _ on: Bool) {
        state.withLock { state in
            if on { state.disabled.remove(index) } else { state.disabled.insert(index) }
        }
    }

    /// The value of a standard PSU point for supply `index` (0-based).
    func reading(_ index: Int, _ name: String) -> Value? {
        state.withLock { state in
            applyDueFaults(&state)
            let settings = state.settings
            let active = (0..<count).filter { self.isActive($0, state) }
            let on = active.contains(index)
            let share = active.isEmpty ? 0 : settings.load / Double(active.count)
            let power = on ? min(share, settings.capacity) : 0
            let overloaded = !active.isEmpty && share > settings.capacity
            let droop = 0.00002 * power
            let voltage =
                on
                ? (overloaded ? settings.outputVoltage * settings.capacity / share : settings.outputVoltage - droop) : 0
            let hasInput = !state.inputLost.contains(index)
            let inputPower = hasInput ? power / settings.efficiency + 15 : 0
            let temperature = 30 + 25 * power / settings.capacity
            switch name {
            case "model": return .text("ORV3-PSU-5K5-SIM")
            case "serial_number": return .text("SIMPSU-\(String(index + 1).leftPaddedForSerial())")
            case "firmware_version": return .text("3.2.1")
            case "rated_power": return .quantity(Quantity(settings.capacity, .watt))
            case "input_voltage": return .quantity(Quantity(hasInput ? settings.inputVoltage : 0, .volt))
            case "input_frequency": return .quantity(Quantity(hasInput ? settings.inputFrequency : 0, .hertz))
            case "input_power": return .quantity(Quantity(inputPower, .watt))
            case "input_current": return .quantity(Quantity(hasInput ? inputPower / settings.inputVoltage : 0, .ampere))
            case "output_voltage": return .quantity(Quantity(voltage, .volt))
            case "output_current": return .quantity(Quantity(voltage > 0 ? power / voltage : 0, .ampere))
            case "output_power": return .quantity(Quantity(power, .watt))
            case "temperature": return .quantity(Quantity(temperature, .celsius))
            case "fan_speed": return .quantity(Quantity(on ? 4_000 + 8_000 * power / settings.capacity : 0, .rpm))
            case "input_loss": return .bool(!hasInput)
            case "output_fault": return .bool(state.failed.contains(index))
            case "over_temperature": return .bool(temperature > 85)
            case "fan_fault": return .bool(false)
            case "output_on": return .bool(on)
            case "output_enable": return .text(state.disabled.contains(index) ? "off" : "on")
            default: return nil
            }
        }
    }
}

extension String {
    fileprivate func leftPaddedForSerial() -> String {
        count >= 4 ? self : String(repeating: "0", count: 4 - count) + self
    }
}

/// One supply of a shelf, as the simulated device behind its Modbus address sees it.
public struct PSUPhysics: SimulatedPhysics {
    public let shelf: PowerShelf
    /// 0-based position in the shelf.
    public let index: Int

    public init(shelf: PowerShelf, index: Int) {
        self.shelf = shelf
        self.index = index
    }

    public mutating func advance(by seconds: Double) {}

    public mutating func reading(_ name: String) -> Value? { shelf.reading(index, name) }

    public mutating func command(_ name: String, _ value: Value) throws(CDUCommandError) {
        switch (name, value) {
        case let ("output_enable", .text(state)) where state == "on" || state == "off":
            shelf.enable(index, state == "on")
        default: throw CDUCommandError(name: name)
        }
    }

    public mutating func apply(_ fault: ScheduledFault.Kind) {
        switch fault {
        case .supplyFailure: shelf.fail(index)
        case .inputLoss: shelf.loseInput(index)
        default: break
        }
    }
}

/// Several simulated devices on one Modbus line or gateway, answering by unit id (PSUs at 192, 193, ...).
public struct UnitRouter: ModbusServerBackend {
    public let devices: [UInt8: any ModbusServerBackend]

    public init(devices: [UInt8: any ModbusServerBackend]) { self.devices = devices }

    public func read(_ table: ModbusTable, startingAt address: UInt16, count: Int, unit: UInt8) -> ModbusServerAnswer {
        devices[unit]?.read(table, startingAt: address, count: count, unit: unit) ?? .noResponse
    }

    public func write(
        _ table: ModbusTable, startingAt address: UInt16, values: [UInt16], unit: UInt8
    ) -> ModbusServerAnswer {
        devices[unit]?.write(table, startingAt: address, values: values, unit: unit) ?? .noResponse
    }
}
