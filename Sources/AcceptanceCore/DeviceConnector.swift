import Yams

/// How one device is reached over its transport at a station: a host and port with a unit id, a BMC's URL with
/// where its credentials are, or a simulated device in memory. Each transport defines its own.
public protocol DeviceBinding: Sendable {
    /// The device protocol it reaches the device with (`modbus`): a profile of that protocol is needed.
    var protocolName: String { get }
    /// Where the device is, for the console header and the record: `Modbus 10.0.4.20:502 unit 1`.
    var summary: String { get }
    /// Whether the safety supervisor opens a connection of its own to the device, beside the run's: where one
    /// connection answers one request at a time (Modbus TCP), so a step waiting on a slow answer would hold a poll
    /// up. A client that pools connections (Redfish over HTTP) already sends a poll on another connection; a serial
    /// line has one master. Those are shared.
    var supervisorConnectsSeparately: Bool { get }
}

extension DeviceBinding {
    public var supervisorConnectsSeparately: Bool { false }
}

/// A device of the rack, the profile that describes it and the binding that reaches it.
public struct BoundDevice: Sendable {
    public var name: String
    public var profile: DeviceProfile
    public var binding: any DeviceBinding

    public init(name: String, profile: DeviceProfile, binding: any DeviceBinding) {
        self.name = name
        self.profile = profile
        self.binding = binding
    }
}

/// What connecting needs besides the devices: the run's clock (retries back off on it) and where transport events go.
public struct ConnectionContext: Sendable {
    public var clock: any RunClock
    public var events: any TransportEventSink
    /// Where the bindings came from, for messages: a station file, or the simulator.
    public var source: String

    public init(clock: any RunClock, events: any TransportEventSink, source: String) {
        self.clock = clock
        self.events = events
        self.source = source
    }
}

/// Devices of one or more transports, connected for the length of a scope.
public struct ConnectedDevices: Sendable {
    public var devices: [String: any PointDevice]
    /// Where each device is reached, as the record shows it.
    public var endpoints: [String: String]
    /// Settings an operator and an auditor must see (certificate verification off, clear-text credentials).
    public var warnings: [String]
    /// The instruments among them, as they identified themselves when connected.
    public var instruments: [String: InstrumentRecord] = [:]

    public init(devices: [String: any PointDevice] = [:], endpoints: [String: String] = [:], warnings: [String] = []) {
        self.devices = devices
        self.endpoints = endpoints
        self.warnings = warnings
    }

    public mutating func merge(_ other: ConnectedDevices) {
        devices.merge(other.devices) { $1 }
        endpoints.merge(other.endpoints) { $1 }
        warnings += other.warnings
        instruments.merge(other.instruments) { $1 }
    }
}

/// A binding a transport cannot use: what is wrong and with which device.
public struct ConnectionError: Error, Sendable, CustomStringConvertible {
    public var device: String?
    public var message: String

    public init(device: String?, _ message: String) {
        self.device = device
        self.message = message
    }

    public var description: String { device.map { "device '\($0)': \(message)" } ?? message }
}

/// A transport as a station uses it: how a station file binds a device over it, and how its devices are connected for
/// the length of a scope. Each transport module has one; the harness lists them in one place.
public protocol DeviceConnector: Sendable {
    /// How the transport's devices are written in device profiles.
    var syntax: any DeviceProtocolSyntax { get }
    /// The key of its settings under a device or group in a station file (`modbus:`); the protocol's name.
    var stationKey: String { get }
    /// One device's binding from a station file.
    func parseBinding(_ node: Node, device: String, file: String, reader: inout YAMLReader) -> (any DeviceBinding)?
    /// A group's bindings, one per member in member order; the default refuses groups.
    func parseGroupBinding(_ node: Node, group: String, file: String, reader: inout YAMLReader) -> [any DeviceBinding]?
    /// Checks a binding before anything is connected (credentials that can be read), returning the binding to
    /// connect with and warnings to show. The default accepts it as it is.
    func prepare(_ device: BoundDevice, source: String) throws(ConnectionError) -> (BoundDevice, warnings: [String])
    /// Checks the devices a run will connect over this transport together (two on one port must agree on its
    /// settings), before anything is opened. The default accepts them.
    func validate(_ devices: [BoundDevice]) throws(ConnectionError)
    /// Connects `devices`, runs `body` with them, and closes every connection, session and client it opened before
    /// returning, whatever `body` did.
    func withDevices<Result: Sendable>(
        _ devices: [BoundDevice], context: ConnectionContext,
        _ body: (ConnectedDevices) async -> Result
    ) async throws(ConnectionError) -> Result
}

extension DeviceConnector {
    public var stationKey: String { syntax.name }

    public func parseGroupBinding(
        _ node: Node, group: String, file: String, reader: inout YAMLReader
    )
        -> [any DeviceBinding]?
    {
        reader.error("'\(stationKey)' cannot bind a whole group; bind each member under 'devices'", at: node)
        return nil
    }

    public func prepare(
        _ device: BoundDevice, source: String
    ) throws(ConnectionError) -> (BoundDevice, warnings: [String]) {
        (device, [])
    }

    public func validate(_ devices: [BoundDevice]) throws(ConnectionError) {}
}

/// The transports a build knows, as the harness lists them.
public struct DeviceConnectors: Sendable {
    public let all: [any DeviceConnector]

    public init(_ all: [any DeviceConnector]) {
        self.all = all
    }

    /// The profile syntaxes of every transport, for loading profiles.
    public var protocols: DeviceProtocols { DeviceProtocols(all.map(\.syntax)) }

    public func connector(forProtocol name: String) -> (any DeviceConnector)? { all.first { $0.syntax.name == name } }
    public func connector(forStationKey key: String) -> (any DeviceConnector)? { all.first { $0.stationKey == key } }

    /// Connects every device through its transport's connector, runs `body` with all of them, and closes everything
    /// before returning. A device whose profile's protocol has no connector is an error before anything connects.
    public func withDevices<Result: Sendable>(
        _ devices: [BoundDevice], context: ConnectionContext,
        _ body: (ConnectedDevices) async -> Result
    ) async throws(ConnectionError) -> Result {
        var byConnector: [(any DeviceConnector, [BoundDevice])] = []
        for device in devices {
            guard let index = all.firstIndex(where: { $0.syntax.name == device.profile.protocolName }) else {
                throw ConnectionError(
                    device: device.name, "no transport in this build speaks '\(device.profile.protocolName)'")
            }
            if let slot = byConnector.firstIndex(where: { $0.0.syntax.name == all[index].syntax.name }) {
                byConnector[slot].1.append(device)
            } else {
                byConnector.append((all[index], [device]))
            }
        }
        return try await Self.nest(byConnector[...], context: context, connected: ConnectedDevices(), body)
    }

    /// Each transport's scope inside the previous one, so all are open while `body` runs and each closes after it.
    static func nest<Result: Sendable>(
        _ remaining: ArraySlice<(any DeviceConnector, [BoundDevice])>, context: ConnectionContext,
        connected: ConnectedDevices, _ body: (ConnectedDevices) async -> Result
    ) async throws(ConnectionError) -> Result {
        guard let (connector, devices) = remaining.first else { return await body(connected) }
        let inner = try await connector.withDevices(devices, context: context) { (these: ConnectedDevices) in
            var all = connected
            all.merge(these)
            do throws(ConnectionError) {
                return Swift.Result<Result, ConnectionError>.success(
                    try await nest(remaining.dropFirst(), context: context, connected: all, body))
            } catch {
                return .failure(error)
            }
        }
        return try inner.get()
    }
}
