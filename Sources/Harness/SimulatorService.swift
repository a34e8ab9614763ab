import AcceptanceCore
import Foundation
import ModbusCore
import ModbusTransport
import RedfishCore
import RedfishServer
import Simulation

/// The simulated rack served over real Modbus TCP on loopback, physics on the wall clock (optionally sped up), for
/// `acceptance simulate`: a stand-in for a real rack that any Modbus client can talk to.
public struct SimulatorService: Sendable {
    public struct Endpoint: Sendable {
        public var device: String
        public var model: String
        public var host: String
        public var port: Int
        public var unit: UInt8
    }

    public let endpoints: [Endpoint]
    public let rack: SimulatedRack
    let servers: [ModbusTCPServer]
    let rtuServer: ModbusRTUServer?
    /// The instruments' profiles, by name.
    let profiles: [String: DeviceProfile]
    /// The BMCs and shelf controllers over HTTP(S), when asked for.
    public private(set) var redfish: RedfishHTTPServer?
    /// The bench instruments as raw SCPI sockets, when asked for.
    public private(set) var instruments: [SCPISocketServer] = []

    /// One served instrument as an emulated USB device presents it: the USB identity a station binds it by, and the
    /// SCPI socket the device forwards its messages to.
    public struct BenchInstrument: Sendable, Codable {
        public var name: String
        public var profile: String
        /// `2a8d:0101`.
        public var usb: String
        public var serial: String
        public var scpi: String
    }

    /// Serves every simulated instrument as raw SCPI on consecutive loopback ports from `firstPort` (0: free ports).
    public mutating func serveInstruments(firstPort: Int) async throws(HarnessError) {
        for (offset, (_, instrument)) in rack.instruments.sorted(by: { $0.key < $1.key }).enumerated() {
            do {
                instruments.append(
                    try await SCPISocketServer.start(instrument, port: firstPort == 0 ? 0 : firstPort + offset))
            } catch {
                for server in instruments { await server.shutdown() }
                instruments = []
                throw error
            }
        }
    }

    /// The served instruments, for the emulated USB devices (`--bench-out`) and the station file.
    public var bench: [BenchInstrument] {
        instruments.map { server in
            let instrument = server.instrument
            let profile = profiles[instrument.name]
            return BenchInstrument(
                name: instrument.name, profile: profile?.model ?? "",
                usb: profile?.scpiSettings.usbID ?? "1209:0001", serial: instrument.identity.serial,
                scpi: "127.0.0.1:\(server.port)")
        }
    }

    /// Serves every simulated BMC and shelf controller on consecutive ports from `firstPort` (0: free ports), over
    /// HTTPS with a certificate made now (its fingerprint is what a station pins), or plain HTTP.
    public mutating func serveRedfish(firstPort: Int, tls: Bool) async throws(HarnessError) {
        let silent = Set(
            rack.scenario.redfish.faults.compactMap { fault -> String? in
                if case let .silent(device) = fault { return device }
                return nil
            })
        do {
            redfish = try await RedfishHTTPServer.start(
                services: rack.redfish.services, silent: silent, tls: tls,
                firstPort: firstPort)
        } catch {
            throw .unsupported(error.description)
        }
    }

    /// A station file that reaches this simulator as it is serving now (every port it chose), for `simulate
    /// --station-out`: the CDU and supplies over Modbus TCP, every BMC by URL with the certificate file as its CA.
    /// Hazards are confirmed without a person when nobody is at a terminal (nothing here can leak or carry current).
    /// - Parameter credentialsFile: a `username:password` file (mode 0600) the BMCs' logins are read from.
    /// - Parameter instrumentsOverUSB: bind the instruments by USB identity (for emulated USB devices forwarding to
    ///   the SCPI sockets) rather than by their sockets.
    public func stationFile(
        id: String = "simulator", rack rackID: String = "gb200-nvl72", caFile: String?, credentialsFile: String,
        instrumentsOverUSB: Bool = false
    ) -> String {
        var text = """
            # Written by `acceptance simulate --station-out`: reaches the simulator on this machine, as it serves now.
            station: \(id)
            description: The built-in simulated rack, served by acceptance simulate on 127.0.0.1.
            rack: \(rackID)
            simulator: acceptance simulate on this machine (pid \(getpid()))
            confirm_hazards_automatically: the rack is `acceptance simulate` on this machine
            devices:

            """
        for endpoint in endpoints where !endpoint.host.hasPrefix("rtu:") {
            text +=
                "  \(endpoint.device):\n    modbus: {tcp: \(endpoint.host):\(endpoint.port), unit: \(endpoint.unit), "
                + "response_timeout: 1 s, retries: 3, backoff: 1 s}\n"
        }
        if !bench.isEmpty {
            // On their SCPI sockets, or over USB through emulated devices (umockdev) that forward to those sockets.
            let due = Timestamp.string(Date().addingTimeInterval(365 * 86_400)).prefix(10)
            text += "instruments:\n"
            for instrument in bench {
                let place = instrumentsOverUSB ? "usb: \(instrument.usb)" : "tcp: \(instrument.scpi)"
                text += "  \(instrument.name):\n    scpi: {\(place), serial: \(instrument.serial)}\n"
                text += "    calibration: {certificate: SIMULATED-\(instrument.serial), due: \(due)}\n"
            }
        }
        guard let redfish else { return text }
        text += "groups:\n"
        for (group, prefix) in [("compute_trays", "compute"), ("switch_trays", "switch"), ("power_shelves", "shelf")] {
            let urls = redfish.listeners.filter { $0.device.hasPrefix(prefix) }.sorted { $0.device < $1.device }
            guard !urls.isEmpty else { continue }
            text += "  \(group):\n    redfish:\n      urls: [\(urls.map(\.url).joined(separator: ", "))]\n"
            text += "      auth: session\n      credentials_file: \(credentialsFile)\n"
            if let caFile, redfish.certificate != nil { text += "      ca_file: \(caFile)\n" }
            text += "      timeout: 5 s\n      retries: 2\n      backoff: 500 ms\n"
        }
        return text
    }

    /// Serves a DMTF mockup folder (as published, `index.json` per resource) on one port, read-only.
    public static func serveMockup(
        _ folder: String, port: Int, tls: Bool, username: String, password: String
    )
        async throws(HarnessError) -> RedfishHTTPServer
    {
        let tree: MockupTree
        do {
            tree = try MockupTree(folder: folder)
        } catch {
            throw .unsupported(error.description)
        }
        let service = SimulatedRedfishService(
            tree: tree, clock: WallClock(),
            behaviour: RedfishServiceBehaviour(username: username, password: password))
        do {
            return try await RedfishHTTPServer.start(services: ["mockup": service], tls: tls, firstPort: port)
        } catch {
            throw .unsupported(error.description)
        }
    }

    /// Starts a server for each simulated Modbus device, on consecutive ports from `port`.
    /// With `rtuDevice`, the power shelf's supplies are served there (Modbus RTU, 19200 baud) instead of over TCP.
    /// - Parameter fitting: models fitted instead of the rack profile's, by device or group (a station's `model:`), so
    ///   the simulator stands in for that station's rack.
    public static func start(
        workspace: Workspace, rackID: String = "gb200-nvl72", scenario name: String, port: Int,
        timeScale: Double = 1, rtuDevice: String? = nil, fitting models: [String: String] = [:],
        redfishCredentials: (username: String, password: String)? = nil
    ) throws(HarnessError) -> SimulatorService {
        let configuration: RackConfiguration
        let scenario: Scenario
        do {
            configuration = try RackConfiguration.load(
                rackID: rackID, fixtures: workspace.fixtures, protocols: Transports.protocols,
                models: models)
            scenario = try Scenario.load(named: name, in: workspace.scenarios)
        } catch {
            throw .invalidFiles(error)
        }
        let clock = WallClock(timeScale: timeScale)
        let manifest = try FirmwareManifests.load(from: workspace.fixtures)[scenario.redfish.release]
        let rack: SimulatedRack
        do {
            rack = try SimulatedRack(
                configuration: configuration, scenario: scenario, clock: clock, manifest: manifest,
                redfishCredentials: redfishCredentials)
        } catch {
            throw .unsupported(error.description)
        }
        var servers: [ModbusTCPServer] = []
        var endpoints: [Endpoint] = []
        var lines: [(backend: any ModbusServerBackend, members: [(String, String, UInt8)])] =
            rack.cdus.sorted { $0.key < $1.key }.map { ($0.value, [($0.key, $0.value.profile.model, UInt8(1))]) }
        var rtuServer: ModbusRTUServer?
        if !rack.psus.isEmpty {
            // The shelf's supplies share one line, answering by unit id: an RS-485 bus, or a gateway's TCP port.
            let ordered = rack.psus.sorted { $0.value.address < $1.value.address }
            let router = UnitRouter(
                devices: Dictionary(uniqueKeysWithValues: ordered.map { ($0.value.address, $0.value.device) }))
            if let rtuDevice {
                do {
                    rtuServer = try ModbusRTUServer(device: rtuDevice, backend: router)
                } catch {
                    throw .unsupported("cannot serve the power shelf on \(rtuDevice): \(error)")
                }
                for (name, entry) in ordered {
                    endpoints.append(
                        Endpoint(
                            device: name, model: entry.device.profile.model, host: "rtu:\(rtuDevice)",
                            port: 0, unit: entry.address))
                }
            } else {
                lines.append((router, ordered.map { ($0.key, $0.value.device.profile.model, $0.value.address) }))
            }
        }
        for (offset, line) in lines.enumerated() {
            do {
                let server = try ModbusTCPServer(
                    host: "127.0.0.1", port: port == 0 ? 0 : port + offset, backend: line.backend)
                servers.append(server)
                for (name, model, unit) in line.members {
                    endpoints.append(
                        Endpoint(device: name, model: model, host: server.host, port: server.port, unit: unit))
                }
            } catch {
                for server in servers { server.stop() }
                throw .unsupported("cannot serve the simulated rack: \(error)")
            }
        }
        var profiles: [String: DeviceProfile] = [:]
        for name in rack.instruments.keys { profiles[name] = configuration.profile(of: name) }
        return SimulatorService(
            endpoints: endpoints, rack: rack, servers: servers, rtuServer: rtuServer, profiles: profiles)
    }

    /// Stops every server and returns when each has closed its port or line.
    public func shutdown() async {
        for server in instruments { await server.shutdown() }
        for server in servers { await server.shutdown() }
        await rtuServer?.shutdown()
        await redfish?.shutdown()
    }
}
