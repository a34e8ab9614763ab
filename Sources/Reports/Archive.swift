import AcceptanceCore
import Crypto
import Foundation
import GRDB

/// Where QA keeps signed bundles: files stored by content hash under `objects/`, and an SQLite index (through GRDB)
/// of runs by rack, procedure, verdict and date. The tool only ever adds: nothing stored is overwritten or deleted.
public final class ReportArchive: Sendable {
    public let directory: String
    let database: DatabaseQueue

    public struct Run: Sendable, Hashable {
        public var runID: String
        /// The bundle's identity: the SHA-256 of its signed statement.
        public var attestationSHA256: String
        public var rackSerial: String?
        public var procedure: String
        public var procedureVersion: String
        public var verdict: String
        public var station: String
        public var started: String
        public var signer: String?
        public var approved: Bool
        public var addedAt: String
    }

    public struct Filter: Sendable {
        public var rack: String?
        public var procedure: String?
        public var verdict: String?
        public var since: Date?

        public init(rack: String? = nil, procedure: String? = nil, verdict: String? = nil, since: Date? = nil) {
            self.rack = rack
            self.procedure = procedure
            self.verdict = verdict
            self.since = since
        }
    }

    public struct ArchiveError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public init(directory: String) throws(ArchiveError) {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: "\(directory)/objects", withIntermediateDirectories: true)
            // Several `archive add`s at once (two stations, two shells) wait for each other instead of failing with
            // "database is locked".
            var configuration = Configuration()
            configuration.busyMode = .timeout(30)
            database = try DatabaseQueue(path: "\(directory)/index.sqlite", configuration: configuration)
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1") { db in
                try db.create(table: "run") { table in
                    table.column("attestation_sha256", .text).primaryKey()
                    table.column("run_id", .text).notNull().indexed()
                    table.column("rack_serial", .text).indexed()
                    table.column("procedure", .text).notNull().indexed()
                    table.column("procedure_version", .text).notNull()
                    table.column("verdict", .text).notNull()
                    table.column("station", .text).notNull()
                    table.column("started", .text).notNull()
                    table.column("signer", .text)
                    table.column("added_at", .text).notNull()
                }
                try db.create(table: "file") { table in
                    table.column("attestation_sha256", .text).notNull().references("run")
                    table.column("name", .text).notNull()
                    table.column("sha256", .text).notNull()
                    table.column("size", .integer).notNull()
                    table.primaryKey(["attestation_sha256", "name"])
                }
            }
            // Two processes opening a new archive at once both see it unmigrated; the second's CREATE TABLE then
            // fails once the first has committed. Trying again finds the migration applied.
            var attempt = 0
            while true {
                do {
                    try migrator.migrate(database)
                    break
                } catch {
                    attempt += 1
                    if attempt >= 3 { throw error }
                }
            }
        } catch {
            throw ArchiveError(description: "cannot open the archive at \(directory): \(describeFileError(error))")
        }
    }

    public enum AddOutcome: Sendable {
        case added(Run)
        case alreadyArchived(Run, newFiles: [String])
    }

    /// Verifies a bundle and stores it. The bundle is first copied into the archive, and it is that copy that is
    /// verified and stored, so nothing can change between the check and the store. A bundle that does not verify, or
    /// that comes from the simulated rack (unless `allowSimulated`), is refused with the reasons.
    public func add(
        bundle folder: String, keyring: Keyring, allowSimulated: Bool = false
    ) throws(ArchiveError) -> AddOutcome {
        let staging = "\(directory)/.incoming-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: staging) }
        var names: [String]
        do {
            names = try ReportBundle.subjectFiles(in: folder) + [ReportBundle.attestationFile]
            if FileManager.default.fileExists(atPath: "\(folder)/\(ReportBundle.approvalFile)") {
                names.append(ReportBundle.approvalFile)
            }
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
            for name in names {
                let target = "\(staging)/\(name)"
                try FileManager.default.createDirectory(
                    atPath: (target as NSString).deletingLastPathComponent,
                    withIntermediateDirectories: true)
                guard let data = FileManager.default.contents(atPath: "\(folder)/\(name)") else {
                    throw ArchiveError(description: "cannot read \(folder)/\(name)")
                }
                try data.write(to: URL(fileURLWithPath: target), options: .withoutOverwriting)
            }
        } catch let error as ArchiveError {
            throw error
        } catch let error as ReportBundle.BundleError {
            throw ArchiveError(description: "refused \(folder): \(error.description)")
        } catch {
            throw ArchiveError(description: "cannot copy \(folder) into the archive: \(describeFileError(error))")
        }
        let verification = BundleVerifier.verify(folder: staging, keyring: keyring)
        guard verification.verified else {
            throw ArchiveError(
                description: "refused \(folder): it does not verify: " + verification.failures.joined(separator: "; "))
        }
        guard allowSimulated || !verification.simulated else {
            throw ArchiveError(
                description: "refused \(folder): it is a run on the SIMULATED rack, not evidence about a real one "
                    + "(archive it with --allow-simulated if you mean to)")
        }
        // A run that changed a procedure's limit is evidence only once an approver has signed for the change.
        guard verification.deviations.isEmpty || verification.approved else {
            throw ArchiveError(
                description: "refused \(folder): it deviates from the procedure's limits ("
                    + verification.deviations.joined(separator: ", ")
                    + ") and no approver has signed it: acceptance approve \(folder) --key APPROVER.key.pem")
        }
        guard let statement = verification.statementSHA256, let runID = verification.runID,
            let procedure = verification.procedure, let started = verification.started
        else {
            throw ArchiveError(
                description: "refused \(folder): its statement lacks the run id, procedure or start time")
        }
        var files: [(name: String, sha256: String, size: Int)] = []
        for name in names {
            let path = "\(staging)/\(name)"
            let digest: String
            do {
                digest = try ReportBundle.sha256(file: path)
            } catch {
                throw ArchiveError(description: error.description)
            }
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            try store(path, sha256: digest)
            files.append((name, digest, size))
        }
        let run = Run(
            runID: runID, attestationSHA256: statement, rackSerial: verification.rackSerial,
            procedure: procedure, procedureVersion: verification.procedureVersion ?? "",
            verdict: verification.verdict ?? "?",
            station: "", started: started, signer: verification.signerName,
            approved: names.contains(ReportBundle.approvalFile), addedAt: Timestamp.string(Date()))
        var indexed = run
        // A run's record, or a suite's (its procedures' records are inside, in their own folders).
        for file in ["record.json", SuiteBundle.recordFile] {
            if let data = FileManager.default.contents(atPath: "\(staging)/\(file)"),
                let record = try? JSONValue.parse([UInt8](data)), let station = record["station"]?.string
            {
                indexed.station = station
                break
            }
        }
        do {
            return try database.write { db -> AddOutcome in
                let existing = try Row.fetchOne(
                    db, sql: "SELECT 1 FROM run WHERE attestation_sha256 = ?", arguments: [statement])
                if existing == nil {
                    try db.execute(
                        sql: """
                            INSERT INTO run (attestation_sha256, run_id, rack_serial, procedure, procedure_version, verdict, station,
                                             started, signer, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                            """,
                        arguments: [
                            statement, indexed.runID, indexed.rackSerial, indexed.procedure, indexed.procedureVersion,
                            indexed.verdict, indexed.station, indexed.started, indexed.signer, indexed.addedAt,
                        ])
                }
                var newFiles: [String] = []
                for file in files {
                    let known = try Row.fetchOne(
                        db, sql: "SELECT sha256 FROM file WHERE attestation_sha256 = ? AND name = ?",
                        arguments: [statement, file.name])
                    if known == nil {
                        try db.execute(
                            sql: "INSERT INTO file (attestation_sha256, name, sha256, size) VALUES (?, ?, ?, ?)",
                            arguments: [statement, file.name, file.sha256, file.size])
                        newFiles.append(file.name)
                    }
                }
                return existing == nil ? .added(indexed) : .alreadyArchived(indexed, newFiles: newFiles)
            }
        } catch {
            throw ArchiveError(description: "cannot index \(folder): \(error)")
        }
    }

    /// Moves a verified staging file into `objects/` under its SHA-256, unless it is there already (checked: a
    /// regular file with that digest). Never overwrites.
    func store(_ path: String, sha256: String) throws(ArchiveError) {
        let directory = "\(self.directory)/objects/\(sha256.prefix(2))"
        let target = "\(directory)/\(sha256)"
        var info = stat()
        if lstat(target, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFREG, (try? ReportBundle.sha256(file: target)) == sha256 else {
                throw ArchiveError(
                    description: "the archive's object \(target) is damaged or not a file; fix the archive by hand")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ArchiveError(description: "cannot create \(directory): \(describeFileError(error))")
        }
        // link(2) fails if the target exists: a concurrent add of the same content keeps the first copy.
        if link(path, target) != 0, errno != EEXIST {
            throw ArchiveError(description: "cannot store \(path): \(String(cString: strerror(errno)))")
        }
        chmod(target, 0o444)
    }

    public func list(_ filter: Filter) throws(ArchiveError) -> [Run] {
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let rack = filter.rack {
            conditions.append("rack_serial = ?")
            arguments.append(rack)
        }
        if let procedure = filter.procedure {
            conditions.append("procedure = ?")
            arguments.append(procedure)
        }
        if let verdict = filter.verdict {
            conditions.append("verdict = ?")
            arguments.append(verdict.uppercased())
        }
        if let since = filter.since {
            conditions.append("started >= ?")
            arguments.append(Timestamp.string(since))
        }
        let sql =
            "SELECT r.*, EXISTS(SELECT 1 FROM file f WHERE f.attestation_sha256 = r.attestation_sha256 AND f.name = ?) "
            + "AS approved FROM run r" + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            + " ORDER BY started, run_id"
        do {
            return try database.read { db in
                try Row.fetchAll(db, sql: sql, arguments: StatementArguments([ReportBundle.approvalFile] + arguments))
                    .map(Self.run)
            }
        } catch {
            throw ArchiveError(description: "cannot read the archive index: \(error)")
        }
    }

    static func run(_ row: Row) -> Run {
        Run(
            runID: row["run_id"], attestationSHA256: row["attestation_sha256"], rackSerial: row["rack_serial"],
            procedure: row["procedure"], procedureVersion: row["procedure_version"], verdict: row["verdict"],
            station: row["station"], started: row["started"], signer: row["signer"], approved: row["approved"] ?? false,
            addedAt: row["added_at"])
    }

    /// A run by its id or by a prefix of its attestation digest (at least 8 hex digits); with its files.
    public func find(_ reference: String) throws(ArchiveError) -> (Run, [(name: String, sha256: String, size: Int)]) {
        do {
            return try database.read { db in
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT r.*, EXISTS(SELECT 1 FROM file f WHERE f.attestation_sha256 = r.attestation_sha256 AND f.name = ?) AS approved
                        FROM run r WHERE run_id = ? OR (length(?) >= 8 AND substr(attestation_sha256, 1, length(?)) = lower(?))
                        """, arguments: [ReportBundle.approvalFile, reference, reference, reference, reference])
                guard let row = rows.first else { throw ArchiveError(description: "no archived run '\(reference)'") }
                guard rows.count == 1 else {
                    throw ArchiveError(
                        description: "'\(reference)' matches \(rows.count) bundles; give an attestation digest prefix: "
                            + rows.map { String(($0["attestation_sha256"] as String).prefix(12)) }.joined(
                                separator: ", "))
                }
                let run = Self.run(row)
                let files = try Row.fetchAll(
                    db, sql: "SELECT name, sha256, size FROM file WHERE attestation_sha256 = ? ORDER BY name",
                    arguments: [run.attestationSHA256]
                )
                .map { (name: $0["name"] as String, sha256: $0["sha256"] as String, size: $0["size"] as Int) }
                return (run, files)
            }
        } catch let error as ArchiveError {
            throw error
        } catch {
            throw ArchiveError(description: "cannot read the archive index: \(error)")
        }
    }

    /// Writes a run's bundle into a new (or empty) folder, checking every file's digest on the way out.
    public func export(_ reference: String, to folder: String) throws(ArchiveError) -> Run {
        let (run, files) = try find(reference)
        if let existing = try? FileManager.default.contentsOfDirectory(atPath: folder), !existing.isEmpty {
            throw ArchiveError(description: "\(folder) is not empty; export writes into a new or empty folder only")
        }
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for file in files {
                // Names come from the index: only plain relative paths are written out.
                guard !file.name.hasPrefix("/"), !file.name.split(separator: "/").contains(".."),
                    file.sha256.count == 64, file.sha256.allSatisfy(\.isHexDigit)
                else {
                    throw ArchiveError(description: "the index lists an unsafe file name '\(file.name)'; not exported")
                }
                let source = "\(directory)/objects/\(file.sha256.prefix(2))/\(file.sha256)"
                let target = "\(folder)/\(file.name)"
                try FileManager.default.createDirectory(
                    atPath: (target as NSString).deletingLastPathComponent,
                    withIntermediateDirectories: true)
                try FileManager.default.copyItem(atPath: source, toPath: target)
                try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: target)
                let digest = try ReportBundle.sha256(file: target)
                guard digest == file.sha256 else {
                    throw ArchiveError(
                        description:
                            "the archived copy of \(file.name) is damaged (sha256 \(digest), indexed \(file.sha256))")
                }
            }
        } catch let error as ArchiveError {
            throw error
        } catch {
            throw ArchiveError(description: "cannot export to \(folder): \(describeFileError(error))")
        }
        return run
    }
}

/// A rack's earlier runs as the station's archive has them, for the report's "previous runs of this rack".
public struct RackHistory: Sendable {
    /// The archive folder.
    public var archive: String
    public var runs: [ReportArchive.Run]
    /// Why the archive could not be read (the report says so instead of showing nothing).
    public var problem: String?

    public init(archive: String, runs: [ReportArchive.Run], problem: String? = nil) {
        self.archive = archive
        self.runs = runs
        self.problem = problem
    }

    /// The runs of `rackSerial` in the archive at `directory`, newest first (at most `limit`); nil when there is no
    /// archive there yet (nothing is created to find out).
    public static func load(archive directory: String, rackSerial: String, limit: Int = 20) -> RackHistory? {
        guard FileManager.default.fileExists(atPath: "\(directory)/index.sqlite") else { return nil }
        do {
            let runs = try ReportArchive(directory: directory).list(.init(rack: rackSerial))
            return RackHistory(
                archive: directory, runs: Array(runs.sorted { $0.started > $1.started }.prefix(limit)))
        } catch {
            return RackHistory(archive: directory, runs: [], problem: error.description)
        }
    }
}
