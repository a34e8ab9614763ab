import AcceptanceCore
import ArgumentParser
import Foundation
import Harness

struct WriteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write",
        abstract: "Write a point: acceptance write cdu.pump_speed_setpoint 40% --station line-1-tcp",
        discussion: """
            The value is checked against the point first (unit, range, named states). Writing to real hardware asks \
            for confirmation unless --yes; without a terminal it needs --yes. Exit 2 when the device refused or \
            did not answer.
            """
    )

    @Argument(help: "The point, as device.point.")
    var point: String

    @Argument(help: "The value, with its unit or state: 40%, 3 bar, manual, on.")
    var value: String

    @Flag(name: .shortAndLong, help: "Do not ask for confirmation.")
    var yes = false

    @OptionGroup var devices: DeviceOptions
    @OptionGroup var workspace: WorkspaceOptions

    func run() async throws {
        let location = Workspace.locate(procedures: workspace.procedures, fixtures: workspace.fixtures)
        var parsed = Value.missing
        let plan = try devices.plan(workspace: location, points: [point]) { configuration throws(HarnessError) in
            parsed = try PointTool.value(value, for: point, in: configuration)
        }
        let claim = try plan.claimForActuation()
        let device = String(point.prefix { $0 != "." })
        if plan.rack == nil, !yes {
            let target = plan.endpoints[device] ?? device
            guard isatty(STDIN_FILENO) == 1 else {
                throw ValidationError("writing to real hardware needs confirmation: add --yes")
            }
            ConsoleOutput.standardOutput.write("Write \(point) = \(parsed) to \(target)? Type 'yes' to confirm: ")
            guard readLine()?.trimmingCharacters(in: .whitespaces).lowercased() == "yes" else {
                ConsoleOutput.standardOutput.write("Not written.\n")
                throw ExitCode(Verdict.aborted.exitCode)
            }
        }
        let written = parsed
        let failure: String?
        do {
            failure = try await plan.withDevices(events: DiscardingTransportEvents()) { bus, _ in
                do {
                    try await bus.write(point, written)
                    return nil
                } catch {
                    return "\(error)"
                }
            }
        } catch {
            failure = "\(error)"
        }
        withExtendedLifetime(claim) {}
        if let failure {
            ConsoleOutput.standardError.write("\(point): \(failure)\n")
            throw ExitCode(Verdict.error.exitCode)
        }
        ConsoleOutput.standardOutput.write("\(point) ← \(parsed)\n")
    }
}
