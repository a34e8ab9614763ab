import AcceptanceCore
import AsyncHTTPClient
import Foundation
import RedfishCore
import Yams

/// Where a BMC's user name and password come from: never the station file itself.
public enum CredentialSource: Sendable, Hashable {
    /// Environment variables holding the user name and the password.
    case environment(username: String, password: String)
    /// A file, readable by its owner only, holding `username:password` on one line.
    case file(String)
    /// Given as they are (the simulator's own BMCs).
    case given(RedfishCredentials)
}

/// How a station reaches a BMC or power-shelf controller: its URL and trust, with where the credentials are; or a
/// simulated service in memory.
public struct RedfishBinding: DeviceBinding {
    public enum Carrier: Sendable {
        /// HTTP(S) through AsyncHTTPClient; credentials are read when the run is prepared.
        case http(RedfishEndpoint, credentials: CredentialSource?)
        /// A service answering in memory (a simulated BMC), through the same client logic.
        case memory(any RedfishService, RedfishEndpoint)
    }

    public var carrier: Carrier

    public init(carrier: Carrier) {
        self.carrier = carrier
    }

    public var endpoint: RedfishEndpoint {
        switch carrier {
        case let .http(endpoint, _), let .memory(_, endpoint): endpoint
        }
    }

    public var protocolName: String { RedfishProfileSyntax().name }

    public var summary: String {
        switch carrier {
        case let .http(endpoint, _): "Redfish \(endpoint.summary)"
        case .memory: "Redfish in memory"
        }
    }
}

/// Redfish as a station uses it: `redfish: {url: https://10.0.5.17, pin_sha256: ..., username_env: ...}` per device,
/// or per group with one URL per member. All of a run's BMCs share one HTTP client, shut down when the run ends,
/// after every session has been deleted.
public struct RedfishConnector: DeviceConnector {
    public init() {}

    public var syntax: any DeviceProtocolSyntax { RedfishProfileSyntax() }

    public func parseBinding(
        _ node: Node, device: String, file: String, reader: inout YAMLReader
    ) -> (any DeviceBinding)? {
        parseRedfish(node, device: device, url: nil, reader: &reader)
    }

    static let stationKeys = [
        "url", "auth", "username_env", "password_env", "credentials_file", "ca_file", "pin_sha256",
        "insecure", "timeout", "connect_timeout", "retries", "backoff",
    ]

    func parseRedfish(
        _ node: Node, device: String, url: String?, reader: inout YAMLReader,
        extraKeys: [String] = []
    ) -> RedfishBinding? {
        guard let fields = reader.mapping(node, "redfish") else { return nil }
        reader.rejectUnknownKeys(fields, allowed: Self.stationKeys + extraKeys, in: "redfish settings of '\(device)'")
        func field(_ key: String) -> Node? { fields.first { $0.key == key }?.value }
        func text(_ key: String) -> String? { field(key).flatMap { reader.scalar($0, key) } }
        guard let base = url ?? text("url") else {
            reader.error("'\(device)' needs 'url: https://host[:port]'", at: node)
            return nil
        }
        guard let components = URLComponents(string: base), ["http", "https"].contains(components.scheme ?? ""),
            components.host?.isEmpty == false, components.path.isEmpty || components.path == "/",
            components.user == nil, components.password == nil, components.query == nil, components.fragment == nil
        else {
            reader.error(
                "'\(base)' is not a BMC address: write https://host or https://host:port (no user, password, "
                    + "path or query: credentials come from username_env/password_env or credentials_file)",
                at: field("url") ?? node)
            return nil
        }
        var endpoint = RedfishEndpoint(name: device, baseURL: base)
        if let auth = text("auth") {
            if let value = RedfishAuthentication(rawValue: auth) {
                endpoint.authentication = value
            } else {
                reader.error("auth must be session, basic or none", at: field("auth") ?? node)
            }
        }
        var trusts: [RedfishTrust] = []
        if let path = text("ca_file") { trusts.append(.caFile(path)) }
        if let pin = text("pin_sha256") {
            if RedfishEndpoint.normalisedFingerprint(pin).count == 64 {
                trusts.append(.pinned(sha256: pin))
            } else {
                reader.error(
                    "pin_sha256 is the certificate's SHA-256: 64 hex digits, colons allowed",
                    at: field("pin_sha256") ?? node)
            }
        }
        if let node = field("insecure"), reader.bool(node, "insecure") == true { trusts.append(.insecure) }
        if trusts.count > 1 {
            reader.error("give one of ca_file, pin_sha256 or insecure: true", at: node)
        }
        endpoint.trust = trusts.first ?? .system
        if !endpoint.isHTTPS, trusts.first != nil,
            let node = field("pin_sha256") ?? field("ca_file") ?? field("insecure")
        {
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
        if let value = duration("connect_timeout") { endpoint.connectTimeout = value }
        if let value = duration("backoff") { endpoint.retry.backoff = value }
        if let node = field("retries"), let retries = reader.integer(node, "retries") {
            if (0...10).contains(retries) {
                endpoint.retry.retries = retries
            } else {
                reader.error("retries must be 0 to 10", at: node)
            }
        }
        var credentials: CredentialSource?
        switch (text("username_env"), text("password_env"), text("credentials_file")) {
        case let (user?, password?, nil): credentials = .environment(username: user, password: password)
        case let (nil, nil, file?): credentials = .file(file)
        case (nil, nil, nil):
            if endpoint.authentication != .none {
                reader.error(
                    "'\(device)' needs credentials: username_env and password_env (environment variables), "
                        + "or credentials_file", at: node)
            }
        default:
            reader.error("give username_env and password_env together, or credentials_file alone", at: node)
        }
        return RedfishBinding(carrier: .http(endpoint, credentials: credentials))
    }

    public func parseGroupBinding(
        _ node: Node, group: String, file: String, reader: inout YAMLReader
    )
        -> [any DeviceBinding]?
    {
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
            reader.error(
                "group '\(group)' needs 'urls' (one per member, in order) or 'url' with 'first_port'", at: node)
            return []
        }
        var bindings: [any DeviceBinding] = []
        for (index, url) in urls.enumerated() {
            let name = "\(group)[\(index + 1)]"
            if let binding = parseRedfish(
                node, device: name, url: url, reader: &reader, extraKeys: ["urls", "first_port"])
            {
                bindings.append(binding)
            }
            if index == 0, reader.sink.hasErrors { break }
        }
        return bindings
    }

    /// Reads the credentials now (a missing variable stops the run before anything moves), and warns about settings
    /// an auditor must see.
    public func prepare(
        _ device: BoundDevice, source: String
    ) throws(ConnectionError) -> (BoundDevice, warnings: [String]) {
        guard let binding = device.binding as? RedfishBinding else {
            throw ConnectionError(device: device.name, "is not bound over Redfish")
        }
        guard case .http(var endpoint, let credentials) = binding.carrier else { return (device, []) }
        endpoint.name = device.name
        switch credentials {
        case let .given(given)?: endpoint.credentials = given
        case let location?: endpoint.credentials = try Credentials.read(location, station: source, device: device.name)
        case nil: break
        }
        var warnings: [String] = []
        if !endpoint.isHTTPS, endpoint.authentication != .none {
            warnings.append("\(device.name): credentials go in clear text over http:// (\(source))")
        }
        if endpoint.trust == .insecure {
            warnings.append(
                "\(device.name): certificate verification is OFF (insecure: true in \(source)); "
                    + "anyone on the path can pose as this BMC")
        }
        var prepared = device
        prepared.binding = RedfishBinding(carrier: .http(endpoint, credentials: nil))
        return (prepared, warnings)
    }

    /// A client for one device: over the shared HTTP client, or in memory.
    static func client(
        for device: BoundDevice, http: HTTPClient?, context: ConnectionContext
    )
        throws(ConnectionError) -> RedfishClient
    {
        guard let binding = device.binding as? RedfishBinding else {
            throw ConnectionError(device: device.name, "is not bound over Redfish")
        }
        var endpoint = binding.endpoint
        endpoint.name = device.name
        let transport: any RedfishHTTPTransport
        switch binding.carrier {
        case let .memory(service, _):
            transport = InMemoryRedfishTransport(service: service, label: device.name)
        case .http:
            guard let http else { throw ConnectionError(device: device.name, "no HTTP client") }
            do {
                transport = try AsyncHTTPTransport(endpoint: endpoint, client: http)
            } catch {
                throw ConnectionError(
                    device: device.name,
                    RedfishError(
                        bmc: device.name, method: .get,
                        url: endpoint.baseURL, kind: error.kind
                    ).detail)
            }
        }
        return RedfishClient(endpoint: endpoint, transport: transport, clock: context.clock, events: context.events)
    }

    public func withDevices<Result: Sendable>(
        _ devices: [BoundDevice], context: ConnectionContext,
        _ body: (ConnectedDevices) async -> Result
    ) async throws(ConnectionError) -> Result {
        let needsHTTP = devices.contains { device in
            if case .http? = (device.binding as? RedfishBinding)?.carrier { return true }
            return false
        }
        if needsHTTP {
            return try await RedfishHTTP.withClient { http in
                await Self.withClients(devices, http: http, context: context, body)
            }.get()
        }
        return try await Self.withClients(devices, http: nil, context: context, body).get()
    }

    /// Makes a client per device, runs `body`, and closes every client (deleting its session) before returning.
    static func withClients<Result: Sendable>(
        _ devices: [BoundDevice], http: HTTPClient?, context: ConnectionContext,
        _ body: (ConnectedDevices) async -> Result
    ) async -> Swift.Result<Result, ConnectionError> {
        var clients: [RedfishClient] = []
        var connected = ConnectedDevices()
        var failure: ConnectionError?
        for device in devices {
            do throws(ConnectionError) {
                let client = try Self.client(for: device, http: http, context: context)
                clients.append(client)
                connected.devices[device.name] = RedfishPointDevice(
                    name: device.name, profile: device.profile, client: client)
                connected.endpoints[device.name] = device.binding.summary
            } catch {
                failure = error
                break
            }
        }
        // Sessions are deleted before the HTTP client that carries them is shut down.
        func closeAll() async {
            await withTaskGroup(of: Void.self) { group in
                for client in clients { group.addTask { await client.close() } }
            }
        }
        if let failure {
            await closeAll()
            return .failure(failure)
        }
        let result = await body(connected)
        await closeAll()
        return .success(result)
    }
}

/// Reads BMC credentials from where a station says they are, never from the station file itself.
enum Credentials {
    static func read(
        _ source: CredentialSource, station: String, device: String
    )
        throws(ConnectionError) -> RedfishCredentials
    {
        switch source {
        case let .given(credentials):
            return credentials
        case let .environment(userVariable, passwordVariable):
            let environment = ProcessInfo.processInfo.environment
            guard let user = environment[userVariable], !user.isEmpty else {
                throw ConnectionError(
                    device: device, "environment variable \(userVariable) (username_env in \(station)) is not set")
            }
            guard let password = environment[passwordVariable], !password.isEmpty else {
                throw ConnectionError(
                    device: device, "environment variable \(passwordVariable) (password_env in \(station)) is not set")
            }
            return RedfishCredentials(username: user, password: password)
        case let .file(path):
            var info = stat()
            guard stat(path, &info) == 0 else {
                throw ConnectionError(
                    device: device, "cannot read the credentials file \(path) (credentials_file in \(station))")
            }
            guard info.st_mode & 0o077 == 0 else {
                throw ConnectionError(
                    device: device,
                    "credentials file \(path) is readable by others "
                        + "(mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it")
            }
            guard let data = FileManager.default.contents(atPath: path),
                let line = String(data: data, encoding: .utf8)?.split(whereSeparator: \.isNewline).first,
                let colon = line.firstIndex(of: ":")
            else {
                throw ConnectionError(device: device, "credentials file \(path) must hold one line 'username:password'")
            }
            return RedfishCredentials(
                username: String(line[..<colon]), password: String(line[line.index(after: colon)...]))
        }
    }
}
