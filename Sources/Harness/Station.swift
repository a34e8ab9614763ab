import AcceptanceCore
import RedfishCore
import ModbusCore
import Foundation
import ModbusTransport
import RedfishTransport
import Yams

/// A test station: which transport reaches each device instance of the rack, with timeouts and retries, plus the
/// station's identity and default operator. `Fixtures/stations/<name>.yaml`.
public struct StationConfiguration: Sendable {
    public struct ModbusBinding: Sendable {
        public var endpoint: ModbusEndpoint
        public var unit: UInt8
        public var settings: ModbusSettings
    }

    /// Where a BMC's user name and password come from: never the station file itself.
    public enum CredentialSource: Sendable, Hashable {
        /// Environment variables holding the user name and the password.
        case environment(username: String, password: String)
        /// A file, readable by its owner only, holding `username:password` on one line.
        case file(String)
    }

    public struct RedfishBinding: Sendable {
        /// The endpoint, without credentials (they are read when connecting).
        public var endpoint: RedfishEndpoint
        public var credentials: CredentialSource?
    }

    public var id: String
    public var description: String
    public var operatorName: String?
    public var rack: String?
    public var devices: [String: ModbusBinding]
    public var redfish: [String: RedfishBinding] = [:]
    /// Group sizes of the rack this station tests (`power_shelves: 6`).
    public var groupCounts: [String: Int] = [:]
    /// The station's Ed25519 private key (PKCS#8 PEM, mode 0600) that signs every bundle it produces.
    public var signingKey: String?
    /// Where `acceptance archive` keeps bundles by default.
    public var archive: String?
    public var file: String

    static let modbusKeys = ["tcp", "rtu", "baud", "parity", "data_bits", "stop_bits", "rs485", "unit",
                             "response_timeout", "byte_timeout", "retries", "backoff"]

    public static func load(path: String) throws(DiagnosticsError) -> StationConfiguration {
        var sink = DiagnosticSink(file: path, text: (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
        let source = YAMLSource.load(path: path, into: &sink)
        var reader = YAMLReader(sink: sink)
        var station = StationConfiguration(id: "", description: "", operatorName: nil, rack: nil, devices: [:], file: path)
        if let root = source?.treeForChecking, let entries = reader.mapping(root, "station") {
            reader.rejectUnknownKeys(entries, allowed: ["station", "description", "operator", "rack", "devices", "groups",
                                                        "settings", "signing_key", "archive"],
                                     in: "station")
            for (key, _, value) in entries {
                switch key {
                case "station": station.id = reader.scalar(value, "station") ?? ""
                case "signing_key": station.signingKey = reader.scalar(value, "signing_key").map { relative($0, to: path) }
                case "archive": station.archive = reader.scalar(value, "archive").map { relative($0, to: path) }
                case "description": station.description = reader.scalar(value, "description") ?? ""
                case "operator": station.operatorName = reader.scalar(value, "operator")
                case "rack": station.rack = reader.scalar(value, "rack")
                case "devices":
                    for (name, keyNode, device) in reader.mapping(value, "devices") ?? [] {
                        guard let fields = reader.mapping(device, "device '\(name)'") else { continue }
                        reader.rejectUnknownKeys(fields, allowed: ["modbus", "redfish"], in: "device '\(name)'")
                        if let redfish = fields.first(where: { $0.key == "redfish" })?.value {
                            if let binding = parseRedfish(redfish, device: name, url: nil, reader: &reader) {
                                station.redfish[name] = binding
                            }
                            continue
                        }
                        guard let modbus = fields.first(where: { $0.key == "modbus" })?.value else {
                            reader.error("device '\(name)' needs a transport: modbus or redfish", at: keyNode)
                            continue
                        }
                        if let binding = parseModbus(modbus, device: name, reader: &reader) {
                            station.devices[name] = binding
                        }
                    }
                case "settings":
                    for (name, _, node) in reader.mapping(value, "settings") ?? [] {
                        if let count = reader.integer(node, name) { station.groupCounts[name] = count }
                    }
                case "groups":
                    // Bound after loading, once the rack's member names are known: kept as nodes here.
                    for (name, keyNode, node) in reader.mapping(value, "groups") ?? [] {
                        guard let fields = reader.mapping(node, "group '\(name)'") else { continue }
                        reader.rejectUnknownKeys(fields, allowed: ["redfish"], in: "group '\(name)'")
                        guard let redfish = fields.first(where: { $0.key == "redfish" })?.value else {
                            reader.error("group '\(name)' needs a transport: redfish", at: keyNode)
                            continue
                        }
                        station.groupBindings[name] = parseRedfishGroup(redfish, group: name, reader: &reader)
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

    /// A group's Redfish settings with one URL per member, in member order.
    public var groupBindings: [String: [RedfishBinding]] = [:]

    static let redfishKeys = ["url", "auth", "username_env", "password_env", "credentials_file", "ca_file", "pin_sha256",
                              "insecure", "timeout", "retries", "backoff"]

    static func parseRedfish(_ node: Node, device: String, url: String?, reader: inout YAMLReader,
                             extraKeys: [String] = []) -> RedfishBinding? {
        guard let fields = reader.mapping(node, "redfish") else { return nil }
        reader.rejectUnknownKeys(fields, allowed: redfishKeys + extraKeys, in: "redfish settings of '\(device)'")
        func field(_ key: String) -> Node? { fields.first { $0.key == key }?.value }
        func text(_ key: String) -> String? { field(key).flatMap { reader.scalar($0, key) } }
        guard let base = url ?? text("url") else {
            reader.error("'\(device)' needs 'url: https://host[:port]'", at: node)
            return nil
        }
        guard let components = URLComponents(string: base), ["http", "https"].contains(components.scheme ?? ""),
              components.host?.isEmpty == false, components.path.isEmpty || components.path == "/",
              components.user == nil, components.password == nil, components.query == nil, components.fragment == nil else {
            reader.error("'\(base)' is not a BMC address: write https://host or https://host:port (no user, password, "
                + "path or query: credentials come from username_env/password_env or credentials_file)", at: field("url") ?? node)
            return nil
        }
        var endpoint = RedfishEndpoint(name: device, baseURL: base)
        if let auth = text("auth") {
            if let value = RedfishAuthentication(rawValue: auth) { endpoint.authentication = value } else {
                reader.error("auth must be session, basic or none", at: field("auth") ?? node)
            }
        }
        var trusts: [RedfishTrust] = []
        if let path = text("ca_file") { trusts.append(.caFile(path)) }
        if let pin = text("pin_sha256") {
            if RedfishEndpoint.normalisedFingerprint(pin).count == 64 { trusts.append(.pinned(sha256: pin)) } else {
                reader.error("pin_sha256 is the certificate's SHA-256: 64 hex digits, colons allowed", at: field("pin_sha256") ?? node)
            }
        }
        if let node = field("insecure"), reader.bool(node, "insecure") == true { trusts.append(.insecure) }
        if trusts.count > 1 {
            reader.error("give one of ca_file, pin_sha256 or insecure: true", at: node)
        }
        endpoint.trust = trusts.first ?? .system
        if !endpoint.isHTTPS, trusts.first != nil, let node = field("pin_sha256") ?? field("ca_file") ?? field("insecure") {
            reader.error("certificate settings need an https:// url", at: node)
        }
        func duration(_ key: String) -> Duration? {
            guard let node = field(key), let quantity = reader.quantity(node, key) else { return nil }
            guard let duration = quantity.duration, duration > .zero || (key == "backoff" && duration == .zero) else {
                reader.error("\(key) must be a time above zero, such as '5 s'", at: node)
                return nil
            }
            return duration
        }
        if let value = duration("timeout") { endpoint.timeout = value }
        if let value = duration("backoff") { endpoint.retry.backoff = value }
        if let node = field("retries"), let retries = reader.integer(node, "retries") {
            if (0...10).contains(retries) { endpoint.retry.retries = retries } else { reader.error("retries must be 0 to 10", at: node) }
        }
        var credentials: CredentialSource?
        switch (text("username_env"), text("password_env"), text("credentials_file")) {
        case let (user?, password?, nil): credentials = .environment(username: user, password: password)
        case let (nil, nil, file?): credentials = .file(file)
        case (nil, nil, nil):
            if endpoint.authentication != .none {
                reader.error("'\(device)' needs credentials: username_env and password_env (environment variables), "
                    + "or credentials_file", at: node)
            }
        default:
            reader.error("give username_env and password_env together, or credentials_file alone", at: node)
        }
        return RedfishBinding(endpoint: endpoint, credentials: credentials)
    }

    static func parseRedfishGroup(_ node: Node, group: String, reader: inout YAMLReader) -> [RedfishBinding] {
        guard let fields = reader.mapping(node, "redfish") else { return [] }
        func field(_ key: String) -> Node? { fields.first { $0.key == key }?.value }
        var urls: [String] = []
        if let list = field("urls") {
            urls = reader.sequence(list, "urls")?.compactMap { reader.scalar($0, "url") } ?? []
        } else if let base = field("url").flatMap({ reader.scalar($0, "url") }), let first = field("first_port") {
            guard let port = reader.integer(first, "first_port"), (1...65000).contains(port) else {
                reader.error("first_port must be 1 to 65000", at: first)
                return []
            }
            // Member n at first_port + n - 1; the count is the rack's, so make plenty and let binding trim.
            urls = (0..<99).map { "\(base):\(port + $0)" }
        } else {
            reader.error("group '\(group)' needs 'urls' (one per member, in order) or 'url' with 'first_port'", at: node)
            return []
        }
        var bindings: [RedfishBinding] = []
        for (index, url) in urls.enumerated() {
            let name = "\(group)[\(index + 1)]"
            if let binding = parseRedfish(node, device: name, url: url, reader: &reader, extraKeys: ["urls", "first_port"]) {
                bindings.append(binding)
            }
            if index == 0, reader.sink.hasErrors { break }
        }
        return bindings
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

import Synchronization

/// Reads BMC credentials from where a station says they are, never from the station file itself.
enum Credentials {
    static func read(_ source: StationConfiguration.CredentialSource, station: String, device: String)
        throws(HarnessError) -> RedfishCredentials
    {
        switch source {
        case let .environment(userVariable, passwordVariable):
            let environment = ProcessInfo.processInfo.environment
            guard let user = environment[userVariable], !user.isEmpty else {
                throw .unsupported("device '\(device)': environment variable \(userVariable) (username_env in \(station)) is not set")
            }
            guard let password = environment[passwordVariable], !password.isEmpty else {
                throw .unsupported("device '\(device)': environment variable \(passwordVariable) (password_env in \(station)) is not set")
            }
            return RedfishCredentials(username: user, password: password)
        case let .file(path):
            var info = stat()
            guard stat(path, &info) == 0 else {
                throw .unsupported("device '\(device)': cannot read the credentials file \(path) (credentials_file in \(station))")
            }
            guard info.st_mode & 0o077 == 0 else {
                throw .unsupported("device '\(device)': credentials file \(path) is readable by others "
                    + "(mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it")
            }
            guard let data = FileManager.default.contents(atPath: path),
                  let line = String(data: data, encoding: .utf8)?.split(whereSeparator: \.isNewline).first,
                  let colon = line.firstIndex(of: ":") else {
                throw .unsupported("device '\(device)': credentials file \(path) must hold one line 'username:password'")
            }
            return RedfishCredentials(username: String(line[..<colon]), password: String(line[line.index(after: colon)...]))
        }
    }
}

/// Every firmware manifest in `Fixtures/firmware/`, by release name.
enum FirmwareManifests {
    static func load(from fixtures: String) throws(HarnessError) -> [String: FirmwareManifest] {
        let directory = "\(fixtures)/firmware"
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".yaml") }
        var manifests: [String: FirmwareManifest] = [:]
        for file in files.sorted() {
            do {
                let manifest = try FirmwareManifest.load(path: "\(directory)/\(file)")
                manifests[manifest.release] = manifest
            } catch {
                throw .invalidFiles(error)
            }
        }
        return manifests
    }
}

/// A path from a station file, relative to the file's folder unless absolute.
func relative(_ path: String, to file: String) -> String {
    path.hasPrefix("/") ? path : ((file as NSString).deletingLastPathComponent as NSString).appendingPathComponent(path)
}
