import AcceptanceCore
import ArgumentParser
import Foundation
import Harness
import Reports

/// Where the archive lives: --archive, else the station's `archive`, else ./archive.
struct ArchiveOptions: ParsableArguments {
    @Option(help: "The archive folder (default: the station's 'archive', else ./archive).")
    var archive: String?

    @Option(help: "A station file whose 'archive' setting names the folder.", completion: .custom(Completions.stations))
    var station: String?

    /// The archive; `creating` only for `add`: the commands that read it create nothing (no folder, no index).
    func open(creating: Bool = false) throws -> ReportArchive {
        var folder = archive
        if folder == nil, let station {
            do {
                folder = try StationConfiguration.load(path: station, connectors: Transports.connectors).archive
            } catch {
                throw ValidationError(error.description)
            }
        }
        let directory = folder ?? "archive"
        if !creating, !FileManager.default.fileExists(atPath: "\(directory)/index.sqlite") {
            ConsoleOutput.standardError.write(
                "error: no archive at \(directory) (no index.sqlite there): name one with --archive or --station\n")
            throw ExitCode(2)
        }
        do {
            return try ReportArchive(directory: directory)
        } catch {
            ConsoleOutput.standardError.write("error: \(error)\n")
            throw ExitCode(2)
        }
    }
}

extension ArchiveCommand {
    /// An archived run as `archive list --json` and `archive show --json` give it.
    static func json(_ run: ReportArchive.Run) -> JSONValue {
        var members: [String: JSONValue] = [
            "run_id": .string(run.runID), "attestation_sha256": .string(run.attestationSHA256),
            "procedure": .string(run.procedure), "procedure_version": .string(run.procedureVersion),
            "verdict": .string(run.verdict), "station": .string(run.station), "started": .string(run.started),
            "approved": .bool(run.approved), "added_at": .string(run.addedAt),
        ]
        members["rack_serial"] = JSONOutput.optional(run.rackSerial)
        members["signer"] = JSONOutput.optional(run.signer)
        return .object(members)
    }
}

struct ArchiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive",
        abstract:
            "Keep verified report bundles: stored by content hash, indexed in SQLite, never overwritten or deleted.",
        subcommands: [Add.self, List.self, Show.self, Export.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify bundles and archive them; refuses any that do not verify.")

        @Argument(help: "Bundle folders.")
        var bundles: [String]

        @Option(help: "Keyring of trusted keys: a bundle must verify against it.")
        var keyring: String

        @Flag(help: "Also archive runs on the simulated rack (refused by default: they are not evidence about a rack).")
        var allowSimulated = false

        @OptionGroup var options: ArchiveOptions

        func run() throws {
            let archive = try options.open(creating: true)
            let ring: Keyring
            do {
                ring = try Keyring.load(path: keyring)
            } catch {
                throw ValidationError(error.description)
            }
            var refused = 0
            for bundle in bundles {
                do {
                    switch try archive.add(bundle: bundle, keyring: ring, allowSimulated: allowSimulated) {
                    case let .added(run):
                        ConsoleOutput.standardOutput.write(
                            "archived  \(run.runID)  rack \(run.rackSerial ?? "-")  \(run.verdict)  "
                                + "attestation \(run.attestationSHA256.prefix(12))\n")
                    case let .alreadyArchived(run, newFiles):
                        ConsoleOutput.standardOutput.write(
                            "already archived  \(run.runID)"
                                + (newFiles.isEmpty ? "" : "  (added \(newFiles.joined(separator: ", ")))") + "\n")
                    }
                } catch {
                    refused += 1
                    ConsoleOutput.standardError.write("\(error)\n")
                }
            }
            if refused > 0 { throw ExitCode(1) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List archived runs, oldest first.")

        @Option(help: "Only this rack serial.")
        var rack: String?

        @Option(help: "Only this procedure id.")
        var procedure: String?

        @Option(help: "Only this verdict (PASS, FAIL, ERROR, ABORTED).")
        var verdict: String?

        @Option(help: "Only runs started on or after this date (2026-11-01 or 2026-11-01T08:00:00Z).")
        var since: String?

        @OptionGroup var options: ArchiveOptions

        @Flag(help: "Print one JSON document (schema: acceptance schema archive-list).")
        var json = false

        func run() throws {
            var date: Date?
            if let since {
                date = Timestamp.date(since) ?? Timestamp.date(since + "T00:00:00Z")
                guard date != nil else { throw ValidationError("--since \(since): write a date such as 2026-11-01") }
            }
            let runs: [ReportArchive.Run]
            let archive = try options.open()
            do {
                runs = try archive.list(.init(rack: rack, procedure: procedure, verdict: verdict, since: date))
            } catch {
                ConsoleOutput.standardError.write("error: \(error)\n")
                throw ExitCode(2)
            }
            if json {
                JSONOutput.write(
                    "archive-list",
                    ["archive": .string(archive.directory), "runs": .array(runs.map(ArchiveCommand.json))])
                return
            }
            // A table with a header row, columns aligned: what a person reads and `cut`/`awk` split.
            var rows = [["STARTED", "RUN", "RACK", "PROCEDURE", "VERDICT", "STATION", "SIGNED BY", "APPROVAL"]]
            for run in runs {
                rows.append([
                    run.started, run.runID, run.rackSerial ?? "-", "\(run.procedure) \(run.procedureVersion)",
                    run.verdict, run.station.isEmpty ? "-" : run.station, run.signer ?? "?",
                    run.approved ? "APPROVED" : "-",
                ])
            }
            let widths = (0..<8).map { column in rows.map { $0[column].count }.max() ?? 0 }
            var text = ""
            for row in rows {
                text +=
                    (0..<8).map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                    .joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
            }
            text += "\(runs.count) run\(runs.count == 1 ? "" : "s")\n"
            ConsoleOutput.standardOutput.write(text)
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an archived run and its files.")

        @Argument(help: "Run id, or a prefix of its attestation digest.")
        var reference: String

        @OptionGroup var options: ArchiveOptions

        @Flag(help: "Print one JSON document (schema: acceptance schema archive-show).")
        var json = false

        func run() throws {
            do {
                let archive = try options.open()
                let (found, files) = try archive.find(reference)
                if json {
                    JSONOutput.write(
                        "archive-show",
                        [
                            "archive": .string(archive.directory), "run": ArchiveCommand.json(found),
                            "files": .array(
                                files.map {
                                    [
                                        "name": .string($0.name), "sha256": .string($0.sha256),
                                        "size": .number(Double($0.size)),
                                    ]
                                }),
                        ])
                    return
                }
                var text = """
                    run          \(found.runID)
                    rack         \(found.rackSerial ?? "-")
                    procedure    \(found.procedure) \(found.procedureVersion)
                    verdict      \(found.verdict)
                    station      \(found.station)
                    started      \(found.started)
                    signed by    \(found.signer ?? "?")
                    approved     \(found.approved ? "yes" : "no")
                    attestation  \(found.attestationSHA256)
                    archived     \(found.addedAt)
                    files:

                    """
                for file in files {
                    text += "  \(file.sha256.prefix(16))…  \(String(format: "%10d", file.size))  \(file.name)\n"
                }
                ConsoleOutput.standardOutput.write(text)
            } catch let exit as ExitCode {
                throw exit
            } catch {
                ConsoleOutput.standardError.write("error: \(error)\n")
                throw ExitCode(1)
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write an archived bundle into a new folder (digests checked).")

        @Argument(help: "Run id, or a prefix of its attestation digest.")
        var reference: String

        @Argument(help: "A new or empty folder.")
        var folder: String

        @OptionGroup var options: ArchiveOptions

        func run() throws {
            do {
                let exported = try options.open().export(reference, to: folder)
                ConsoleOutput.standardOutput.write(
                    "exported \(exported.runID) to \(folder); check it with "
                        + "`acceptance verify \(folder) --keyring KEYRING` or `sh \(folder)/verify.sh KEY.pub.pem \(folder)`\n"
                )
            } catch let exit as ExitCode {
                throw exit
            } catch {
                ConsoleOutput.standardError.write("error: \(error)\n")
                throw ExitCode(1)
            }
        }
    }
}
