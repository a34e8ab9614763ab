import AcceptanceCore
import ArgumentParser
import Harness

struct ReadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Read points now: acceptance read cdu.supply_pressure cdu.mode --station line-1-tcp",
        discussion: "Exit 0 when every point was read, 2 when a device did not answer."
    )

    @Argument(help: "Points, as device.point.")
    var points: [String]

    @OptionGroup var devices: DeviceOptions
    @OptionGroup var workspace: WorkspaceOptions

    func run() async throws {
        let location = Workspace.locate(procedures: workspace.procedures, fixtures: workspace.fixtures)
        let plan = try devices.plan(workspace: location, points: points) { configuration throws(HarnessError) in
            for point in points where configuration.resolve(point) == nil {
                var message = "unknown point '\(point)'"
                if let suggestion = closest(to: point, in: configuration.allPointNames) {
                    message += "; did you mean '\(suggestion)'?"
                }
                throw .unsupported(message)
            }
        }
        plan.warnIfUnfinished()
        let failed: Bool
        do {
            failed = try await plan.withDevices(events: DiscardingTransportEvents()) { bus, _ in
                var failed = false
                for point in points {
                    let register = plan.configuration.resolve(point).map { $0.point.whereabouts } ?? ""
                    do {
                        let value = try await bus.read([point])[point].map(\.description) ?? "-"
                        ConsoleOutput.standardOutput.write("\(point) = \(value)    (\(register))\n")
                    } catch {
                        failed = true
                        ConsoleOutput.standardError.write("\(point): \("\(error)".escapingControlCharacters)\n")
                    }
                }
                return failed
            }
        } catch {
            ConsoleOutput.standardError.write("error: \("\(error)".escapingControlCharacters)\n")
            throw ExitCode(Verdict.error.exitCode)
        }
        if failed { throw ExitCode(Verdict.error.exitCode) }
    }
}
