import AcceptanceCore
import ArgumentParser
import Foundation
import Harness

struct LineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "line",
        abstract: "A line's bays at a glance: what each is running, how far it is, its verdict.",
        subcommands: [Status.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a line's status (written by run --line as it goes), or serve it as a page.",
            discussion: """
                Examples:
                  acceptance line status
                  acceptance line status --line Fixtures/lines/sim-line.yaml --serve 0.0.0.0:8080
                """)

        @Option(help: "The line file or id (default: the line whose status changed last).")
        var line: String?

        @Option(help: ArgumentHelp("Serve the page (and /status.json) here until Ctrl-C.", valueName: "host:port"))
        var serve: String?

        func statusFile() throws -> String {
            let directory = StationState.defaultDirectory() + "/lines"
            if let line {
                var id = line
                if line.contains("/") || line.hasSuffix(".yaml") {
                    do {
                        id = try LineConfiguration.load(path: line).id
                    } catch {
                        throw ValidationError(error.description)
                    }
                }
                return LineStatus.file(line: id, stateDirectory: StationState.defaultDirectory())
            }
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                .filter { $0.hasSuffix(".json") }.map { "\(directory)/\($0)" }
            let newest = files.max { first, second in
                let a = (try? FileManager.default.attributesOfItem(atPath: first)[.modificationDate] as? Date) ?? nil
                let b = (try? FileManager.default.attributesOfItem(atPath: second)[.modificationDate] as? Date) ?? nil
                return (a ?? .distantPast) < (b ?? .distantPast)
            }
            guard let newest else {
                throw ValidationError("no line has run here (no status in \(directory)): name one with --line")
            }
            return newest
        }

        func run() async throws {
            let file = try statusFile()
            guard let serve else {
                guard let status = LineStatus.read(path: file) else {
                    ConsoleOutput.standardError.write("error: no line status at \(file)\n")
                    throw ExitCode(2)
                }
                var text = "line \(status.line) · \(status.procedure) · updated \(status.updated)\n"
                for bay in status.bays {
                    text +=
                        "  bay \(bay.bay)  \(bay.rackSerial ?? "-")  \(bay.verdict ?? bay.state)  "
                        + "\(bay.step ?? "-") (\(bay.stepNumber) of \(bay.stepCount))\n"
                }
                ConsoleOutput.standardOutput.write(text)
                return
            }
            let parts = serve.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let port = Int(parts[1]), (0...65_535).contains(port) else {
                throw ValidationError("--serve takes host:port, such as 127.0.0.1:8080, not '\(serve)'")
            }
            let stop = StopController()
            let trap = SignalTrap(stop: stop, style: ConsoleStyle.detect(), service: "the status page")
            let server: LineStatusServer
            do {
                server = try await LineStatusServer.start(path: file, host: String(parts[0]), port: port)
            } catch {
                ConsoleOutput.standardError.write("error: \(error)\n")
                throw ExitCode(2)
            }
            ConsoleOutput.standardOutput.write(
                "serving the line status on http://\(parts[0]):\(server.port)/ (from \(file)); Ctrl-C to stop\n")
            _ = await stop.waitForStop()
            await server.shutdown()
            withExtendedLifetime(trap) {}
        }
    }
}
