import AcceptanceCore
import Foundation
import RedfishCore
import Synchronization

/// The state behind every simulated BMC and power-shelf controller of a rack, on the shared simulation clock.
///
/// Trays power on through `PoweringOn` over a configurable time; rack load follows tray power states and is shared
/// by every healthy supply of every shelf; a failed or pulled supply drops out of the sharing, the shelf raises its
/// redundancy alarm and logs an event; leak detectors change state on schedule and make the chassis unhealthy.
public final class RedfishRackModel: Sendable {
    public enum TrayKind: String, Sendable {
        case compute, `switch`
    }

    public enum PowerState: String, Sendable {
        case off = "Off"
        case poweringOn = "PoweringOn"
        case on = "On"
        case poweringOff = "PoweringOff"
    }

    public struct Processor: Sendable {
        public var id: String
        public var type: String  // "GPU" or "CPU"
        public var model: String
        public var serial: String
        public var present: Bool
    }

    public struct Tray: Sendable {
        public var name: String
        public var kind: TrayKind
        public var number: Int
        /// The state it is heading to, and since when (simulated seconds).
        var target: PowerState = .off
        var since: Double = 0
        var stuck = false
        public var processors: [Processor] = []
        /// Detector → state, with the time a scheduled change takes effect.
        var leaks: [(detector: String, state: String, at: Double)] = []
        public var firmware: [String: String] = [:]
        public var serial: String
    }

    public struct Supply: Sendable {
        public var serial: String
        public var present = true
        var failedAt: Double?
    }

    public struct Shelf: Sendable {
        public var name: String
        public var number: Int
        public var supplies: [Supply]
        public var firmware: [String: String] = [:]
        var alarmBroken = false
        /// Log entries: time, message id, message, severity.
        var events: [(at: Double, id: String, message: String, severity: String)] = []
    }

    struct State {
        var trays: [Tray]
        var shelves: [Shelf]
        var eventSequence = 0
        /// Supplies seen healthy at the last look, to log changes once.
        var lastHealthy: [Int: [Bool]] = [:]
    }

    public let clock: any RunClock
    public let settings: RedfishSettings
    private let state: Mutex<State>

    /// Watts a tray draws.
    public static let computeTrayWatts = 5_400.0
    public static let switchTrayWatts = 1_200.0
    public static let standbyWatts = 60.0
    public static let supplyCapacityWatts = 5_500.0
    public static let efficiency = 0.975

    public init(
        settings: RedfishSettings, clock: any RunClock, computeTrays: Int = 18, switchTrays: Int = 9,
        manifest: FirmwareManifest?
    ) {
        self.settings = settings
        self.clock = clock
        func versions(model: String, device: String) -> [String: String] {
            var versions = manifest?.versions[model] ?? [:]
            for (point, version) in settings.firmware[device] ?? [:] { versions[point] = version }
            return versions
        }
        var trays: [Tray] = []
        for number in 1...computeTrays {
            let name = RackProfile.DeviceGroup.memberName(prefix: "compute", number: number)
            var tray = Tray(
                name: name, kind: .compute, number: number,
                firmware: versions(model: "gb200-compute-tray", device: name),
                serial: String(format: "SIMCT%04d", number))
            tray.processors =
                (0..<4).map { index in
                    Processor(
                        id: "GPU_\(index)", type: "GPU", model: "NVIDIA GB200",
                        serial: String(format: "1652%02d%02d%05d", number, index, 17 * number + index), present: true)
                }
                + (0..<2).map { index in
                    Processor(
                        id: "CPU_\(index)", type: "CPU", model: "NVIDIA Grace",
                        serial: String(format: "0x%08X", 0x5C10_0000 + number * 16 + index), present: true)
                }
            trays.append(tray)
        }
        for number in 1...switchTrays {
            let name = RackProfile.DeviceGroup.memberName(prefix: "switch", number: number)
            trays.append(
                Tray(
                    name: name, kind: .switch, number: number,
                    firmware: versions(model: "nvl72-switch-tray", device: name),
                    serial: String(format: "SIMST%04d", number)))
        }
        var shelves: [Shelf] = []
        for number in 1...(settings.powerShelves ?? 8) {
            let name = RackProfile.DeviceGroup.memberName(prefix: "shelf", number: number)
            shelves.append(
                Shelf(
                    name: name, number: number,
                    supplies: (1...6).map { Supply(serial: String(format: "SIMPSU%02d%02d", number, $0)) },
                    firmware: versions(model: "orv3-power-shelf", device: name)))
        }
        for fault in settings.faults {
            switch fault {
            case let .gpuMissing(device, gpu):
                if let index = trays.firstIndex(where: { $0.name == device }),
                    trays[index].processors.indices.contains(gpu - 1)
                {
                    trays[index].processors[gpu - 1].present = false
                }
            case let .stuckPoweringOn(device):
                if let index = trays.firstIndex(where: { $0.name == device }) { trays[index].stuck = true }
            case let .supplyFailure(shelf, supply, at):
                if shelves.indices.contains(shelf - 1) { shelves[shelf - 1].supplies[supply - 1].failedAt = at }
            case let .leak(device, detector, leakState, at):
                if let index = trays.firstIndex(where: { $0.name == device }) {
                    trays[index].leaks.append((detector, leakState, at))
                }
            case let .noRedundancyAlarm(shelf):
                if shelves.indices.contains(shelf - 1) { shelves[shelf - 1].alarmBroken = true }
            default: break
            }
        }
        state = Mutex(State(trays: trays, shelves: shelves))
    }

    var now: Double { clock.now().seconds }

    // MARK: Trays

    public func tray(named name: String) -> Tray? { state.withLock { $0.trays.first { $0.name == name } } }

    public func powerState(of name: String) -> PowerState? {
        let time = now
        return state.withLock { state in state.trays.first { $0.name == name }.map { powerState($0, at: time, state) } }
    }

    func powerState(_ tray: Tray, at time: Double, _ state: State) -> PowerState {
        powerState(tray, at: time, railsUp: railsUp(state, at: time))
    }

    /// A tray's state given whether the rails are up (worked out once for every tray of a rack-wide sum).
    func powerState(_ tray: Tray, at time: Double, railsUp: Bool) -> PowerState {
        if !railsUp { return .off }
        switch tray.target {
        case .on, .poweringOn:
            return tray.stuck || time - tray.since < settings.powerOnSeconds ? .poweringOn : .on
        case .off, .poweringOff:
            return time - tray.since < settings.powerOffSeconds && tray.since > 0 ? .poweringOff : .off
        }
    }

    public enum ResetOutcome: Sendable {
        case accepted
        case invalid(String)
    }

    /// `ComputerSystem.Reset` with a `ResetType`.
    public func reset(_ name: String, type: String) -> ResetOutcome {
        let time = now
        return state.withLock { state in
            guard let index = state.trays.firstIndex(where: { $0.name == name }) else {
                return .invalid("no such system")
            }
            let current = powerState(state.trays[index], at: time, state)
            switch type {
            case "On":
                if current == .off || current == .poweringOff {
                    state.trays[index].target = .on
                    state.trays[index].since = time
                }
            case "ForceOn":
                state.trays[index].target = .on
                state.trays[index].since = time
            case "ForceOff":
                state.trays[index].target = .off
                state.trays[index].since = 0
            case "GracefulShutdown":
                if current != .off {
                    state.trays[index].target = .off
                    state.trays[index].since = time
                }
            case "ForceRestart", "GracefulRestart", "PowerCycle":
                state.trays[index].target = .on
                state.trays[index].since = time
            default:
                return .invalid(type)
            }
            return .accepted
        }
    }

    public static let resetTypes = [
        "On", "ForceOn", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart",
        "PowerCycle",
    ]

    /// A leak detector of a tray changes state at a simulated time (a fault injected while the rack runs).
    public func injectLeak(device: String, detector: String, state leakState: String, at time: Double) {
        state.withLock { state in
            guard let index = state.trays.firstIndex(where: { $0.name == device }) else { return }
            state.trays[index].leaks.append((detector, leakState, time))
        }
    }

    /// Each leak detector's state now.
    public func leakStates(of name: String) -> [String: String] {
        let time = now
        return state.withLock { state in
            var states = ["ColdPlate": "OK", "Manifold": "OK"]
            for leak in state.trays.first(where: { $0.name == name })?.leaks ?? [] where leak.at <= time {
                states[leak.detector] = leak.state
            }
            return states
        }
    }

    // MARK: Power

    /// Watts the trays draw now.
    public func rackLoad() -> Double {
        let time = now
        return state.withLock { state in load(state, at: time) }
    }

    func load(_ state: State, at time: Double) -> Double {
        let up = railsUp(state, at: time)
        return state.trays.reduce(0) { total, tray in
            let full = tray.kind == .compute ? Self.computeTrayWatts : Self.switchTrayWatts
            let draw: Double =
                switch powerState(tray, at: time, railsUp: up) {
                case .on: full
                case .poweringOn: 0.3 * full
                case .poweringOff: 0.5 * full
                case .off: Self.standbyWatts
                }
            return total + draw
        }
    }

    static func healthy(_ supply: Supply, at time: Double) -> Bool {
        supply.present && (supply.failedAt.map { time < $0 } ?? true)
    }

    /// The shelves can carry the load: otherwise the 48 V bus collapses and every tray is off.
    func railsUp(_ state: State, at time: Double) -> Bool {
        let healthy = state.shelves.reduce(0) { $0 + $1.supplies.count { Self.healthy($0, at: time) } }
        // Compute what the trays would draw if the rails held, without recursing through powerState.
        var demand = 0.0
        for tray in state.trays {
            let full = tray.kind == .compute ? Self.computeTrayWatts : Self.switchTrayWatts
            demand +=
                tray.target == .on && (tray.stuck || time - tray.since >= settings.powerOnSeconds)
                ? full : Self.standbyWatts
        }
        return Double(healthy) * Self.supplyCapacityWatts >= demand
    }

    /// The DC busbar regulates to 50 V and droops with the load the shelves carry; it is down when they cannot.
    public static let busbarNominalVolts = 50.0
    public static let busbarDroopVoltsPerWatt = 1.5e-6

    /// The busbar voltage now, as an independent meter on the bar reads it.
    public func busbarVoltage() -> Double {
        let time = now
        return state.withLock { state in busbar(state, at: time) }
    }

    func busbar(_ state: State, at time: Double) -> Double {
        guard railsUp(state, at: time) else { return 0 }
        return Self.busbarNominalVolts - Self.busbarDroopVoltsPerWatt * load(state, at: time)
    }

    public struct ShelfReading: Sendable {
        /// The output voltage the shelf's controller reports: the busbar, through its own (slightly wrong) sensor.
        public var outputVolts = 0.0
        public var name: String
        public var number: Int
        /// Per supply: fitted, delivering, output watts.
        public var supplies: [(present: Bool, healthy: Bool, watts: Double, serial: String)]
        public var outputWatts: Double
        public var inputWatts: Double
        public var redundancyLost: Bool
        /// What the shelf reports: lost redundancy, unless its alarm is broken.
        public var alarm: Bool
        public var events: [(id: Int, at: Double, messageID: String, message: String, severity: String)]
        public var firmware: [String: String]
    }

    /// A shelf's readings now, logging any supply change since the last look.
    public func shelf(_ number: Int) -> ShelfReading? {
        let time = now
        return state.withLock { state -> ShelfReading? in
            guard state.shelves.indices.contains(number - 1) else { return nil }
            noteChanges(&state, at: time)
            let total = load(state, at: time)
            let healthyAll = state.shelves.reduce(0) { $0 + $1.supplies.count { Self.healthy($0, at: time) } }
            let shelf = state.shelves[number - 1]
            let perSupply = healthyAll > 0 ? total / Double(healthyAll) : 0
            let supplies = shelf.supplies.map { supply in
                let healthy = Self.healthy(supply, at: time)
                return (supply.present, healthy, healthy ? perSupply : 0, supply.serial)
            }
            let output = supplies.reduce(0) { $0 + $1.2 }
            let lost = supplies.contains { !$0.1 }
            var id = 0
            let events = shelf.events.map { event in
                id += 1
                return (id, event.at, event.id, event.message, event.severity)
            }
            var reading = ShelfReading(
                name: shelf.name, number: number, supplies: supplies, outputWatts: output,
                inputWatts: output / Self.efficiency, redundancyLost: lost,
                alarm: lost && !shelf.alarmBroken, events: events, firmware: shelf.firmware)
            // Each controller's voltage sensor is a little off (±0.15 %), never by as much as 1 %.
            reading.outputVolts = busbar(state, at: time) * (1 + 0.0015 * Double(number % 3 - 1))
            return reading
        }
    }

    public var shelfCount: Int { state.withLock { $0.shelves.count } }

    /// Logs a Redfish event for every supply that changed since the last look.
    func noteChanges(_ state: inout State, at time: Double) {
        for index in state.shelves.indices {
            let healthy = state.shelves[index].supplies.map { Self.healthy($0, at: time) }
            let before = state.lastHealthy[index] ?? [Bool](repeating: true, count: healthy.count)
            guard healthy != before else { continue }
            state.lastHealthy[index] = healthy
            for (bay, (was, now)) in zip(before, healthy).enumerated() where was != now {
                let supply = state.shelves[index].supplies[bay]
                let what = now ? "restored" : (supply.present ? "failed" : "removed")
                state.shelves[index].events.append(
                    (
                        time, now ? "PowerSupplyRestored" : "PowerSupplyFailed",
                        "Power supply \(bay + 1) of shelf \(index + 1) \(what).",
                        now ? "OK" : "Critical"
                    ))
            }
            let alarm = healthy.contains(false)
            let wasAlarm = before.contains(false)
            if alarm != wasAlarm, !state.shelves[index].alarmBroken {
                state.shelves[index].events.append(
                    (
                        time, alarm ? "PowerSupplyRedundancyLost" : "PowerSupplyRedundancyRestored",
                        alarm
                            ? "Shelf \(index + 1) lost N+1 redundancy."
                            : "Shelf \(index + 1) redundancy restored.",
                        alarm ? "Warning" : "OK"
                    ))
            }
        }
    }

    /// A technician pulls or reseats a supply (a prompt confirmed in simulation).
    public func setSupply(shelf: Int?, supply: Int, present: Bool) {
        let time = now
        state.withLock { state in
            noteChanges(&state, at: time)
            for index in state.shelves.indices where shelf == nil || shelf == index + 1 {
                if state.shelves[index].supplies.indices.contains(supply - 1) {
                    state.shelves[index].supplies[supply - 1].present = present
                }
            }
            noteChanges(&state, at: time)
        }
    }
}
