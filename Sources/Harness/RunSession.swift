import AcceptanceCore
import Foundation
import ModbusTransport
import Simulation

/// How the runner reaches the built-in simulated rack.
public enum SimulatorTransport: String, Sendable, CaseIterable {
    /// Straight to the simulated devices, in memory.
    case memory
    /// Over real Modbus TCP on loopback, through libmodbus on both sides, with the simulation clock still shared.
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
    let servers: [ModbusTCPServer]
    let relay: RetryRelay

    /// Loads the procedure, profiles and scenario or station, resolves parameters, connects nothing yet, and opens
    /// the run folder.
    public static func prepare(_ request: RunRequest, recordToDisk: Bool = true) throws(HarnessError) -> PreparedRun {
        let path = try request.workspace.procedureFile(request.procedure)
        let loader = ProcedureLoader(fixtures: request.workspace.fixtures)
        let checked = loader.check(path: path)
        guard let procedure = checked.procedure, let configuration = checked.configuration, !checked.hasErrors else {
            throw .invalidFiles(DiagnosticsError(checked.diagnostics))
        }
        let parameters: [String: Quantity]
        do {
            parameters = try procedure.resolveParameters(request.parameters)
        } catch {
            throw .parameter(error)
        }
        let known = Set(procedure.inputs.map(\.name))
        for name in request.inputs.keys where !known.contains(name) && name != "rack_serial" {
            throw .input("procedure '\(procedure.id)' asks for no input '\(name)'"
                + (known.isEmpty ? "" : " (it asks for \(known.sorted().joined(separator: ", ")))"))
        }

        let relay = RetryRelay()
        let devices = try ConnectedDevices.connect(configuration: configuration, request: request, relay: relay)
        let servers = devices.servers
        let missing = procedure.devices.filter { devices.bus.devices[$0] == nil }
        if !missing.isEmpty {
            devices.close()
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
                        for server in servers { server.stop() }
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
        return PreparedRun(settings: settings, configuration: configuration, bus: devices.bus, rack: devices.rack,
                           clock: devices.clock, folder: folder,
                           warnings: checked.diagnostics.filter { $0.severity == .warning },
                           endpoints: devices.endpoints, servers: servers, relay: relay)
    }

    /// Whether the devices are the built-in simulator.
    public var isSimulated: Bool { rack != nil }

    /// Runs to the end. Cleanup always runs; the record is written to the run folder.
    public func run(console: any OperatorConsole, observer: any RunObserver, stop: StopController) async -> RunRecord {
        let runner = Runner(settings: settings, bus: bus, clock: clock, console: console, observer: observer,
                            folder: folder, stop: stop)
        relay.attach(runner)
        let record = await runner.run()
        for server in servers { server.stop() }
        return record
    }
}

/// The rack's devices, connected as a request asks: a station's real devices, or the simulated rack in memory or
/// over loopback Modbus TCP. Shared by `run`, `read` and `write`.
public struct ConnectedDevices: Sendable {
    public let bus: DeviceBus
    public let clock: any RunClock
    /// The simulated rack, when there is no station.
    public let rack: SimulatedRack?
    public let endpoints: [String: String]
    public let stationID: String
    public let operatorName: String?
    public let scenario: String?
    public let simulatedInputs: [String: String]
    let servers: [ModbusTCPServer]

    public var isSimulated: Bool { rack != nil }

    /// Stops any loopback servers.
    public func close() {
        for server in servers { server.stop() }
    }

    public static func connect(configuration: RackConfiguration, request: RunRequest, relay: RetryRelay? = nil)
        throws(HarnessError) -> ConnectedDevices {
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
                let retrying = RetryingModbusClient(client, policy: binding.settings.retry, clock: clock) {
                    relay?.report(device: instance.name, $0)
                }
                devices[instance.name] = ModbusPointDevice(name: instance.name, profile: profile, client: retrying)
                endpoints[instance.name] = "Modbus \(client.endpoint)"
            }
            return ConnectedDevices(bus: DeviceBus(configuration: configuration, devices: devices), clock: clock, rack: nil,
                                    endpoints: endpoints, stationID: station.id, operatorName: station.operatorName,
                                    scenario: nil, simulatedInputs: [:], servers: [])
        }
        let scenario: Scenario
        do {
            scenario = try Scenario.load(named: request.scenario, in: request.workspace.scenarios)
        } catch {
            throw .invalidFiles(error)
        }
        let clock = SimulationClock(timeScale: request.timeScale)
        let rack: SimulatedRack
        do {
            rack = try SimulatedRack(configuration: configuration, scenario: scenario, clock: clock) { device, retry in
                relay?.report(device: device, retry)
            }
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
                        let retrying = RetryingModbusClient(client, policy: SimulatedRack.retryPolicy, clock: clock) {
                            relay?.report(device: member.name, $0)
                        }
                        devices[member.name] = ModbusPointDevice(name: member.name, profile: member.profile, client: retrying)
                        endpoints[member.name] = "simulated, Modbus \(client.endpoint)"
                    }
                } catch {
                    for server in servers { server.stop() }
                    throw .unsupported("cannot serve the simulated rack on loopback: \(error)")
                }
            }
            bus = DeviceBus(configuration: configuration, devices: devices)
        }
        return ConnectedDevices(bus: bus, clock: clock, rack: rack, endpoints: endpoints,
                                stationID: "simulator@\(ProcessInfo.processInfo.hostName)", operatorName: nil,
                                scenario: scenario.name, simulatedInputs: scenario.inputs, servers: servers)
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
