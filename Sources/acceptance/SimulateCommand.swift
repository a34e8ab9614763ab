import AcceptanceCore
import ArgumentParser
import Foundation
import Harness
import RedfishServer

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Serve the simulated rack over Modbus TCP and Redfish (HTTPS) on 127.0.0.1 until Ctrl-C.",
        discussion: """
            Physics run on the wall clock (sped up with --time-scale). Point a station file at the printed endpoints:
              acceptance simulate
              acceptance run leak-test --station Fixtures/stations/sim-loopback.yaml --param hold=30s

            The BMCs and shelf controllers answer Redfish on consecutive ports from --redfish-port, over HTTPS with a
            certificate made at start (its SHA-256 is printed: pin it). They accept the user and password in
            ACCEPTANCE_BMC_USER / ACCEPTANCE_BMC_PASSWORD, or admin and a password printed at start.
            --mockup DIR serves a DMTF mockup folder instead, on one port.
            """
    )

    @OptionGroup var workspace: WorkspaceOptions

    @Option(help: "Simulation scenario from Fixtures/scenarios.", completion: .custom(Completions.scenarios))
    var scenario = "nominal"

    @Option(help: "First TCP port (one per simulated device; 0 picks free ports).")
    var port = 1502

    @Option(help: "Simulated seconds per wall second.")
    var timeScale = 1.0

    @Option(help: "Serve the power shelf's supplies on this serial device or pty (Modbus RTU, units 192-197).")
    var rtu: String?

    // Unconditional, so `--redfish-port -1` is read as a value, not as an unknown option.
    @Option(
        parsing: .unconditional,
        help: "First Redfish port (one per BMC and shelf, in name order; 0 picks free ports; -1 serves none).")
    var redfishPort = 8443

    // Unconditional, so `--scpi-port -1` is read as a value.
    @Option(
        parsing: .unconditional,
        help: """
            First port for the bench instruments (DMM, reference gauge) as raw SCPI sockets, like LAN instruments' \
            port 5025 (one per instrument, in name order; 0 picks free ports; -1 serves none).
            """)
    var scpiPort = 5025

    @Flag(
        help: """
            In the --station-out file, bind the instruments by USB identity, for emulated USB devices (umockdev) \
            that forward to the SCPI sockets, instead of by their sockets.
            """)
    var benchUSB = false

    @Option(help: "Write the served instruments (name, USB vendor:product, serial, SCPI socket) here, as JSON.")
    var benchOut: String?

    @Flag(help: "Serve Redfish over plain HTTP instead of HTTPS.")
    var plainHTTP = false

    @Option(help: "Write the simulator's certificate (PEM) here, for a station's ca_file.")
    var caOut = "/tmp/acceptance-simulator-ca.pem"

    @Option(
        help: """
            Write a station file that reaches this simulator (every port it chose) here: \
            acceptance run leak-test --station FILE.
            """)
    var stationOut: String?

    @Option(help: "Serve this DMTF mockup folder (index.json per resource) on --redfish-port instead of the rack.")
    var mockup: String?

    @Option(
        help: "Stand in for this station's rack: its rack profile and the models it says are fitted.",
        completion: .custom(Completions.stations))
    var station: String?

    @Option(
        name: .customLong("model"), help: "Fit another model: DEVICE=MODEL (a profile in Fixtures/devices). Repeatable."
    )
    var models: [String] = []

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
        guard (-1...65000).contains(redfishPort) else { throw ValidationError("--redfish-port must be -1 to 65000") }
        guard (-1...65000).contains(scpiPort) else { throw ValidationError("--scpi-port must be -1 to 65000") }
        if benchOut != nil, scpiPort < 0 { throw ValidationError("--bench-out needs --scpi-port (0 picks free ports)") }
        guard (0.001...10_000).contains(timeScale) else { throw ValidationError("--time-scale must be 0.001 to 10000") }
        _ = try FittedModels.parse(models)
    }

    func run() async throws {
        let location = Workspace.locate(procedures: workspace.procedures, fixtures: workspace.fixtures)
        let environment = ProcessInfo.processInfo.environment
        let username = environment["ACCEPTANCE_BMC_USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "admin"
        let given = environment["ACCEPTANCE_BMC_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
        let password = given ?? "sim-" + String(UUID().uuidString.prefix(13)).lowercased()
        if let mockup {
            let server: RedfishHTTPServer
            do {
                server = try await SimulatorService.serveMockup(
                    mockup, port: max(redfishPort, 0), tls: !plainHTTP,
                    username: username, password: password)
            } catch {
                ConsoleOutput.standardError.write("error: \(error)\n")
                throw ExitCode(Verdict.error.exitCode)
            }
            let stop = StopController()
            let trap = SignalTrap(stop: stop, style: ConsoleStyle.detect(), service: "the mockup server")
            var text = "Mockup \(mockup) on \(server.listeners.first?.url ?? "?")\n"
            text += "  user \(username), password \(given == nil ? password : "from ACCEPTANCE_BMC_PASSWORD")\n"
            if let certificate = server.certificate { text += "  certificate SHA-256 \(certificate.sha256)\n" }
            ConsoleOutput.standardOutput.write(text + "Ctrl-C to stop.\n")
            _ = await stop.waitForStop()
            await server.shutdown()
            withExtendedLifetime(trap) {}
            return
        }
        var service: SimulatorService
        var rackID = "gb200-nvl72"
        do {
            var fitted: [String: String] = [:]
            if let station {
                let loaded = try StationConfiguration.load(named: station, workspace: location)
                rackID = loaded.rack ?? rackID
                fitted = loaded.models
            }
            fitted.merge(try FittedModels.parse(models)) { $1 }
            service = try SimulatorService.start(
                workspace: location, rackID: rackID, scenario: scenario, port: port,
                timeScale: timeScale, rtuDevice: rtu, fitting: fitted,
                redfishCredentials: (username, password))
            if redfishPort >= 0 { try await service.serveRedfish(firstPort: redfishPort, tls: !plainHTTP) }
            if scpiPort >= 0 { try await service.serveInstruments(firstPort: scpiPort) }
        } catch {
            ConsoleOutput.standardError.write("error: \(error)\n")
            throw ExitCode(Verdict.error.exitCode)
        }
        let style = ConsoleStyle.detect()
        let stop = StopController()
        let trap = SignalTrap(stop: stop, style: style, service: "the simulator")
        var text =
            "Simulated rack \(rackID), scenario '\(scenario)', physics at \(Quantity.format(timeScale))× real time\n"
        for endpoint in service.endpoints {
            let place =
                endpoint.host.hasPrefix("rtu:")
                ? "Modbus RTU \(endpoint.host.dropFirst(4))"
                : "Modbus TCP \(endpoint.host):\(endpoint.port)"
            text += "  \(endpoint.device)  \(place)  unit \(endpoint.unit)  (\(endpoint.model))\n"
        }
        if let redfish = service.redfish {
            let listeners = redfish.listeners
            if let first = listeners.first, let last = listeners.last {
                text +=
                    "  \(listeners.count) BMCs and shelf controllers, Redfish on \(first.url) (\(first.device)) to "
                    + "\(last.url) (\(last.device)), in name order\n"
            }
            text += "  Redfish user \(username), password \(given == nil ? password : "from ACCEPTANCE_BMC_PASSWORD")\n"
            if let certificate = redfish.certificate {
                text += "  certificate SHA-256 \(certificate.sha256) (pin_sha256)\n"
                do {
                    try certificate.certificatePEM.write(toFile: caOut, atomically: true, encoding: .utf8)
                    text += "  certificate written to \(caOut) (ca_file)\n"
                } catch {
                    text += "  could not write the certificate to \(caOut): \(error.localizedDescription)\n"
                }
            }
        }
        for instrument in service.bench {
            text +=
                "  \(instrument.name)  SCPI \(instrument.scpi)  as USB \(instrument.usb) serial \(instrument.serial)"
            text += "  (\(instrument.profile))\n"
        }
        if let benchOut {
            do {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(service.bench).write(to: URL(fileURLWithPath: benchOut))
                text += "  instruments written to \(benchOut)\n"
            } catch {
                ConsoleOutput.standardError.write("error: cannot write \(benchOut): \(error.localizedDescription)\n")
                await service.shutdown()
                throw ExitCode(Verdict.error.exitCode)
            }
        }
        if let stationOut {
            do {
                // The BMCs' login beside it, readable by this user only, as a station's credentials file must be.
                let credentials = stationOut + ".credentials"
                guard
                    FileManager.default.createFile(
                        atPath: credentials, contents: Data("\(username):\(password)\n".utf8),
                        attributes: [.posixPermissions: 0o600])
                else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: credentials]) }
                try service.stationFile(
                    rack: rackID, caFile: service.redfish?.certificate == nil ? nil : caOut,
                    credentialsFile: credentials, instrumentsOverUSB: benchUSB
                ).write(toFile: stationOut, atomically: true, encoding: .utf8)
                text += "  station file written to \(stationOut) (acceptance run ... --station \(stationOut))\n"
            } catch {
                ConsoleOutput.standardError.write("error: cannot write \(stationOut): \(error.localizedDescription)\n")
                await service.shutdown()
                throw ExitCode(Verdict.error.exitCode)
            }
        }
        text += "Ctrl-C to stop.\n"
        ConsoleOutput.standardOutput.write(text)
        _ = await stop.waitForStop()
        await service.shutdown()
        withExtendedLifetime(trap) {}
    }
}
