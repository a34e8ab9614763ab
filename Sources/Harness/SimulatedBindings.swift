import AcceptanceCore
import InstrumentTransport
import ModbusCore
import ModbusTransport
import RedfishCore
import RedfishServer
import RedfishTransport
import Simulation

/// The simulated rack's devices bound as a station binds real ones: in memory, or served on loopback (Modbus TCP,
/// Redfish over HTTPS with a pinned certificate) for the length of a scope. Only the devices a run uses are served.
enum SimulatedBindings {
    /// What a typical station file says: three tries a second apart.
    static var modbusSettings: ModbusSettings {
        var settings = ModbusSettings()
        settings.retry = SimulatedRack.retryPolicy
        return settings
    }

    static func redfishEndpoint(_ name: String, _ rack: SimulatedRack) -> RedfishEndpoint {
        RedfishEndpoint(
            name: name, baseURL: "memory://\(name)", authentication: .session,
            credentials: RedfishCredentials(
                username: rack.redfish.credentials.username,
                password: rack.redfish.credentials.password),
            timeout: .seconds(5), retry: RetryPolicy(retries: 2, backoff: .seconds(1)))
    }

    /// Every simulated device, answering in memory through the same clients as real ones.
    static func memory(_ rack: SimulatedRack) -> [String: any DeviceBinding] {
        var bindings: [String: any DeviceBinding] = [:]
        for (name, cdu) in rack.cdus {
            bindings[name] = ModbusBinding(line: .memory(cdu), unit: 1, settings: modbusSettings)
        }
        for (name, psu) in rack.psus {
            bindings[name] = ModbusBinding(line: .memory(psu.device), unit: psu.address, settings: modbusSettings)
        }
        for (name, service) in rack.redfish.services {
            bindings[name] = RedfishBinding(carrier: .memory(service, redfishEndpoint(name, rack)))
        }
        for (name, instrument) in rack.instruments {
            bindings[name] = InstrumentBinding(line: .memory(instrument))
        }
        return bindings
    }

    /// Serves `devices` of the simulated rack on loopback, runs `body` with bindings that reach them there, and
    /// stops every server (awaiting each) before returning.
    static func withLoopback<Result: Sendable>(
        _ rack: SimulatedRack, serving devices: [BoundDevice], patience: Duration = .seconds(10),
        _ body: ([BoundDevice]) async -> Result
    ) async throws(HarnessError) -> Result {
        let names = Set(devices.map(\.name))
        var settings = modbusSettings
        settings.responseTimeout = .milliseconds(300)
        var modbusServers: [ModbusTCPServer] = []
        var redfishServer: RedfishHTTPServer?
        func stopAll() async {
            for server in modbusServers { await server.shutdown() }
            await redfishServer?.shutdown()
        }
        var bindings: [String: any DeviceBinding] = [:]
        do throws(HarnessError) {
            // A CDU on its own port; the shelf's supplies behind one port by unit id, like an RS-485 gateway.
            for (name, cdu) in rack.cdus.sorted(by: { $0.key < $1.key }) where names.contains(name) {
                let server = try serve(cdu)
                modbusServers.append(server)
                bindings[name] = ModbusBinding(
                    line: .endpoint(.tcp(host: "127.0.0.1", port: server.port)), unit: 1,
                    settings: settings)
            }
            let supplies = rack.psus.filter { names.contains($0.key) }
            if !supplies.isEmpty {
                let router = UnitRouter(
                    devices: Dictionary(uniqueKeysWithValues: supplies.map { ($0.value.address, $0.value.device) }))
                let server = try serve(router)
                modbusServers.append(server)
                for (name, supply) in supplies {
                    bindings[name] = ModbusBinding(
                        line: .endpoint(.tcp(host: "127.0.0.1", port: server.port)),
                        unit: supply.address, settings: settings)
                }
            }
            let services = rack.redfish.services.filter { names.contains($0.key) }
            if !services.isEmpty {
                let silent = Set(
                    rack.scenario.redfish.faults.compactMap { fault -> String? in
                        if case let .silent(device) = fault { return device }
                        return nil
                    })
                let server: RedfishHTTPServer
                do {
                    server = try await RedfishHTTPServer.start(services: services, silent: silent, tls: true)
                } catch {
                    throw .unsupported("cannot serve the simulated BMCs on loopback: \(error)")
                }
                redfishServer = server
                for name in services.keys {
                    guard let url = server.url(of: name), let certificate = server.certificate else { continue }
                    var endpoint = redfishEndpoint(name, rack)
                    endpoint.baseURL = url
                    endpoint.trust = .pinned(sha256: certificate.sha256)
                    // The simulator shares this process's CPU with the run (and, in CI, with other tests): its answers
                    // can be slow for reasons that say nothing about a BMC, so it gets a station's usual patience.
                    endpoint.timeout = patience
                    endpoint.connectTimeout = max(patience, .seconds(10))
                    bindings[name] = RedfishBinding(carrier: .http(endpoint, credentials: nil))
                }
            }
        } catch {
            await stopAll()
            throw error
        }
        // Instruments have no loopback USB: they answer in memory (`acceptance simulate` serves them over USB).
        for (name, instrument) in rack.instruments where names.contains(name) {
            bindings[name] = InstrumentBinding(line: .memory(instrument))
        }
        let served = devices.compactMap { device -> BoundDevice? in
            bindings[device.name].map { BoundDevice(name: device.name, profile: device.profile, binding: $0) }
        }
        let result = await body(served)
        await stopAll()
        return result
    }

    static func serve(_ backend: any ModbusServerBackend) throws(HarnessError) -> ModbusTCPServer {
        do {
            return try ModbusTCPServer(port: 0, backend: backend)
        } catch {
            throw .unsupported("cannot serve the simulated rack on loopback: \(error)")
        }
    }
}
