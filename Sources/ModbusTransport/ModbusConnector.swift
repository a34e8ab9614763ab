import AcceptanceCore
import ModbusCore
import Yams

/// How a station reaches a Modbus device: a TCP address or serial line with its unit id and timing, or a simulated
/// device in memory.
public struct ModbusBinding: DeviceBinding {
    public enum Line: Sendable {
        case endpoint(ModbusEndpoint)
        /// A device answering in memory (the simulator): no socket, the same codec and retries.
        case memory(any ModbusClient)
    }

    public var line: Line
    public var unit: UInt8
    public var settings: ModbusSettings

    public init(line: Line, unit: UInt8 = 1, settings: ModbusSettings = ModbusSettings()) {
        self.line = line
        self.unit = unit
        self.settings = settings
    }

    public var protocolName: String { ModbusProfileSyntax().name }

    /// A TCP connection answers one request at a time: the supervisor has its own. A serial line has one master:
    /// an RTU device is never opened twice. In memory nothing queues.
    public var supervisorConnectsSeparately: Bool {
        if case let .endpoint(endpoint) = line, case .tcp = endpoint { return true }
        return false
    }

    public var summary: String {
        switch line {
        case let .endpoint(endpoint): "Modbus \(endpoint) unit \(unit)"
        case .memory: "in memory"
        }
    }
}

/// Modbus as a station uses it: `modbus: {tcp: host:port, unit: 1}` or `modbus: {rtu: /dev/ttyUSB0, baud: 19200}` in a
/// station file; devices on one port or serial line share one connection, each addressed by its unit id.
public struct ModbusConnector: DeviceConnector {
    public init() {}

    public var syntax: any DeviceProtocolSyntax { ModbusProfileSyntax() }

    static let stationKeys = [
        "tcp", "rtu", "baud", "parity", "data_bits", "stop_bits", "rs485", "unit",
        "response_timeout", "byte_timeout", "retries", "backoff",
    ]

    public func parseBinding(
        _ node: Node, device: String, file: String, reader: inout YAMLReader
    ) -> (any DeviceBinding)? {
        guard let fields = reader.mapping(node, "modbus") else { return nil }
        reader.rejectUnknownKeys(fields, allowed: Self.stationKeys, in: "modbus settings of '\(device)'")
        func field(_ key: String) -> Node? { fields.first { $0.key == key }?.value }
        func duration(_ key: String) -> Duration? {
            guard let node = field(key), let quantity = reader.quantity(node, key) else { return nil }
            guard let duration = quantity.duration, key == "backoff" ? duration >= .zero : duration > .zero,
                duration <= .seconds(60)
            else {
                reader.error("\(key) must be a time above zero and at most 60 s, such as '1 s' or '500 ms'", at: node)
                return nil
            }
            return duration
        }
        var settings = ModbusSettings()
        if let value = duration("response_timeout") { settings.responseTimeout = value }
        if let node = field("byte_timeout") {
            reader.error(
                "byte_timeout is no longer used: response_timeout bounds the whole reply, however slowly its bytes "
                    + "arrive; remove it", at: node)
        }
        if let value = duration("backoff") { settings.retry.backoff = value }
        if let node = field("retries"), let retries = reader.integer(node, "retries") {
            if (0...10).contains(retries) {
                settings.retry.retries = retries
            } else {
                reader.error("retries must be 0 to 10", at: node)
            }
        }
        if let node = field("rs485") { settings.rs485 = reader.bool(node, "rs485") ?? false }
        var unit: UInt8 = 1
        if let node = field("unit"), let value = reader.integer(node, "unit") {
            if (0...247).contains(value) {
                unit = UInt8(value)
            } else {
                reader.error("unit must be 0 to 247", at: node)
            }
        }
        let endpoint: ModbusEndpoint
        switch (field("tcp"), field("rtu")) {
        case let (tcp?, nil):
            guard let text = reader.scalar(tcp, "tcp"), let parsed = Self.parseHostPort(text) else {
                reader.error("tcp must be host:port, such as 10.0.4.20:502 or [::1]:1502", at: tcp)
                return nil
            }
            endpoint = .tcp(host: parsed.host, port: parsed.port)
        case let (nil, rtu?):
            guard let path = reader.scalar(rtu, "rtu") else { return nil }
            var baud = 19200
            var dataBits = 8
            var stopBits = 1
            var parity = ModbusEndpoint.Parity.even
            if let node = field("baud"), let value = reader.integer(node, "baud") {
                if [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200].contains(value) {
                    baud = value
                } else {
                    reader.error("unusual baud rate \(value)", at: node)
                }
            }
            if let node = field("parity"), let text = reader.scalar(node, "parity") {
                if let value = ModbusEndpoint.Parity(rawValue: text) {
                    parity = value
                } else {
                    reader.error("parity must be none, even or odd", at: node)
                }
            }
            if let node = field("data_bits"), let value = reader.integer(node, "data_bits") {
                if (7...8).contains(value) {
                    dataBits = value
                } else {
                    reader.error("data_bits must be 7 or 8", at: node)
                }
            }
            if let node = field("stop_bits"), let value = reader.integer(node, "stop_bits") {
                if (1...2).contains(value) {
                    stopBits = value
                } else {
                    reader.error("stop_bits must be 1 or 2", at: node)
                }
            }
            endpoint = .rtu(device: path, baud: baud, parity: parity, dataBits: dataBits, stopBits: stopBits)
        default:
            reader.error("device '\(device)': give exactly one of 'tcp: host:port' or 'rtu: /dev/ttyUSB0'", at: node)
            return nil
        }
        return ModbusBinding(line: .endpoint(endpoint), unit: unit, settings: settings)
    }

    /// `10.0.4.20:502`, `localhost:1502`, `[::1]:1502`.
    static func parseHostPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        // An IPv6 address goes in brackets, whole: `[::1]:1502`. A half bracket or a bare IPv6 address (whose
        // last group would be read as the port) is refused.
        if host.hasPrefix("[") || host.hasSuffix("]") {
            guard host.hasPrefix("["), host.hasSuffix("]"), host.count > 2 else { return nil }
            host = String(host.dropFirst().dropLast())
            guard host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }), host.contains(":") else { return nil }
        } else if host.contains(":") || host.contains("[") || host.contains("]") {
            return nil
        }
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "@" }) else { return nil }
        return (host, port)
    }

    /// The port (host:port, or serial device) a binding's line is on; nil in memory.
    static func port(of binding: ModbusBinding) -> String? {
        guard case let .endpoint(endpoint) = binding.line else { return nil }
        return switch endpoint {
        case let .tcp(host, port): "\(host):\(port)"
        case let .rtu(path, _, _, _, _): path
        }
    }

    /// Why two bindings on one port cannot share it (one bus has one set of line settings and timeouts), or nil.
    static func conflict(_ binding: ModbusBinding, _ other: ModbusBinding, port: String) -> String? {
        guard case let .endpoint(mine) = binding.line, case let .endpoint(theirs) = other.line else { return nil }
        if mine != theirs { return "share \(port) with different line settings (\(mine) and \(theirs))" }
        if binding.settings != other.settings {
            return "share \(port) with different timeouts or retries; one bus has one set of them"
        }
        return nil
    }

    /// Devices on one port must agree on its settings: checked when the run is prepared, before anything opens.
    public func validate(_ devices: [BoundDevice]) throws(ConnectionError) {
        var owners: [String: (name: String, binding: ModbusBinding)] = [:]
        for device in devices {
            guard let binding = device.binding as? ModbusBinding, let port = Self.port(of: binding) else { continue }
            if let existing = owners[port] {
                if let problem = Self.conflict(binding, existing.binding, port: port) {
                    throw ConnectionError(device: nil, "'\(device.name)' and '\(existing.name)' \(problem)")
                }
            } else {
                owners[port] = (device.name, binding)
            }
        }
    }

    public func withDevices<Result: Sendable>(
        _ devices: [BoundDevice], context: ConnectionContext,
        _ body: (ConnectedDevices) async -> Result
    ) async throws(ConnectionError) -> Result {
        var connected = ConnectedDevices()
        // Lines are keyed by the port itself (device path, host:port): one bus, one connection, one set of settings.
        var lines: [String: (line: ModbusLine, owner: String, binding: ModbusBinding)] = [:]
        for device in devices {
            guard let binding = device.binding as? ModbusBinding else {
                throw ConnectionError(device: device.name, "is not bound over Modbus")
            }
            let client: any ModbusClient
            switch binding.line {
            case let .memory(memory):
                client = memory
            case let .endpoint(endpoint):
                let port: String =
                    switch endpoint {
                    case let .tcp(host, port): "\(host):\(port)"
                    case let .rtu(path, _, _, _, _): path
                    }
                if let existing = lines[port], let problem = Self.conflict(binding, existing.binding, port: port) {
                    throw ConnectionError(device: nil, "'\(device.name)' and '\(existing.owner)' \(problem)")
                }
                let line: ModbusLine
                if let existing = lines[port]?.line {
                    line = existing
                } else {
                    do {
                        line = try ModbusLine(endpoint: endpoint, settings: binding.settings)
                    } catch {
                        throw ConnectionError(device: device.name, error.description)
                    }
                    lines[port] = (line, device.name, binding)
                }
                client = LibModbusClient(line: line, unit: binding.unit)
            }
            connected.devices[device.name] = ModbusPointDevice(
                name: device.name, profile: device.profile, client: client,
                retry: binding.settings.retry, clock: context.clock,
                events: context.events)
            connected.endpoints[device.name] = binding.summary
        }
        let result = await body(connected)
        for entry in lines.values { await entry.line.close() }
        return result
    }
}
