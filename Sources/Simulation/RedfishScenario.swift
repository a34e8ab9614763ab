import AcceptanceCore
import Foundation
import RedfishCore
import Yams

/// What goes wrong on the Redfish side of a simulated rack.
public enum RedfishFault: Sendable, Hashable {
    /// The BMC does not answer: its port refuses connections.
    case silent(device: String)
    /// Every answer takes this long.
    case slow(device: String, seconds: Double)
    /// The next `count` requests get 503 with `Retry-After`.
    case unavailable(device: String, count: Int, retryAfter: Double)
    /// A GPU is not fitted: its Processor resource does not exist.
    case gpuMissing(device: String, gpu: Int)
    /// The system never leaves `PoweringOn`.
    case stuckPoweringOn(device: String)
    /// A supply of a shelf fails at a simulated time: no output, health Critical, redundancy lost.
    case supplyFailure(shelf: Int, supply: Int, at: Double)
    /// A leak detector reads this state from a simulated time on.
    case leak(device: String, detector: String, state: String, at: Double)
    /// The shelf's firmware never raises the redundancy alarm (a broken shelf controller).
    case noRedundancyAlarm(shelf: Int)

    public var device: String? {
        switch self {
        case let .silent(device), let .slow(device, _), let .unavailable(device, _, _), let .gpuMissing(device, _),
            let .stuckPoweringOn(device), let .leak(device, _, _, _):
            device
        case let .supplyFailure(shelf, _, _), let .noRedundancyAlarm(shelf):
            RackProfile.DeviceGroup.memberName(prefix: "shelf", number: shelf)
        }
    }
}

/// The Redfish side of a scenario (`redfish:` in `Fixtures/scenarios/<name>.yaml`).
public struct RedfishSettings: Sendable {
    /// Power shelves fitted (the rack profile's default is 8).
    public var powerShelves: Int?
    /// The release whose firmware manifest sets every device's versions.
    public var release: String = "nvl72-2026.10"
    /// Versions that differ from the release: device → point → version.
    public var firmware: [String: [String: String]] = [:]
    /// How long `PoweringOn` lasts before `On`.
    public var powerOnSeconds: Double = 20
    public var powerOffSeconds: Double = 5
    public var faults: [RedfishFault] = []
    /// Members per page of a collection (`Members@odata.nextLink` beyond it).
    public var pageSize: Int = 50
    /// Answers wait this long on every BMC (benchmarks).
    public var latencySeconds: Double = 0

    public init() {}

    static let keys = [
        "power_shelves", "release", "firmware", "power_on_time", "power_off_time", "faults", "page_size",
        "latency",
    ]

    static func parse(_ node: Node, reader: inout YAMLReader) -> RedfishSettings {
        var settings = RedfishSettings()
        guard let entries = reader.mapping(node, "redfish") else { return settings }
        reader.rejectUnknownKeys(entries, allowed: keys, in: "redfish")
        for (key, _, value) in entries {
            switch key {
            case "power_shelves":
                if let count = reader.integer(value, "power_shelves") {
                    if (1...99).contains(count) {
                        settings.powerShelves = count
                    } else {
                        reader.error("power_shelves must be 1 to 99", at: value)
                    }
                }
            case "release": settings.release = reader.scalar(value, "release") ?? settings.release
            case "firmware":
                for (device, _, points) in reader.mapping(value, "firmware") ?? [] {
                    for (point, _, version) in reader.mapping(points, "firmware of \(device)") ?? [] {
                        if let text = reader.scalar(version, "version") {
                            settings.firmware[device, default: [:]][point] = text
                        }
                    }
                }
            case "power_on_time":
                settings.powerOnSeconds = seconds(value, "power_on_time", &reader) ?? settings.powerOnSeconds
            case "power_off_time":
                settings.powerOffSeconds = seconds(value, "power_off_time", &reader) ?? settings.powerOffSeconds
            case "latency": settings.latencySeconds = seconds(value, "latency", &reader) ?? 0
            case "page_size":
                if let size = reader.integer(value, "page_size") {
                    if size >= 1 {
                        settings.pageSize = size
                    } else {
                        reader.error("page_size must be at least 1", at: value)
                    }
                }
            case "faults":
                for item in reader.sequence(value, "faults") ?? [] {
                    if let fault = parseFault(item, reader: &reader) { settings.faults.append(fault) }
                }
            default: break
            }
        }
        return settings
    }

    static func seconds(_ node: Node, _ what: String, _ reader: inout YAMLReader) -> Double? {
        guard let quantity = reader.quantity(node, what) else { return nil }
        guard let duration = quantity.duration, duration >= .zero else {
            reader.error("\(what) must be a time such as '20 s'", at: node)
            return nil
        }
        return duration.seconds
    }

    static let faultKinds = [
        "silent", "slow", "unavailable", "gpu-missing", "stuck-powering-on", "supply-failure", "leak",
        "no-redundancy-alarm",
    ]

    static func parseFault(_ node: Node, reader: inout YAMLReader) -> RedfishFault? {
        guard let fields = reader.mapping(node, "a Redfish fault") else { return nil }
        reader.rejectUnknownKeys(
            fields,
            allowed: [
                "fault", "device", "delay", "count", "retry_after", "gpu", "shelf",
                "supply", "at", "detector", "state",
            ], in: "a Redfish fault")
        func field(_ key: String) -> Node? { fields.first { $0.key == key }?.value }
        guard let kindNode = field("fault"), let kind = reader.scalar(kindNode, "fault") else {
            reader.error("a Redfish fault needs 'fault': one of \(faultKinds.joined(separator: ", "))", at: node)
            return nil
        }
        let device = field("device").flatMap { reader.scalar($0, "device") }
        func need<T>(_ value: T?, _ key: String) -> T? {
            if value == nil { reader.error("fault '\(kind)' needs '\(key)'", at: node) }
            return value
        }
        func integer(_ key: String) -> Int? { field(key).flatMap { reader.integer($0, key) } }
        let at = field("at").flatMap { seconds($0, "at", &reader) } ?? 0
        switch kind {
        case "silent": return need(device, "device").map { .silent(device: $0) }
        case "slow":
            guard let device = need(device, "device"),
                let delay = need(field("delay").flatMap({ seconds($0, "delay", &reader) }), "delay")
            else { return nil }
            return .slow(device: device, seconds: delay)
        case "unavailable":
            guard let device = need(device, "device") else { return nil }
            let retryAfter = field("retry_after").flatMap { seconds($0, "retry_after", &reader) } ?? 1
            return .unavailable(device: device, count: max(integer("count") ?? 3, 1), retryAfter: retryAfter)
        case "gpu-missing":
            guard let device = need(device, "device"), let gpu = need(integer("gpu"), "gpu") else { return nil }
            guard (1...4).contains(gpu) else {
                reader.error("gpu is 1 to 4", at: node)
                return nil
            }
            return .gpuMissing(device: device, gpu: gpu)
        case "stuck-powering-on": return need(device, "device").map { .stuckPoweringOn(device: $0) }
        case "supply-failure":
            guard let shelf = need(integer("shelf"), "shelf"), let supply = need(integer("supply"), "supply") else {
                return nil
            }
            guard (1...6).contains(supply), shelf >= 1 else {
                reader.error("shelf counts from 1; supply is 1 to 6", at: node)
                return nil
            }
            return .supplyFailure(shelf: shelf, supply: supply, at: at)
        case "leak":
            guard let device = need(device, "device") else { return nil }
            let detector = field("detector").flatMap { reader.scalar($0, "detector") } ?? "ColdPlate"
            let state = field("state").flatMap { reader.scalar($0, "state") } ?? "Critical"
            guard ["ColdPlate", "Manifold"].contains(detector), ["OK", "Warning", "Critical"].contains(state) else {
                reader.error("detector is ColdPlate or Manifold; state is OK, Warning or Critical", at: node)
                return nil
            }
            return .leak(device: device, detector: detector, state: state, at: at)
        case "no-redundancy-alarm":
            guard let shelf = need(integer("shelf"), "shelf") else { return nil }
            return .noRedundancyAlarm(shelf: shelf)
        default:
            var message = "unknown Redfish fault '\(kind)'; use \(faultKinds.joined(separator: ", "))"
            if let suggestion = closest(to: kind, in: faultKinds) { message += " (did you mean '\(suggestion)'?)" }
            reader.error(message, at: kindNode)
            return nil
        }
    }
}
