import AcceptanceCore
import ArgumentParser
import Harness

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Serve the simulated rack over Modbus TCP on 127.0.0.1 until Ctrl-C.",
        discussion: """
            Physics run on the wall clock (sped up with --time-scale). Point a station file at the printed endpoints:
              acceptance simulate
              acceptance run leak-test --station Fixtures/stations/sim-loopback.yaml --param hold=30s
            """
    )

    @OptionGroup var workspace: WorkspaceOptions

    @Option(help: "Simulation scenario from Fixtures/scenarios.")
    var scenario = "nominal"

    @Option(help: "First TCP port (one per simulated device; 0 picks free ports).")
    var port = 1502

    @Option(help: "Simulated seconds per wall second.")
    var timeScale = 1.0

    @Option(help: "Serve the power shelf's supplies on this serial device or pty (Modbus RTU, units 192-197).")
    var rtu: String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
        guard (0.001...10_000).contains(timeScale) else { throw ValidationError("--time-scale must be 0.001 to 10000") }
    }

    func run() async throws {
        let location = Workspace.locate(procedures: workspace.procedures, fixtures: workspace.fixtures)
        let service: SimulatorService
        do {
            service = try SimulatorService.start(workspace: location, scenario: scenario, port: port, timeScale: timeScale,
                                                 rtuDevice: rtu)
        } catch {
            ConsoleOutput.standardError.write("error: \(error)\n")
            throw ExitCode(Verdict.error.exitCode)
        }
        let style = ConsoleStyle.detect()
        let stop = StopController()
        let trap = SignalTrap(stop: stop, style: style, service: "the simulator")
        var text = "Simulated rack gb200-nvl72, scenario '\(scenario)', physics at \(Quantity.format(timeScale))× real time\n"
        for endpoint in service.endpoints {
            let place = endpoint.host.hasPrefix("rtu:") ? "Modbus RTU \(endpoint.host.dropFirst(4))"
                : "Modbus TCP \(endpoint.host):\(endpoint.port)"
            text += "  \(endpoint.device)  \(place)  unit \(endpoint.unit)  (\(endpoint.model))\n"
        }
        text += "Ctrl-C to stop.\n"
        ConsoleOutput.standardOutput.write(text)
        _ = await stop.waitForStop()
        service.stop()
        withExtendedLifetime(trap) {}
    }
}
