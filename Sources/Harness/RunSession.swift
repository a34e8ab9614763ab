import AcceptanceCore
import RedfishCore
import ModbusCore
import Foundation
import AsyncHTTPClient
import ModbusTransport
import RedfishServer
import Crypto
import RedfishTransport
import Reports
import Simulation

/// This harness's version, written into every record and bundle.
public enum HarnessVersion {
    public static let current = "0.5.0"

    /// SHA-256 of the running executable, so a record names exactly the build that produced it.
    public static let binarySHA256: String? = {
        try? ReportBundle.sha256(file: "/proc/self/exe")
    }()
}

/// How the runner reaches the built-in simulated rack.
public enum SimulatorTransport: String, Sendable, CaseIterable {
    /// Straight to the simulated devices, in memory.
    case memory
    /// Over real Modbus TCP and Redfish over HTTPS (pinned) on loopback, through libmodbus and AsyncHTTPClient, with
    /// the simulation clock still shared.
    case tcp
}

/// Everything the `run` command was asked to do.
public struct RunRequest: Sendable {
    public var procedure: String
    public var workspace: Workspace
    /// `name=value` overrides, unparsed.
    public var parameters: [String: String] = [:]
    public var inputs: [String: String] = [:]
    public var operatorName: String?
    public var scenario = "nominal"
    /// Simulated seconds per wall second; nil runs simulated time as fast as possible. With a station, it speeds
    /// the runner's clock up to match a simulator running at the same scale.
    public var timeScale: Double?
    public var reportsDirectory = "reports"
    /// A station file (or the name of one in `Fixtures/stations`): real devices instead of the simulated rack.
    public var station: String?
    public var simulatorTransport = SimulatorTransport.memory
    /// The Ed25519 private key that signs the bundle (a station's `signing_key` otherwise).
    public var signingKey: String?

    public init(procedure: String, workspace: Workspace) {
        self.procedure = procedure
        self.workspace = workspace
    }
}

/// A run that has been fully loaded and checked, with its devices, but has not touched the rack yet.
public struct PreparedRun: Sendable {
    public let settings: RunSettings
    public let configuration: RackConfiguration
    public let bus: DeviceBus
    /// The simulated rack, when the run is against the simulator (nil with a station).
    public let rack: SimulatedRack?
    public let clock: any RunClock
    public let folder: RunFolder?
    /// Warnings found while loading (shown, but not fatal).
    public let warnings: [Diagnostic]
    /// Where each device is reached, for the console header.
    public let endpoints: [String: String]
    let devices: ConnectedDevices
    let transportEvents: TransportEventLog
    /// What signs the bundle, if anything; and the files its attestation names by digest.
    let signingKeyPath: String?
    let bundleInputs: BundleInputs

    /// Loads the procedure, profiles and scenario or station, resolves parameters, connects nothing yet, and opens
    /// the run folder.
    public static func prepare(_ request: RunRequest, recordToDisk: Bool = true) async throws(HarnessError) -> PreparedRun {
        let path = try request.workspace.procedureFile(request.procedure)
        let loader = ProcedureLoader(fixtures: request.workspace.fixtures, protocols: Transports.protocols,
                                     groupCounts: try ConnectedDevices.groupCounts(for: request))
        let checked = loader.check(path: path)
        guard let procedure = checked.procedure, let configuration = checked.configuration, !checked.hasErrors else {
            throw .invalidFiles(DiagnosticsError(checked.diagnostics))
        }
        let parameters: [String: Quantity]
        let texts: [String: String]
        do {
            parameters = try procedure.resolveParameters(request.parameters)
            texts = try procedure.resolveTextParameters(request.parameters)
        } catch {
            throw .parameter(error)
        }
        let manifests = try FirmwareManifests.load(from: request.workspace.fixtures)
        // The signing key is checked before anything runs: a key readable by others is refused, not used.
        var keyPath = request.signingKey
        var configurationFile: String?
        if let station = request.station {
            let loaded = try ConnectedDevices.loadStation(station, workspace: request.workspace)
            keyPath = keyPath ?? loaded.signingKey
            configurationFile = loaded.file
        } else {
            configurationFile = "\(request.workspace.scenarios)/\(request.scenario).yaml"
        }
        if let keyPath {
            do {
                _ = try SigningKeys.loadPrivate(keyPath)
            } catch {
                throw .unsupported("signing key: \(error)")
            }
        }
        let known = Set(procedure.inputs.map(\.name))
        for name in request.inputs.keys where !known.contains(name) && name != "rack_serial" {
            throw .input("procedure '\(procedure.id)' asks for no input '\(name)'"
                + (known.isEmpty ? "" : " (it asks for \(known.sorted().joined(separator: ", ")))"))
        }

        let transportEvents = TransportEventLog()
        var needed = procedure.devices
        for group in procedure.deviceGroups { needed += configuration.rack.group(named: group)?.members ?? [] }
        let devices = try await ConnectedDevices.connect(configuration: configuration, request: request, events: transportEvents,
                                                         manifests: manifests, only: Set(needed))
        let missing = needed.filter { devices.bus.devices[$0] == nil }
        if !missing.isEmpty {
            await devices.close()
            throw .unsupported("procedure '\(procedure.id)' uses \(missing.joined(separator: ", ")), which station "
                + "'\(devices.stationID)' does not connect")
        }
        var runID = RunSettings.makeRunID(procedure: procedure.id)
        var folder: RunFolder?
        if recordToDisk {
            // Run ids carry a random suffix; on the rare clash, draw another rather than share a folder.
            for attempt in 1...5 where folder == nil {
                do {
                    folder = try RunFolder(reportsDirectory: request.reportsDirectory, runID: runID)
                } catch {
                    if attempt == 5 {
                        await devices.close()
                        throw .record(error)
                    }
                    runID = RunSettings.makeRunID(procedure: procedure.id)
                }
            }
        }
        var settings = RunSettings(runID: runID, procedure: procedure, parameters: parameters, inputs: request.inputs,
                                   station: devices.stationID, operatorName: request.operatorName ?? devices.operatorName,
                                   scenario: devices.scenario)
        settings.simulatedInputs = devices.simulatedInputs
        settings.textParameters = texts
        settings.firmwareManifests = manifests
        settings.warnings = devices.warnings.filter { warning in
            needed.contains(String(warning.prefix { $0 != ":" }))
        }
        let used = devices.endpoints.filter { needed.contains($0.key) }
        settings.endpoints = used
        settings.harness = RunRecord.HarnessInfo(version: HarnessVersion.current, binarySHA256: HarnessVersion.binarySHA256)
        if keyPath == nil {
            settings.warnings.append("UNSIGNED: no signing key (station signing_key or --signing-key); the report bundle "
                + "will carry no signature and cannot be verified or archived")
        }
        return PreparedRun(settings: settings, configuration: configuration, bus: devices.bus, rack: devices.rack,
                           clock: devices.clock, folder: folder,
                           warnings: checked.diagnostics.filter { $0.severity == .warning },
                           endpoints: used, devices: devices, transportEvents: transportEvents, signingKeyPath: keyPath,
                           bundleInputs: BundleInputs(procedureFile: path, configurationFile: configurationFile,
                                                      harnessVersion: HarnessVersion.current,
                                                      harnessBinarySHA256: HarnessVersion.binarySHA256))
    }

    /// Transport warnings the operator must see before the run (certificate verification off).
    public var transportWarnings: [String] { settings.warnings }

    /// Whether the devices are the built-in simulator.
    public var isSimulated: Bool { rack != nil }

    /// What became of the run's report bundle.
    public enum BundleOutcome: Sendable {
        case signed(folder: String, keyID: String)
        case unsigned(folder: String)
        case failed(String)
    }

    /// Runs to the end, then turns the run folder into a report bundle (signed if there is a key).
    public func runAndBundle(console: any OperatorConsole, observer: any RunObserver, stop: StopController) async
        -> (RunRecord, BundleOutcome?) {
        let record = await run(console: console, observer: observer, stop: stop)
        guard let folder else { return (record, nil) }
        var signer: BundleSigner?
        if let signingKeyPath {
            do {
                let key = try SigningKeys.loadPrivate(signingKeyPath)
                signer = BundleSigner(key: key, identity: "station \(record.station)"
                    + (record.operator.map { ", operator \($0)" } ?? ""))
            } catch {
                return (record, .failed("signing key: \(error)"))
            }
        }
        do {
            try ReportBundle.make(folder: folder.path, record: record, inputs: bundleInputs, signer: signer)
        } catch {
            return (record, .failed(error.description))
        }
        if let signer { return (record, .signed(folder: folder.path, keyID: SigningKeys.keyID(signer.key.publicKey))) }
        return (record, .unsigned(folder: folder.path))
    }

    /// Runs to the end. Cleanup always runs; the record is written to the run folder. (No bundle: see
    /// `runAndBundle`.)
    public func run(console: any OperatorConsole, observer: any RunObserver, stop: StopController) async -> RunRecord {
        let hands = rack.map { SimulatedTechnician(rack: $0.redfish, next: observer) }
        let runner = Runner(settings: settings, bus: bus, clock: clock, console: console, observer: hands ?? observer,
                            folder: folder, stop: stop, transportEvents: transportEvents)
        let record = await runner.run()
        await devices.close()
        return record
    }

    /// Releases devices without running (a run that was prepared and then abandoned).
    public func discard() async { await devices.close() }
}

/// The rack's devices, connected as a request asks: a station's real devices, or the simulated rack in memory or
/// over loopback Modbus TCP. Shared by `run`, `read` and `write`.
public struct ConnectedDevices: Sendable {
    public internal(set) var bus: DeviceBus
    public let clock: any RunClock
    /// The simulated rack, when there is no station.
    public let rack: SimulatedRack?
    public internal(set) var endpoints: [String: String]
    public let stationID: String
    public let operatorName: String?
    public let scenario: String?
    public let simulatedInputs: [String: String]
    let servers: [ModbusTCPServer]
    var redfishClients: [RedfishClient] = []
    var httpClient: HTTPClient?
    var redfishServer: RedfishHTTPServer?
    /// Settings an operator and an auditor must see (certificate verification off).
    public var warnings: [String] = []

    public var isSimulated: Bool { rack != nil }

    /// Ends Redfish sessions, shuts the HTTP client down, and stops any loopback servers.
    public func close() async {
        await withTaskGroup(of: Void.self) { group in
            for client in redfishClients { group.addTask { await client.close() } }
        }
        try? await httpClient?.shutdown()
        redfishServer?.stop()
        for server in servers { server.stop() }
    }

    /// The group sizes the rack under test has: the station's settings, or the scenario's power shelves.
    public static func groupCounts(for request: RunRequest) throws(HarnessError) -> [String: Int] {
        if let stationName = request.station {
            return try loadStation(stationName, workspace: request.workspace).groupCounts
        }
        let scenario: Scenario
        do {
            scenario = try Scenario.load(named: request.scenario, in: request.workspace.scenarios)
        } catch {
            throw .invalidFiles(error)
        }
        return scenario.redfish.powerShelves.map { ["power_shelves": $0] } ?? [:]
    }

    /// - Parameter only: the devices to connect over Redfish, when not all of them (a run connects what its procedure
    ///   uses, so a Modbus-only procedure needs no BMC credentials).
    public static func connect(configuration: RackConfiguration, request: RunRequest,
                               events: any TransportEventSink = DiscardingTransportEvents(),
                               manifests: [String: FirmwareManifest] = [:], only: Set<String>? = nil)
        async throws(HarnessError) -> ConnectedDevices {
        if let stationName = request.station {
            let station = try loadStation(stationName, workspace: request.workspace)
            if let stationRack = station.rack, stationRack != configuration.rack.id {
                throw .unsupported("station '\(station.id)' is for rack '\(stationRack)', not '\(configuration.rack.id)'")
            }
            let clock = WallClock(timeScale: request.timeScale ?? 1)
            var devices: [String: any PointDevice] = [:]
            var endpoints: [String: String] = [:]
            for (name, _) in station.devices where !configuration.rack.devices.contains(where: { $0.name == name }) {
                throw .unsupported("station '\(station.id)' binds '\(name)', which rack '\(configuration.rack.id)' does not have")
            }
            // Devices the station does not bind are not connected; a procedure that uses one is refused up front.
            // Devices on one serial port or behind one TCP gateway share its connection, each with its unit id.
            // Lines are keyed by the port itself (device path, host:port): one bus, one connection.
            var lines: [String: (line: ModbusLine, owner: String, binding: StationConfiguration.ModbusBinding)] = [:]
            for instance in configuration.rack.devices {
                guard let binding = station.devices[instance.name], let profile = configuration.profiles[instance.model]
                else { continue }
                let port: String = switch binding.endpoint {
                case let .tcp(host, port): "\(host):\(port)"
                case let .rtu(device, _, _, _, _): device
                }
                let client: LibModbusClient
                do {
                    if let existing = lines[port] {
                        guard existing.binding.endpoint == binding.endpoint, existing.binding.settings == binding.settings else {
                            throw HarnessError.unsupported("'\(instance.name)' and '\(existing.owner)' share \(port) but "
                                + "give it different settings (\(binding.endpoint) vs \(existing.binding.endpoint)); "
                                + "one bus has one set of line settings and timeouts")
                        }
                    }
                    let line = try lines[port]?.line ?? ModbusLine(endpoint: binding.endpoint, settings: binding.settings)
                    if lines[port] == nil { lines[port] = (line, instance.name, binding) }
                    client = LibModbusClient(line: line, unit: binding.unit)
                } catch let error as HarnessError {
                    throw error
                } catch {
                    throw .unsupported("device '\(instance.name)': \(error)")
                }
                devices[instance.name] = ModbusPointDevice(name: instance.name, profile: profile, client: client,
                                                           retry: binding.settings.retry, clock: clock, events: events)
                endpoints[instance.name] = "Modbus \(client.endpoint)"
            }
            for (name, _) in station.redfish where !configuration.rack.devices.contains(where: { $0.name == name }) {
                throw .unsupported("station '\(station.id)' binds '\(name)', which rack '\(configuration.rack.id)' does not have")
            }
            var bindings = station.redfish.filter { only?.contains($0.key) ?? true }
            for (group, addresses) in station.groupBindings {
                guard let members = configuration.rack.group(named: group)?.members else {
                    throw .unsupported("station '\(station.id)' binds group '\(group)', which rack '\(configuration.rack.id)' does not have")
                }
                guard members.count <= addresses.count else {
                    throw .unsupported("station '\(station.id)' gives \(station.groupBindings[group, default: []].count) "
                        + "addresses for \(group), which has \(members.count) members")
                }
                for (index, member) in members.enumerated() where bindings[member] == nil && only?.contains(member) ?? true {
                    var binding = addresses[index]
                    binding.endpoint.name = member
                    bindings[member] = binding
                }
            }
            var connected = ConnectedDevices(bus: DeviceBus(configuration: configuration, devices: devices), clock: clock,
                                             rack: nil, endpoints: endpoints, stationID: station.id,
                                             operatorName: station.operatorName, scenario: nil, simulatedInputs: [:],
                                             servers: [])
            if !bindings.isEmpty {
                let http = RedfishHTTP.makeClient()
                connected.httpClient = http
                var all = devices
                for (name, binding) in bindings.sorted(by: { $0.key < $1.key }) {
                    guard let profile = configuration.profile(of: name), profile.protocolName == RedfishProfileSyntax().name else {
                        await connected.close()
                        throw .unsupported("station '\(station.id)' binds '\(name)' over Redfish, but its profile is not a Redfish one")
                    }
                    var endpoint = binding.endpoint
                    if let source = binding.credentials {
                        do throws(HarnessError) {
                            endpoint.credentials = try Credentials.read(source, station: station.file, device: name)
                        } catch {
                            await connected.close()
                            throw error
                        }
                    }
                    let transport: AsyncHTTPTransport
                    do {
                        transport = try AsyncHTTPTransport(endpoint: endpoint, client: http)
                    } catch {
                        await connected.close()
                        throw .unsupported("device '\(name)': \(RedfishError(bmc: name, method: .get, url: endpoint.baseURL, kind: error.kind))")
                    }
                    let client = RedfishClient(endpoint: endpoint, transport: transport, clock: clock, events: events)
                    connected.redfishClients.append(client)
                    all[name] = RedfishPointDevice(name: name, profile: profile, client: client)
                    connected.endpoints[name] = "Redfish \(endpoint.summary)"
                    if !endpoint.isHTTPS, endpoint.authentication != .none {
                        connected.warnings.append("\(name): credentials go in clear text over http:// (\(station.file))")
                    }
                    if endpoint.trust == .insecure {
                        connected.warnings.append("\(name): certificate verification is OFF (insecure: true in \(station.file)); "
                            + "anyone on the path can pose as this BMC")
                    }
                }
                connected.bus = DeviceBus(configuration: configuration, devices: all)
            }
            return connected
        }
        let scenario: Scenario
        do {
            scenario = try Scenario.load(named: request.scenario, in: request.workspace.scenarios)
        } catch {
            throw .invalidFiles(error)
        }
        let clock = SimulationClock(timeScale: request.timeScale)
        let known = manifests.isEmpty ? try FirmwareManifests.load(from: request.workspace.fixtures) : manifests
        let rack: SimulatedRack
        do {
            rack = try SimulatedRack(configuration: configuration, scenario: scenario, clock: clock,
                                     manifest: known[scenario.redfish.release], events: events)
        } catch {
            throw .unsupported(error.description)
        }
        var endpoints: [String: String] = [:]
        var servers: [ModbusTCPServer] = []
        let bus: DeviceBus
        switch request.simulatorTransport {
        case .memory:
            bus = rack.bus
            for name in Array(rack.cdus.keys) + Array(rack.psus.keys) { endpoints[name] = "simulated, in memory" }
        case .tcp:
            var devices: [String: any PointDevice] = [:]
            var settings = ModbusSettings()
            settings.responseTimeout = .milliseconds(300)
            // A CDU on its own port; the shelf's supplies behind one port by unit id, like an RS-485 gateway.
            var lines: [(backend: any ModbusServerBackend, members: [(name: String, profile: DeviceProfile, unit: UInt8)])] =
                rack.cdus.sorted { $0.key < $1.key }.map { ($0.value, [($0.key, $0.value.profile, UInt8(1))]) }
            if !rack.psus.isEmpty {
                let ordered = rack.psus.sorted { $0.value.address < $1.value.address }
                lines.append((UnitRouter(devices: Dictionary(uniqueKeysWithValues: ordered.map { ($0.value.address, $0.value.device) })),
                              ordered.map { ($0.key, $0.value.device.profile, $0.value.address) }))
            }
            for line in lines {
                do {
                    let server = try ModbusTCPServer(port: 0, backend: line.backend)
                    servers.append(server)
                    let shared = try ModbusLine(endpoint: .tcp(host: "127.0.0.1", port: server.port), settings: settings)
                    for member in line.members {
                        let client = LibModbusClient(line: shared, unit: member.unit)
                        devices[member.name] = ModbusPointDevice(name: member.name, profile: member.profile, client: client,
                                                                 retry: SimulatedRack.retryPolicy, clock: clock, events: events)
                        endpoints[member.name] = "simulated, Modbus \(client.endpoint)"
                    }
                } catch {
                    for server in servers { server.stop() }
                    throw .unsupported("cannot serve the simulated rack on loopback: \(error)")
                }
            }
            bus = DeviceBus(configuration: configuration, devices: devices)
        }
        var connected = ConnectedDevices(bus: bus, clock: clock, rack: rack, endpoints: endpoints,
                                         stationID: "simulator@\(ProcessInfo.processInfo.hostName)", operatorName: nil,
                                         scenario: scenario.name, simulatedInputs: scenario.inputs, servers: servers)
        try await connected.attachSimulatedRedfish(rack: rack, configuration: configuration, transport: request.simulatorTransport,
                                                   clock: clock, events: events)
        return connected
    }

    /// Connects the simulated BMCs and shelves through the real client: in memory, or over HTTPS on loopback with a
    /// certificate made at start and pinned by its fingerprint.
    mutating func attachSimulatedRedfish(rack: SimulatedRack, configuration: RackConfiguration, transport: SimulatorTransport,
                                         clock: any RunClock, events: any TransportEventSink) async throws(HarnessError) {
        let names = configuration.rack.devices.filter {
            configuration.profiles[$0.model]?.protocolName == RedfishProfileSyntax().name
        }.map(\.name)
        let services = rack.redfish.services.filter { names.contains($0.key) }
        guard !services.isEmpty else { return }
        let credentials = RedfishCredentials(username: rack.redfish.credentials.username,
                                             password: rack.redfish.credentials.password)
        var devices = bus.devices
        if transport == .tcp {
            let silent = Set(rack.scenario.redfish.faults.compactMap { fault -> String? in
                if case let .silent(device) = fault { return device }
                return nil
            })
            do {
                redfishServer = try await RedfishHTTPServer.start(services: services, silent: silent, tls: true)
            } catch {
                await close()
                throw .unsupported("cannot serve the simulated BMCs on loopback: \(error)")
            }
            httpClient = RedfishHTTP.makeClient()
        }
        for name in names {
            guard let service = services[name], let profile = configuration.profile(of: name) else { continue }
            var endpoint = RedfishEndpoint(name: name, baseURL: "memory://\(name)", authentication: .session,
                                           credentials: credentials, timeout: .seconds(5),
                                           retry: RetryPolicy(retries: 2, backoff: .seconds(1)))
            let carrier: any RedfishHTTPTransport
            if let server = redfishServer, let http = httpClient, let url = server.url(of: name), let certificate = server.certificate {
                endpoint.baseURL = url
                endpoint.trust = .pinned(sha256: certificate.sha256)
                endpoint.timeout = .seconds(2)
                do {
                    carrier = try AsyncHTTPTransport(endpoint: endpoint, client: http)
                } catch {
                    await close()
                    throw .unsupported("device '\(name)': \(error.kind)")
                }
                endpoints[name] = "simulated, Redfish \(endpoint.summary)"
            } else {
                carrier = InMemoryRedfishTransport(service: service, label: name)
                endpoints[name] = "simulated, Redfish in memory"
            }
            let client = RedfishClient(endpoint: endpoint, transport: carrier, clock: clock, events: events)
            redfishClients.append(client)
            devices[name] = RedfishPointDevice(name: name, profile: profile, client: client)
        }
        bus = DeviceBus(configuration: configuration, devices: devices)
    }

    static func loadStation(_ name: String, workspace: Workspace) throws(HarnessError) -> StationConfiguration {
        let path = name.contains("/") || name.hasSuffix(".yaml") ? name : "\(workspace.fixtures)/stations/\(name).yaml"
        guard FileManager.default.fileExists(atPath: path) else {
            throw .unsupported("no station file \(path)")
        }
        do {
            return try StationConfiguration.load(path: path)
        } catch {
            throw .invalidFiles(error)
        }
    }
}

/// In simulation, does what a confirmed prompt asked the technician to do (`manual_action: remove-supply 1`), before
/// the next step looks, then passes every event on.
struct SimulatedTechnician: RunObserver {
    let rack: SimulatedRedfishRack
    let next: any RunObserver

    func handle(_ event: RunEvent) {
        if case let .stepFinished(step, record) = event, record.verdict == .pass, let action = step.manualAction {
            rack.perform(manualAction: action)
        }
        next.handle(event)
    }
}
