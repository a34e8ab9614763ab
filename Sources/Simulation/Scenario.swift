import AcceptanceCore
import Foundation
import ModbusCore
import RedfishCore
import Yams

/// Something that goes wrong at a simulated time.
public struct ScheduledFault: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// The device stops answering (cable pulled, controller hung).
        case silent
        /// The device answers again.
        case recover
        /// The loop starts leaking at this rate (kPa/min at 300 kPa).
        case leak(kPaPerMinute: Double)
        /// The leak sensor trips.
        case leakSensor
        /// The pump can only make this fraction of its head; the controller raises its fault alarm once it notices.
        case pumpFailure(health: Double)
        /// Every request is answered with this Modbus exception code (0x06 busy, 0x04 device failure, ...).
        case exceptions(code: UInt8)
        /// The next request's connection is closed without an answer.
        case dropConnection
        /// Answers take this many seconds.
        case slow(seconds: Double)
        /// A power supply fails internally: no output, fault bit set, the others take its share.
        case supplyFailure
        /// A power supply loses its AC input.
        case inputLoss
    }

    /// Simulated seconds from the start of the run.
    public var at: Double
    public var device: String
    public var kind: Kind

    public init(at: Double, device: String, kind: Kind) {
        self.at = at
        self.device = device
        self.kind = kind
    }
}

/// A simulated situation: device settings and faults on a schedule, from `Fixtures/scenarios/<name>.yaml`.
public struct Scenario: Sendable {
    public var name: String
    public var description: String
    public var cdu: CDUSettings
    public var powerShelf = PowerShelfSettings()
    public var faults: [ScheduledFault]
    /// Answers for prompts that ask for a value (the simulated rack's serial number), used when no operator can
    /// answer. The record marks them as coming from the scenario.
    public var inputs: [String: String] = [:]
    /// The BMCs and power-shelf controllers: versions, timings and faults.
    public var redfish = RedfishSettings()
    /// Faults of the simulated bench instruments, by instrument name (`gauge: {offset: 2 kPa}`).
    public var instruments: [String: InstrumentFaults] = [:]

    public init(name: String, description: String = "", cdu: CDUSettings = CDUSettings(), faults: [ScheduledFault] = [])
    {
        self.name = name
        self.description = description
        self.cdu = cdu
        self.faults = faults
    }

    public static let nominal = Scenario(name: "nominal", description: "A healthy rack.")

    /// Every scenario in a folder, by name.
    public static func available(in directory: String) -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// Loads `<directory>/<name>.yaml`.
    public static func load(named name: String, in directory: String) throws(DiagnosticsError) -> Scenario {
        let path = "\(directory)/\(name).yaml"
        guard FileManager.default.fileExists(atPath: path) else {
            let known = available(in: directory)
            var message = "no scenario '\(name)' in \(directory)"
            if let suggestion = closest(to: name, in: known) { message += "; did you mean '\(suggestion)'?" }
            message += " (available: \(known.joined(separator: ", ")))"
            throw DiagnosticsError([Diagnostic(at: SourceLocation(file: path, line: 1, column: 1), message)])
        }
        return try load(path: path)
    }

    static var cduKeys: [String: (PhysicalUnit?, WritableKeyPath<CDUSettings, Double>)] {
        [
            "fill_pressure": (.kilopascal, \.fillPressure),
            "pump_head": (.kilopascal, \.pumpHead),
            "pump_health": (.percent, \.pumpHealth),
            "max_flow": (.litersPerMinute, \.maxFlow),
            "leak_rate": (PhysicalUnit.kilopascal.per(.minute), \.leakRate),
            "thermal_drop": (.kilopascal, \.thermalDrop),
            "heat_load": (.kilowatt, \.heatLoad),
            "facility_supply_temperature": (.celsius, \.facilitySupplyTemperature),
            "automatic_speed": (.percent, \.automaticSpeed),
            "pressure_noise": (.kilopascal, \.pressureNoise),
            "pressure_offset": (.kilopascal, \.pressureOffset),
            "pressure_drift": (PhysicalUnit.kilopascal.per(.minute), \.pressureDrift),
            "valve_travel": (.second, \.valveTravel),
            "mode_change_delay": (.second, \.modeChangeDelay),
        ]
    }

    public static func load(path: String) throws(DiagnosticsError) -> Scenario {
        let (sink, source) = YAMLSource.open(path: path)
        var reader = YAMLReader(sink: sink)
        var scenario = Scenario(name: ((path as NSString).lastPathComponent as NSString).deletingPathExtension)
        if let root = source?.treeForChecking, let entries = reader.mapping(root, "scenario") {
            reader.rejectUnknownKeys(
                entries,
                allowed: ["name", "description", "inputs", "cdu", "power_shelf", "faults", "redfish", "instruments"],
                in: "scenario")
            for (key, _, value) in entries {
                switch key {
                case "name": scenario.name = reader.scalar(value, "name") ?? scenario.name
                case "description": scenario.description = reader.scalar(value, "description") ?? ""
                case "cdu": scenario.cdu = parseCDU(value, reader: &reader)
                case "redfish": scenario.redfish = RedfishSettings.parse(value, reader: &reader)
                case "instruments":
                    for (name, _, node) in reader.mapping(value, "instruments") ?? [] {
                        scenario.instruments[name] = InstrumentFaults.parse(node, name: name, reader: &reader)
                    }
                case "power_shelf":
                    for (key, _, field) in reader.mapping(value, "power_shelf") ?? [] {
                        guard key == "load" else {
                            reader.error("unknown key '\(key)' in power_shelf (it has: load)", at: field)
                            continue
                        }
                        if let load = reader.quantity(field, "load"), let watts = try? load.converted(to: .watt).value {
                            scenario.powerShelf.load = watts
                        } else {
                            reader.error("load must be a power such as '18 kW'", at: field)
                        }
                    }
                case "inputs":
                    for (name, _, answer) in reader.mapping(value, "inputs") ?? [] {
                        if let text = reader.scalar(answer, "input '\(name)'") { scenario.inputs[name] = text }
                    }
                case "faults":
                    for item in reader.sequence(value, "faults") ?? [] {
                        if let fault = parseFault(item, reader: &reader) { scenario.faults.append(fault) }
                    }
                default: break
                }
            }
        }
        if reader.sink.hasErrors || source?.root == nil { throw DiagnosticsError(reader.sink.diagnostics) }
        scenario.faults.sort { $0.at < $1.at }
        return scenario
    }

    static func parseCDU(_ node: Node, reader: inout YAMLReader) -> CDUSettings {
        var settings = CDUSettings()
        guard let entries = reader.mapping(node, "cdu") else { return settings }
        reader.rejectUnknownKeys(entries, allowed: Array(cduKeys.keys) + ["seed"], in: "cdu settings")
        for (key, _, value) in entries {
            if key == "seed" {
                if let seed = reader.integer(value, "seed"), seed >= 0 { settings.seed = UInt64(seed) }
                continue
            }
            guard let (unit, path) = cduKeys[key], let quantity = reader.quantity(value, key) else { continue }
            guard let unit else { continue }
            do {
                settings[keyPath: path] =
                    unit == .percent && key == "pump_health"
                    ? try quantity.converted(to: .percent).value / 100
                    : try quantity.converted(to: unit).value
            } catch {
                reader.error("\(key): \(error)", at: value)
            }
        }
        return settings
    }

    static let faultNames =
        "silent, recover, leak, leak-sensor, pump-failure, supply-failure, input-loss, exceptions, drop-connection or slow"

    static func parseFault(_ node: Node, reader: inout YAMLReader) -> ScheduledFault? {
        guard let entries = reader.mapping(node, "fault") else { return nil }
        reader.rejectUnknownKeys(
            entries, allowed: ["at", "device", "fault", "rate", "health", "code", "delay"], in: "fault")
        func field(_ key: String) -> Node? { entries.first { $0.key == key }?.value }
        guard let atNode = field("at"), let at = reader.quantity(atNode, "at"),
            let seconds = try? at.converted(to: .second).value
        else {
            reader.error("a fault needs 'at', a simulated time such as '5 min'", at: node)
            return nil
        }
        guard seconds >= 0, seconds <= 7 * 24 * 3600 else {
            reader.error("'at' is a time from the start of the run, 0 to 7 days, not \(at)", at: atNode)
            return nil
        }
        let device = field("device").flatMap { reader.scalar($0, "device") } ?? "cdu"
        guard let kindNode = field("fault"), let kindName = reader.scalar(kindNode, "fault") else {
            reader.error("a fault needs 'fault': " + faultNames, at: node)
            return nil
        }
        let kind: ScheduledFault.Kind
        switch kindName {
        case "silent": kind = .silent
        case "recover": kind = .recover
        case "leak-sensor": kind = .leakSensor
        case "leak":
            guard let rateNode = field("rate"), let rate = reader.quantity(rateNode, "rate"),
                let perMinute = PhysicalUnit.kilopascal.per(.minute),
                let value = try? rate.convertedInterval(to: perMinute).value
            else {
                reader.error("a leak fault needs 'rate' in pressure per time, such as '1.5 kPa/min'", at: node)
                return nil
            }
            kind = .leak(kPaPerMinute: value)
        case "exceptions":
            guard let codeNode = field("code"), let code = reader.integer(codeNode, "code"), (1...11).contains(code)
            else {
                reader.error(
                    "an exceptions fault needs 'code', the Modbus exception code (for example 0x06, busy)", at: node)
                return nil
            }
            kind = .exceptions(code: UInt8(code))
        case "drop-connection": kind = .dropConnection
        case "supply-failure": kind = .supplyFailure
        case "input-loss": kind = .inputLoss
        case "slow":
            guard let delayNode = field("delay"), let delay = reader.quantity(delayNode, "delay"),
                let seconds = try? delay.converted(to: .second).value, seconds >= 0
            else {
                reader.error("a slow fault needs 'delay', such as '200 ms'", at: node)
                return nil
            }
            kind = .slow(seconds: seconds)
        case "pump-failure":
            let health =
                field("health").flatMap { reader.quantity($0, "health") }
                .flatMap { try? $0.converted(to: .percent).value / 100 } ?? 0.15
            kind = .pumpFailure(health: health)
        default:
            reader.error("unknown fault '\(kindName)'; use " + faultNames, at: kindNode)
            return nil
        }
        return ScheduledFault(at: seconds, device: device, kind: kind)
    }
}
