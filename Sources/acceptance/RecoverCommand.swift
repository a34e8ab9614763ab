import AcceptanceCore
import ArgumentParser
import Foundation
import Harness

struct RecoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Make the rack safe after a run the station did not finish, and write that run's record.",
        discussion: """
            A station that stopped during a run (killed, crashed, power lost) leaves its rack as the run left it: \
            pump stopped, loop isolated and pressurised, trays powered. Until it is recovered, run and write refuse \
            at that station. recover connects to the devices the run's journal says it moved, drives each to the \
            safe state its profile declares, reads it back, then writes the run's record from the journal (verdict \
            ABORTED, "station stopped unexpectedly", every measurement and sample taken before the stop) and its \
            signed bundle.
            Exit codes: 0 recovered (or nothing to recover), 2 the rack is NOT shown safe or its devices could not \
            be reached (the station stays blocked), 64 usage.
            Examples:
              acceptance recover --station line-1-tcp
              acceptance recover --station line-1-tcp --yes --operator "J. Smith"
            """
    )

    @Option(
        help: "Station file (or name in Fixtures/stations); without it, every unfinished run in the state folder.",
        completion: .custom(Completions.stations))
    var station: String?

    @Flag(name: .shortAndLong, help: "Do not ask before moving the rack.")
    var yes = false

    @Option(name: .customLong("operator"), help: "Who recovered the run, for the record.")
    var operatorName: String?

    @Flag(
        help: """
            Write the record even if the rack is not shown safe (after making it safe by hand); the record says \
            NOT SAFE.
            """)
    var recordUnsafe = false

    @OptionGroup var workspace: WorkspaceOptions

    func run() async throws {
        let directory = StationState.defaultDirectory()
        let location = Workspace.locate(procedures: workspace.procedures, fixtures: workspace.fixtures)
        var runs: [UnfinishedRun]
        do {
            if let station {
                let loaded = try StationConfiguration.load(named: station, workspace: location)
                runs = try StationState.unfinished(station: loaded.id, in: directory).map { [$0] } ?? []
            } else {
                runs = try StationState.abandoned(in: directory)
            }
        } catch {
            throw ValidationError(error.description)
        }
        guard !runs.isEmpty else {
            ConsoleOutput.standardOutput.write(
                "Nothing to recover: no unfinished run" + (station.map { " at station \($0)" } ?? "")
                    + " (state folder \(directory)).\n")
            return
        }
        let style = ConsoleStyle.detect()
        var failed = false
        for run in runs {
            let claim: StationClaim
            do {
                claim = try StationClaim.take(station: run.station, in: directory)
            } catch {
                ConsoleOutput.standardError.write("error: \(error)\n")
                failed = true
                continue
            }
            ConsoleOutput.standardOutput.write(
                style.paint("Run \(run.runID) at station '\(run.station)' did not finish.", "1") + "\n"
                    + "  procedure \(run.procedureFile), started \(run.started) by pid \(run.pid) on \(run.host)\n"
                    + "  run folder \(run.folder)\n"
                    + "  Recovery drives every device that run moved to its profile's safe state (pump off, valve "
                    + "open, automatic mode; trays off), reads it back, and writes the run's record.\n")
            if !yes {
                guard isatty(STDIN_FILENO) == 1 else {
                    throw ValidationError("recovery moves real hardware and needs confirmation: add --yes")
                }
                ConsoleOutput.standardOutput.write("Move the rack at station '\(run.station)' now? Type 'yes': ")
                guard readLine()?.trimmingCharacters(in: .whitespaces).lowercased() == "yes" else {
                    ConsoleOutput.standardOutput.write("Not recovered; the station stays blocked.\n")
                    throw ExitCode(Verdict.aborted.exitCode)
                }
            }
            let reporter = ConsoleReporter(
                style: style, clock: WallClock(),
                header: .init(scenario: nil, simulated: false, timeScale: nil, folder: run.folder))
            do {
                let outcome = try await Recovery.recover(
                    run, claim: claim,
                    recoveredBy: operatorName ?? ProcessInfo.processInfo.environment["USER"],
                    recordUnsafe: recordUnsafe, observer: reporter)
                guard let record = outcome.record else {
                    ConsoleOutput.standardError.write(
                        style.paint(
                            "The rack at station '\(run.station)' is NOT shown safe; run \(run.runID) is not "
                                + "recorded yet and the station stays blocked. Make it safe by hand, then run "
                                + "acceptance recover again (--record-unsafe records it as it is).", "1;31") + "\n")
                    failed = true
                    continue
                }
                switch outcome.bundle {
                case let .signed(folder, keyID)?:
                    ConsoleOutput.standardOutput.write(
                        "  Report bundle signed (keyid \(keyID.prefix(16))…): \(folder)\n")
                case let .unsigned(folder)?:
                    ConsoleOutput.standardOutput.write("  UNSIGNED report bundle: \(folder)\n")
                case let .failed(reason)?:
                    ConsoleOutput.standardError.write("  report bundle NOT written: \(reason)\n")
                    failed = true
                case nil:
                    break
                }
                if outcome.safeState == nil {
                    ConsoleOutput.standardOutput.write(
                        "  The run had written its record (\(record.verdict)) before the station stopped; bundled it.\n"
                    )
                }
                ConsoleOutput.standardOutput.write("Station '\(run.station)' recovered.\n")
            } catch {
                ConsoleOutput.standardError.write(style.paint("error: \(error)", "1;31") + "\n")
                failed = true
            }
        }
        if failed { throw ExitCode(Verdict.error.exitCode) }
    }
}
