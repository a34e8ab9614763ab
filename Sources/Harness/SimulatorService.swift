import AcceptanceCore
import Foundation
import ModbusTransport
import Simulation

/// The simulated rack served over real Modbus TCP on loopback, physics on the wall clock (optionally sped up), for
/// `acceptance simulate`: a stand-in for a real rack that any Modbus client can talk to.
public struct SimulatorService: Sendable {
    public struct Endpoint: Sendable {
        public var device: String
        public var model: String
        public var host: String
        public var port: Int
    }

    public let endpoints: [Endpoint]
    public let rack: SimulatedRack
    let servers: [ModbusTCPServer]

    /// Starts a server for each simulated Modbus device, on consecutive ports from `port`.
    public static func start(workspace: Workspace, rackID: String = "gb200-nvl72", scenario name: String, port: Int,
                             timeScale: Double = 1) throws(HarnessError) -> SimulatorService {
        let configuration: RackConfiguration
        let scenario: Scenario
        do {
            configuration = try RackConfiguration.load(rackID: rackID, fixtures: workspace.fixtures)
            scenario = try Scenario.load(named: name, in: workspace.scenarios)
        } catch {
            throw .invalidFiles(error)
        }
        let clock = WallClock(timeScale: timeScale)
        let rack: SimulatedRack
        do {
            rack = try SimulatedRack(configuration: configuration, scenario: scenario, clock: clock)
        } catch {
            throw .unsupported(error.description)
        }
        var servers: [ModbusTCPServer] = []
        var endpoints: [Endpoint] = []
        for (offset, (name, cdu)) in rack.cdus.sorted(by: { $0.key < $1.key }).enumerated() {
            do {
                let server = try ModbusTCPServer(host: "127.0.0.1", port: port == 0 ? 0 : port + offset, backend: cdu)
                servers.append(server)
                endpoints.append(Endpoint(device: name, model: cdu.profile.model, host: server.host, port: server.port))
            } catch {
                for server in servers { server.stop() }
                throw .unsupported("cannot serve '\(name)': \(error)")
            }
        }
        return SimulatorService(endpoints: endpoints, rack: rack, servers: servers)
    }

    public func stop() {
        for server in servers { server.stop() }
    }
}
