import AcceptanceCore
import ArgumentParser
import Foundation
import Harness
import Reports

/// Where the archive lives: --archive, else the station's or the line's `archive`, else ./archive. A folder (SQLite
/// index) or a PostgreSQL address; the password of the latter from PGPASSWORD or a 0600 password file.
struct ArchiveOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The archive: a folder, or postgres://USER@HOST:PORT/DATABASE (default: the station's or line's 'archive', "
                + "else ./archive).", valueName: "folder-or-address"))
    var archive: String?

    @Option(
        help: "A station file whose 'archive' setting names the archive.", completion: .custom(Completions.stations))
    var station: String?

    @Option(help: "A line file whose 'archive' setting names the archive.")
    var line: String?

    @Option(
        help: ArgumentHelp(
            "The PostgreSQL password file (.pgpass format, mode 0600; default: the station's or line's "
                + "'archive_password_file', else PGPASSFILE, else ~/.pgpass). PGPASSWORD, if set, wins."))
    var passwordFile: String?

    /// The archive named by the options, not opened.
    func location() throws -> ArchiveLocation {
        try Self.location(archive: archive, station: station, line: line, passwordFile: passwordFile)
    }

    static func location(
        archive: String?, station: String?, line: String?, passwordFile: String?
    ) throws -> ArchiveLocation {
        var location = archive.map { ArchiveLocation($0) }
        if location == nil, let station {
            do {
                location = try StationConfiguration.load(path: station, connectors: Transports.connectors)
                    .archiveLocation
            } catch {
                throw ValidationError(error.description)
            }
        }
        if location == nil, let line {
            do {
                location = try LineConfiguration.load(path: line).archive
            } catch {
                throw ValidationError(error.description)
            }
        }
        var chosen = location ?? ArchiveLocation("archive")
        if let passwordFile { chosen.passwordFile = passwordFile }
        if let problem = ArchiveLocation.check(chosen.text, environment: ProcessInfo.processInfo.environment) {
            throw ValidationError(problem)
        }
        return chosen
    }

    /// Opens the archive for `body` and closes it after; `creating` only for `add` and `migrate` (the commands that
    /// read it create nothing: no folder, no index, no tables). An archive that cannot be opened exits 2.
    func withArchive<Result: Sendable>(
        creating: Bool = false, _ body: (any ArchiveStore) async throws -> Result
    ) async throws -> Result {
        try await Self.withArchive(at: try location(), creating: creating, body)
    }

    static func withArchive<Result: Sendable>(
        at location: ArchiveLocation, creating: Bool, _ body: (any ArchiveStore) async throws -> Result
    ) async throws -> Result {
        if !creating, !location.mayExist {
            ConsoleOutput.standardError.write(
                "error: no archive at \(location) (no index.sqlite there): name one with --archive, --station or "
                    + "--line\n")
            throw ExitCode(2)
        }
        let store: any ArchiveStore
        do {
            store = try await location.open(creating: creating)
        } catch {
            ConsoleOutput.standardError.write("error: \(error)\n")
            throw ExitCode(2)
        }
        do {
            let result = try await body(store)
            await store.close()
            return result
        } catch {
            await store.close()
            throw error
        }
    }
}

extension ArchiveCommand {
    /// An archived run as `archive list --json` and `archive show --json` give it.
    static func json(_ run: ArchivedRun) -> JSONValue {
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

struct ArchiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive",
        abstract:
            "Keep verified report bundles by content hash, never overwritten or deleted: in a folder indexed in SQLite, "
            + "or on a PostgreSQL server every station shares.",
        subcommands: [Add.self, List.self, Show.self, Export.self, Migrate.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify bundles and archive them; refuses any that do not verify.")

        @Argument(help: "Bundle folders.")
        var bundles: [String]

        @Option(help: "Keyring of trusted keys: a bundle must verify against it.")
        var keyring: String

        @Flag(help: "Also archive runs on the simulated rack (refused by default: they are not evidence about a rack).")
        var allowSimulated = false

        @OptionGroup var options: ArchiveOptions

        func run() async throws {
            let ring: Keyring
            do {
                ring = try Keyring.load(path: keyring)
            } catch {
                throw ValidationError(error.description)
            }
            let bundles = self.bundles
            let allowSimulated = self.allowSimulated
            let refused = try await options.withArchive(creating: true) { archive in
                var refused = 0
                for bundle in bundles {
                    do {
                        ArchiveCommand.report(
                            try await archive.add(bundle: bundle, keyring: ring, allowSimulated: allowSimulated))
                    } catch {
                        refused += 1
                        ConsoleOutput.standardError.write("\(error)\n")
                    }
                }
                return refused
            }
            if refused > 0 { throw ExitCode(1) }
        }
    }

    struct List: AsyncParsableCommand {
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

        func run() async throws {
            var date: Date?
            if let since {
                date = Timestamp.date(since) ?? Timestamp.date(since + "T00:00:00Z")
                guard date != nil else { throw ValidationError("--since \(since): write a date such as 2026-11-01") }
            }
            let filter = ArchiveFilter(rack: rack, procedure: procedure, verdict: verdict, since: date)
            let (location, runs) = try await options.withArchive { archive in
                do {
                    return (archive.location, try await archive.list(filter))
                } catch {
                    ConsoleOutput.standardError.write("error: \(error)\n")
                    throw ExitCode(2)
                }
            }
            if json {
                JSONOutput.write(
                    "archive-list", ["archive": .string(location), "runs": .array(runs.map(ArchiveCommand.json))])
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

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an archived run and its files.")

        @Argument(help: "Run id, or a prefix of its attestation digest.")
        var reference: String

        @OptionGroup var options: ArchiveOptions

        @Flag(help: "Print one JSON document (schema: acceptance schema archive-show).")
        var json = false

        func run() async throws {
            do {
                let reference = self.reference
                let (location, bundle) = try await options.withArchive { archive in
                    (archive.location, try await archive.find(reference))
                }
                let (found, files) = (bundle.run, bundle.files)
                if json {
                    JSONOutput.write(
                        "archive-show",
                        [
                            "archive": .string(location), "run": ArchiveCommand.json(found),
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

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write an archived bundle into a new folder (digests checked).")

        @Argument(help: "Run id, or a prefix of its attestation digest.")
        var reference: String

        @Argument(help: "A new or empty folder.")
        var folder: String

        @OptionGroup var options: ArchiveOptions

        func run() async throws {
            do {
                let (reference, folder) = (self.reference, self.folder)
                let exported = try await options.withArchive { try await $0.export(reference, to: folder) }
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

extension ArchiveCommand {
    /// What `archive add` and `archive migrate` print for each bundle stored.
    static func report(_ outcome: ArchiveAddOutcome) {
        switch outcome {
        case let .added(run):
            ConsoleOutput.standardOutput.write(
                "archived  \(run.runID)  rack \(run.rackSerial ?? "-")  \(run.verdict)  "
                    + "attestation \(run.attestationSHA256.prefix(12))\n")
        case let .alreadyArchived(run, newFiles):
            ConsoleOutput.standardOutput.write(
                "already archived  \(run.runID)"
                    + (newFiles.isEmpty ? "" : "  (added \(newFiles.joined(separator: ", ")))") + "\n")
        }
    }

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a folder archive into a PostgreSQL archive, verifying every bundle against the keyring.",
            discussion: """
                Every run of the folder archive is exported (digests checked), verified against the keyring and \
                added to the target in a transaction of its own; runs already there are left as they are, so an \
                interrupted migration is finished by running it again. Exits 1 if any bundle was refused.
                """)

        @Option(help: "The folder archive to copy from.")
        var from: String

        @Option(
            help: ArgumentHelp(
                "The archive to copy into: postgres://USER@HOST:PORT/DATABASE (default: the station's or line's "
                    + "'archive').", valueName: "address"))
        var to: String?

        @Option(help: "Keyring of trusted keys: every bundle must verify against it.")
        var keyring: String

        @Flag(help: "Also copy runs on the simulated rack.")
        var allowSimulated = false

        @Option(help: "A station file whose 'archive' names the target.", completion: .custom(Completions.stations))
        var station: String?

        @Option(help: "A line file whose 'archive' names the target.")
        var line: String?

        @Option(help: "The PostgreSQL password file (.pgpass format, mode 0600).")
        var passwordFile: String?

        func run() async throws {
            let ring: Keyring
            do {
                ring = try Keyring.load(path: keyring)
            } catch {
                throw ValidationError(error.description)
            }
            let target = try ArchiveOptions.location(
                archive: to, station: station, line: line, passwordFile: passwordFile)
            guard target.isPostgres else {
                throw ValidationError(
                    "migrate copies into a PostgreSQL archive: give --to postgres://USER@HOST:PORT/DATABASE")
            }
            let source: FolderArchive
            do {
                source = try FolderArchive.open(directory: from)
            } catch {
                ConsoleOutput.standardError.write("error: \(error)\n")
                throw ExitCode(2)
            }
            let allowSimulated = self.allowSimulated
            let (copied, present, refused) = try await ArchiveOptions.withArchive(at: target, creating: true) {
                archive in
                var counts = (copied: 0, present: 0, refused: 0)
                let runs: [ArchivedRun]
                do {
                    runs = try await source.list(.init())
                } catch {
                    ConsoleOutput.standardError.write("error: \(error)\n")
                    throw ExitCode(2)
                }
                for run in runs {
                    let scratch =
                        FileManager.default.temporaryDirectory.path + "/acceptance-migrate-\(UUID().uuidString)"
                    defer { try? FileManager.default.removeItem(atPath: scratch) }
                    do {
                        _ = try await source.export(run.attestationSHA256, to: scratch)
                        let outcome = try await archive.add(
                            bundle: scratch, keyring: ring, allowSimulated: allowSimulated)
                        if case .added = outcome { counts.copied += 1 } else { counts.present += 1 }
                        ArchiveCommand.report(outcome)
                    } catch {
                        counts.refused += 1
                        ConsoleOutput.standardError.write(
                            "\(run.runID) (attestation \(run.attestationSHA256.prefix(12))): \(error)\n")
                    }
                }
                return counts
            }
            ConsoleOutput.standardOutput.write(
                "migrated \(from): \(copied) copied, \(present) already there, \(refused) refused\n")
            if refused > 0 { throw ExitCode(1) }
        }
    }
}
