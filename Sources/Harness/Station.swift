import AcceptanceCore
import Foundation
import ModbusTransport
import Yams

/// A test station: which transport reaches each device instance of the rack, with timeouts and retries, plus the
/// station's identity and default operator. `Fixtures/stations/<name>.yaml`.
public struct StationConfiguration: Sendable {
    public struct ModbusBinding: Sendable {
        public var endpoint: ModbusEndpoint
        public var unit: UInt8
        public var settings: ModbusSettings
    }

    public var id: String
    public var description: String
    public var operatorName: String?
    public var rack: String?
    public var devices: [String: ModbusBinding]
    public var file: String

    static let modbusKeys = ["tcp", "rtu", "baud", "parity", "data_bits", "stop_bits", "rs485", "unit",
                             "response_timeout", "byte_timeout", "retries", "backoff"]

    public static func load(path: String) throws(DiagnosticsError) -> StationConfiguration {
        var sink = DiagnosticSink(file: path, text: (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
        let source = YAMLSource.load(path: path, into: &sink)
        var reader = YAMLReader(sink: sink)
        var station = StationConfiguration(id: "", description: "", operatorName: nil, rack: nil, devices: [:], file: path)
        if let root = source?.treeForChecking, let entries = reader.mapping(root, "station") {
            reader.rejectUnknownKeys(entries, allowed: ["station", "description", "operator", "rack", "devices"],
                                     in: "station")
            for (key, _, value) in entries {
                switch key {
                case "station": station.id = reader.scalar(value, "station") ?? ""
                case "description": station.description = reader.scalar(value, "description") ?? ""
                case "operator": station.operatorName = reader.scalar(value, "operator")
                case "rack": station.rack = reader.scalar(value, "rack")
                case "devices":
                    for (name, keyNode, device) in reader.mapping(value, "devices") ?? [] {
                        guard let fields = reader.mapping(device, "device '\(name)'") else { continue }
                        reader.rejectUnknownKeys(fields, allowed: ["modbus"], in: "device '\(name)'")
                        guard let modbus = fields.first(where: { $0.key == "modbus" })?.value else {
                            reader.error("device '\(name)' needs a transport: modbus", at: keyNode)
                            continue
                        }
                        if let binding = parseModbus(modbus, device: name, reader: &reader) {
                            station.devices[name] = binding
                        }
                    }
                default: break
                }
            }
            if station.id.isEmpty { reader.error("a station file needs 'station: <id>'", at: root) }
        }
        if reader.sink.hasErrors || source?.root == nil { throw DiagnosticsError(reader.sink.diagnostics) }
        return station
    }

    static func parseModbus(_ node: Node, device: String, reader: inout YAMLReader) -> ModbusBinding? {
        guard let fields = reader.mapping(node, "modbus") else { return nil }
        reader.rejectUnknownKeys(fields, allowed: modbusKeys, in: "modbus settings of '\(device)'")
        func field(_ key: String) -> Node? { fields.first { $0.key == key }?.value }
        func duration(_ key: String) -> Duration? {
            guard let node = field(key), let quantity = reader.quantity(node, key) else { return nil }
            guard let duration = quantity.duration, key == "backoff" ? duration >= .zero : duration > .zero else {
                reader.error("\(key) must be a time above zero, such as '1 s' or '500 ms'", at: node)
                return nil
            }
            return duration
        }
        var settings = ModbusSettings()
        if let value = duration("response_timeout") { settings.responseTimeout = value }
        if let value = duration("byte_timeout") { settings.byteTimeout = value }
        if let value = duration("backoff") { settings.retry.backoff = value }
        if let node = field("retries"), let retries = reader.integer(node, "retries") {
            if (0...10).contains(retries) { settings.retry.retries = retries } else {
                reader.error("retries must be 0 to 10", at: node)
            }
        }
        if let node = field("rs485") { settings.rs485 = reader.bool(node, "rs485") ?? false }
        var unit: UInt8 = 1
        if let node = field("unit"), let value = reader.integer(node, "unit") {
            if (0...247).contains(value) { unit = UInt8(value) } else { reader.error("unit must be 0 to 247", at: node) }
        }
        let endpoint: ModbusEndpoint
        switch (field("tcp"), field("rtu")) {
        case let (tcp?, nil):
            guard let text = reader.scalar(tcp, "tcp"), let parsed = parseHostPort(text) else {
                reader.error("tcp must be host:port, such as 10.0.4.20:502 or [::1]:1502", at: tcp)
                return nil
            }
            endpoint = .tcp(host: parsed.host, port: parsed.port)
        case let (nil, rtu?):
            guard let path = reader.scalar(rtu, "rtu") else { return nil }
            var baud = 19200, dataBits = 8, stopBits = 1
            var parity = ModbusEndpoint.Parity.even
            if let node = field("baud"), let value = reader.integer(node, "baud") {
                if [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200].contains(value) { baud = value } else {
                    reader.error("unusual baud rate \(value)", at: node)
                }
            }
            if let node = field("parity"), let text = reader.scalar(node, "parity") {
                if let value = ModbusEndpoint.Parity(rawValue: text) { parity = value } else {
                    reader.error("parity must be none, even or odd", at: node)
                }
            }
            if let node = field("data_bits"), let value = reader.integer(node, "data_bits") {
                if (7...8).contains(value) { dataBits = value } else { reader.error("data_bits must be 7 or 8", at: node) }
            }
            if let node = field("stop_bits"), let value = reader.integer(node, "stop_bits") {
                if (1...2).contains(value) { stopBits = value } else { reader.error("stop_bits must be 1 or 2", at: node) }
            }
            endpoint = .rtu(device: path, baud: baud, parity: parity, dataBits: dataBits, stopBits: stopBits)
        default:
            reader.error("device '\(device)': give exactly one of 'tcp: host:port' or 'rtu: /dev/ttyUSB0'", at: node)
            return nil
        }
        return ModbusBinding(endpoint: endpoint, unit: unit, settings: settings)
    }

    /// `10.0.4.20:502`, `localhost:1502`, `[::1]:1502`.
    static func parseHostPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }
}

/// Passes device retries to the runner once it exists (clients are made before the runner).
public final class RetryRelay: Sendable {
    public init() {}

    private let runner = Mutex<Runner?>(nil)

    func attach(_ runner: Runner) { self.runner.withLock { $0 = runner } }

    func report(device: String, _ retry: ModbusRetry) {
        runner.withLock { $0 }?.recordRetry(device: device, message: retry.description)
    }
}

import Synchronization
