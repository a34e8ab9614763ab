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

    @Flag(help: "Print one JSON document (schema: acceptance schema read); exit 2 still says a point was not read.")
    var json = false

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
                var readings: [JSONValue] = []
                for point in points {
                    let register = plan.configuration.resolve(point).map { $0.point.whereabouts } ?? ""
                    var reading: [String: JSONValue] = ["point": .string(point), "where": .string(register)]
                    do {
                        let value = try await bus.read([point])[point] ?? .missing
                        if json {
                            reading.merge(Self.json(value)) { $1 }
                        } else {
                            ConsoleOutput.standardOutput.write("\(point) = \(value.description)    (\(register))\n")
                        }
                    } catch {
                        failed = true
                        reading["error"] = .string("\(error)")
                        if !json {
                            ConsoleOutput.standardError.write("\(point): \("\(error)".escapingControlCharacters)\n")
                        }
                    }
                    readings.append(.object(reading))
                }
                if json {
                    JSONOutput.write(
                        "read",
                        [
                            "station": .string(plan.stationID), "simulated": .bool(plan.isSimulated),
                            "readings": .array(readings),
                        ])
                }
                return failed
            }
        } catch {
            ConsoleOutput.standardError.write("error: \("\(error)".escapingControlCharacters)\n")
            throw ExitCode(Verdict.error.exitCode)
        }
        if failed { throw ExitCode(Verdict.error.exitCode) }
    }

    /// A value as JSON: a number (with its unit apart), text, true/false, or null for no reading.
    static func json(_ value: Value) -> [String: JSONValue] {
        var members: [String: JSONValue] = ["text": .string(value.description)]
        switch value {
        case let .number(number): members["value"] = .number(number)
        case let .quantity(quantity):
            members["value"] = .number(quantity.value)
            members["unit"] = .string(quantity.unit.symbol)
        case let .bool(flag): members["value"] = .bool(flag)
        case let .text(text): members["value"] = .string(text)
        case .missing: members["value"] = .null
        }
        return members
    }
}
