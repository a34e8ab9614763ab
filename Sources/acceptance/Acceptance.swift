import AcceptanceCore
import ArgumentParser
import Harness

@main
struct Acceptance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acceptance",
        abstract: "Factory acceptance tests for liquid-cooled AI server racks.",
        discussion: """
            Run exit codes: 0 PASS, 1 FAIL (the rack failed a limit), 2 ERROR (the station could not test), \
            3 ABORTED (stopped by the operator). Command-line mistakes exit 64 with usage.
            """,
        version: HarnessVersion.current,
        subcommands: [
            RunCommand.self, ValidateCommand.self, ListCommand.self, SimulateCommand.self, PointsCommand.self,
            ReadCommand.self, WriteCommand.self, RecoverCommand.self, KeysCommand.self, VerifyCommand.self,
            ApproveCommand.self,
            ArchiveCommand.self, InstrumentsCommand.self, SchemaCommand.self, LineCommand.self,
        ]
    )

    /// Signals are caught before anything else happens (see `SignalTrap.installEarly`), then the command runs.
    static func main() async {
        SignalTrap.installEarly(exitCode: Verdict.aborted.exitCode)
        await main(nil)
    }
}

/// Where procedures and fixtures come from, shared by every command.
struct WorkspaceOptions: ParsableArguments {
    @Option(name: .customLong("procedures"), help: "Folder of procedure files (default: ./Procedures).")
    var procedures: String?

    @Option(name: .customLong("fixtures"), help: "Folder of rack/device profiles and scenarios (default: ./Fixtures).")
    var fixtures: String?
}
