import AcceptanceCore
import Foundation
import ModbusTransport
import RedfishTransport
import Simulation

/// How a request reaches the rack's devices: a station's real devices, or the built-in simulated rack in memory or
/// over loopback. The one place where devices are bound; `withDevices` connects them for the length of a scope.
public struct DevicePlan: Sendable {
    public enum Source: Sendable {
        case station(StationConfiguration)
        case simulated(SimulatedRack, SimulatorTransport)
    }

    public let configuration: RackConfiguration
    public let source: Source
    public let clock: any RunClock
    /// The devices this plan connects, bound and checked (credentials read) but not connected.
    public let devices: [BoundDevice]
    /// Settings an operator and an auditor must see, found while binding.
    public let warnings: [String]
    /// How long the run's clients wait for a simulated BMC served on loopback (real time: the simulator shares the
    /// machine with the run, so it gets a station's usual patience unless a test asks for less).
    public var loopbackPatience: Duration = .seconds(10)

    /// The simulated rack, when there is no station.
    public var rack: SimulatedRack? {
        if case let .simulated(rack, _) = source { return rack }
        return nil
    }

    /// Whether the rack is simulated: the built-in simulator, or a station that says its rack is one (`simulator:`).
    public var isSimulated: Bool {
        switch source {
        case let .station(station): station.simulator != nil
        case .simulated: true
        }
    }

    public var stationID: String {
        switch source {
        case let .station(station): station.id
        case .simulated: "simulator@\(ProcessInfo.processInfo.hostName)"
        }
    }

    /// Where each device will be reached, before anything is connected.
    public var endpoints: [String: String] {
        var endpoints: [String: String] = [:]
        for device in devices {
            switch source {
            case .station: endpoints[device.name] = device.binding.summary
            case .simulated(_, .memory): endpoints[device.name] = "simulated, \(device.binding.summary)"
            case .simulated(_, .tcp): endpoints[device.name] = "simulated, \(device.profile.protocolName) on loopback"
            }
        }
        return endpoints
    }

    /// The devices a request names (its station, or the simulated rack of its scenario), for tools that read and
    /// write points outside a run.
    public static func make(
        request: RunRequest, configuration: RackConfiguration, only: Set<String>? = nil
    )
        throws(HarnessError) -> DevicePlan
    {
        if let name = request.station {
            let station = try StationConfiguration.load(named: name, workspace: request.workspace)
            return try make(
                configuration: configuration, source: .station(station),
                clock: WallClock(timeScale: request.timeScale ?? 1), only: only)
        }
        let scenario: Scenario
        let known = Scenario.available(in: request.workspace.scenarios)
        guard known.contains(request.scenario) else {
            throw .unknownName(what: "scenario", name: request.scenario, known: known)
        }
        do {
            scenario = try Scenario.load(named: request.scenario, in: request.workspace.scenarios)
        } catch {
            throw .invalidFiles(error)
        }
        let clock = SimulationClock(timeScale: request.timeScale)
        let manifest = try FirmwareManifests.load(from: request.workspace.fixtures)[scenario.redfish.release]
        let rack: SimulatedRack
        do {
            rack = try SimulatedRack(configuration: configuration, scenario: scenario, clock: clock, manifest: manifest)
        } catch {
            throw .unsupported(error.description)
        }
        return try make(
            configuration: configuration, source: .simulated(rack, request.simulatorTransport), clock: clock,
            only: only)
    }

    /// Binds the devices named in `only` (all the rack's when nil): from the station, or to the simulated rack.
    public static func make(
        configuration: RackConfiguration, source: Source, clock: any RunClock,
        only: Set<String>? = nil, connectors: DeviceConnectors = Transports.connectors
    )
        throws(HarnessError) -> DevicePlan
    {
        let wanted = configuration.rack.devices.map(\.name).filter { only?.contains($0) ?? true }
        var devices: [BoundDevice] = []
        var warnings: [String] = []
        switch source {
        case let .station(station):
            let problems = station.mismatches(with: configuration.rack)
            if let first = problems.first { throw .unsupported(first) }
            for name in wanted {
                guard let binding = station.binding(of: name, in: configuration.rack),
                    let profile = configuration.profile(of: name)
                else { continue }
                guard let connector = connectors.connector(forProtocol: profile.protocolName) else {
                    throw .unsupported(
                        "'\(name)' is a '\(profile.protocolName)' device (\(profile.file)) and this build has no "
                            + "transport for it")
                }
                guard binding.protocolName == profile.protocolName else {
                    throw .unsupported(
                        "station '\(station.id)' binds '\(name)' over \(binding.protocolName), but its profile "
                            + "\(profile.model) is a '\(profile.protocolName)' one")
                }
                do {
                    let (prepared, found) = try connector.prepare(
                        BoundDevice(name: name, profile: profile, binding: binding),
                        source: station.file)
                    devices.append(prepared)
                    warnings += found
                } catch {
                    throw .unsupported(error.description)
                }
            }
        case let .simulated(rack, _):
            let bindings = SimulatedBindings.memory(rack)
            for name in wanted {
                guard let binding = bindings[name], let profile = configuration.profile(of: name) else { continue }
                devices.append(BoundDevice(name: name, profile: profile, binding: binding))
            }
        }
        for connector in connectors.all {
            do {
                try connector.validate(devices.filter { $0.profile.protocolName == connector.syntax.name })
            } catch {
                throw .unsupported(error.description)
            }
        }
        return DevicePlan(
            configuration: configuration, source: source, clock: clock, devices: devices, warnings: warnings)
    }

    /// Connects every device of the plan, runs `body` with them on one bus, and closes every connection, session,
    /// client and loopback server before returning, whatever `body` did.
    public func withDevices<Result: Sendable>(
        events: any TransportEventSink, connectors: DeviceConnectors = Transports.connectors,
        _ body: (DeviceBus, ConnectedDevices) async -> Result
    ) async throws(HarnessError) -> Result {
        try await withDevices(events: events, supervised: [], connectors: connectors) { bus, _, connected in
            await body(bus, connected)
        }
    }

    /// `withDevices`, with a second bus for the safety supervisor: the `supervised` devices on connections of their
    /// own where one connection answers one request at a time (Modbus TCP), so a step waiting on a slow answer never
    /// delays a poll. A device on a serial line (one master) is shared with the steps.
    public func withDevices<Result: Sendable>(
        events: any TransportEventSink, supervised: Set<String>, connectors: DeviceConnectors = Transports.connectors,
        _ body: (DeviceBus, DeviceBus, ConnectedDevices) async -> Result
    ) async throws(HarnessError) -> Result {
        let context = ConnectionContext(clock: clock, events: events, source: stationID)
        let configuration = configuration
        func run(_ bound: [BoundDevice], shown prefix: String?) async throws(ConnectionError) -> Result {
            try await Self.connect(bound, supervised: supervised, connectors: connectors, context: context) {
                connected, watched in
                var shown = connected
                if let prefix { shown.endpoints = connected.endpoints.mapValues { "\(prefix)\($0)" } }
                return await body(
                    DeviceBus(configuration: configuration, devices: connected.devices),
                    DeviceBus(configuration: configuration, devices: watched), shown)
            }
        }
        switch source {
        case .station, .simulated(_, .memory):
            do {
                return try await run(devices, shown: rack != nil ? "simulated, " : nil)
            } catch {
                throw .unsupported(error.description)
            }
        case let .simulated(rack, .tcp):
            let devices = devices
            let outcome = try await SimulatedBindings.withLoopback(rack, serving: devices, patience: loopbackPatience) {
                served in
                do throws(ConnectionError) {
                    return Swift.Result<Result, ConnectionError>.success(try await run(served, shown: "simulated, "))
                } catch {
                    return .failure(error)
                }
            }
            do {
                return try outcome.get()
            } catch {
                throw .unsupported(error.description)
            }
        }
    }

    /// Connects `devices`, then the supervised ones a second time where their binding allows it, and runs `body`
    /// with both; everything is closed before returning.
    static func connect<Result: Sendable>(
        _ devices: [BoundDevice], supervised: Set<String>, connectors: DeviceConnectors, context: ConnectionContext,
        _ body: (ConnectedDevices, [String: any PointDevice]) async -> Result
    ) async throws(ConnectionError) -> Result {
        try await connectors.withDevices(devices, context: context) { connected in
            let shared = connected.devices.filter { supervised.contains($0.key) }
            let second = devices.filter { supervised.contains($0.name) && $0.binding.supervisorConnectsSeparately }
            guard !second.isEmpty else {
                return Swift.Result<Result, ConnectionError>.success(await body(connected, shared))
            }
            do throws(ConnectionError) {
                return .success(
                    try await connectors.withDevices(second, context: context) { own in
                        await body(connected, shared.merging(own.devices) { $1 })
                    })
            } catch {
                return .failure(error)
            }
        }.get()
    }
}
