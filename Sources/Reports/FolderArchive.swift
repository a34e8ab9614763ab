import AcceptanceCore
import Foundation
import GRDB

/// The embedded archive: files stored by content hash under `objects/`, and an SQLite index (through GRDB) of runs by
/// rack, procedure, verdict and date. SQLite runs on GRDB's own queue, never on Swift's cooperative threads: several
/// `archive add`s at once (two stations, two shells) wait there for each other.
public final class FolderArchive: ArchiveStore {
    public let directory: String
    let database: DatabaseQueue

    public var location: String { directory }
    public var stagingParent: String { directory }

    /// An archive folder that already has an index; nothing is created.
    public static func open(directory: String) throws(ArchiveError) -> FolderArchive {
        guard FileManager.default.fileExists(atPath: "\(directory)/index.sqlite") else {
            throw ArchiveError(.unavailable, "no archive at \(directory) (no index.sqlite there)")
        }
        return try FolderArchive(directory: directory)
    }

    /// The archive folder, created with its index if it is not there yet.
    public init(directory: String) throws(ArchiveError) {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: "\(directory)/objects", withIntermediateDirectories: true)
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
            throw ArchiveError(.unavailable, "cannot open the archive at \(directory): \(describeFileError(error))")
        }
    }

    public func close() async {}

    public func store(_ bundle: StagedBundle) async throws(ArchiveError) -> ArchiveAddOutcome {
        for file in bundle.files {
            try storeObject(bundle.path(of: file), sha256: file.sha256)
        }
        let run = bundle.run
        do {
            return try await database.write { db -> ArchiveAddOutcome in
                let existing = try Row.fetchOne(
                    db, sql: "SELECT 1 FROM run WHERE attestation_sha256 = ?", arguments: [run.attestationSHA256])
                if existing == nil {
                    try db.execute(
                        sql: """
                            INSERT INTO run (attestation_sha256, run_id, rack_serial, procedure, procedure_version, verdict, station,
                                             started, signer, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                            """,
                        arguments: [
                            run.attestationSHA256, run.runID, run.rackSerial, run.procedure, run.procedureVersion,
                            run.verdict, run.station, run.started, run.signer, run.addedAt,
                        ])
                }
                var newFiles: [String] = []
                for file in bundle.files {
                    let known = try Row.fetchOne(
                        db, sql: "SELECT sha256 FROM file WHERE attestation_sha256 = ? AND name = ?",
                        arguments: [run.attestationSHA256, file.name])
                    if known == nil {
                        try db.execute(
                            sql: "INSERT INTO file (attestation_sha256, name, sha256, size) VALUES (?, ?, ?, ?)",
                            arguments: [run.attestationSHA256, file.name, file.sha256, file.size])
                        newFiles.append(file.name)
                    }
                }
                return existing == nil ? .added(run) : .alreadyArchived(run, newFiles: newFiles)
            }
        } catch {
            throw ArchiveError(.failed, "cannot index \(bundle.source) in \(directory)/index.sqlite: \(error)")
        }
    }

    /// Links a verified staging file into `objects/` under its SHA-256, unless it is there already (checked: a
    /// regular file with that digest). Never overwrites.
    func storeObject(_ path: String, sha256: String) throws(ArchiveError) {
        let directory = "\(self.directory)/objects/\(sha256.prefix(2))"
        let target = "\(directory)/\(sha256)"
        var info = stat()
        if lstat(target, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFREG, (try? ReportBundle.sha256(file: target)) == sha256 else {
                throw ArchiveError(
                    .damaged, "the archive's object \(target) is damaged or not a file; fix the archive by hand")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ArchiveError(.failed, "cannot create \(directory): \(describeFileError(error))")
        }
        // link(2) fails if the target exists: a concurrent add of the same content keeps the first copy.
        if link(path, target) != 0, errno != EEXIST {
            throw ArchiveError(.failed, "cannot store \(path): \(String(cString: strerror(errno)))")
        }
        chmod(target, 0o444)
    }

    public func list(_ filter: ArchiveFilter) async throws(ArchiveError) -> [ArchivedRun] {
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
        let statementArguments = StatementArguments([ReportBundle.approvalFile] + arguments)
        do {
            return try await database.read { db in
                try Row.fetchAll(db, sql: sql, arguments: statementArguments).map(Self.run)
            }
        } catch {
            throw ArchiveError(.failed, "cannot read the archive index \(directory)/index.sqlite: \(error)")
        }
    }

    static func run(_ row: Row) -> ArchivedRun {
        ArchivedRun(
            runID: row["run_id"], attestationSHA256: row["attestation_sha256"], rackSerial: row["rack_serial"],
            procedure: row["procedure"], procedureVersion: row["procedure_version"], verdict: row["verdict"],
            station: row["station"], started: row["started"], signer: row["signer"], approved: row["approved"] ?? false,
            addedAt: row["added_at"])
    }

    public func find(_ reference: String) async throws(ArchiveError) -> ArchivedBundle {
        let rows: [Row]
        do {
            rows = try await database.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT r.*, EXISTS(SELECT 1 FROM file f WHERE f.attestation_sha256 = r.attestation_sha256 AND f.name = ?) AS approved
                        FROM run r WHERE run_id = ? OR (length(?) >= 8 AND substr(attestation_sha256, 1, length(?)) = lower(?))
                        """, arguments: [ReportBundle.approvalFile, reference, reference, reference, reference])
            }
        } catch {
            throw ArchiveError(.failed, "cannot read the archive index \(directory)/index.sqlite: \(error)")
        }
        let run = try ArchiveLookup.single(rows.map(Self.run), reference: reference)
        do {
            let files = try await database.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT name, sha256, size FROM file WHERE attestation_sha256 = ? ORDER BY name",
                    arguments: [run.attestationSHA256]
                )
                .map { ArchivedFile(name: $0["name"], sha256: $0["sha256"], size: $0["size"]) }
            }
            return ArchivedBundle(run: run, files: files)
        } catch {
            throw ArchiveError(.failed, "cannot read the archive index \(directory)/index.sqlite: \(error)")
        }
    }

    /// The stored object's path (for tests and people looking at the folder).
    public func objectPath(_ sha256: String) -> String { "\(directory)/objects/\(sha256.prefix(2))/\(sha256)" }

    public func contents(of file: ArchivedFile) async throws(ArchiveError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: objectPath(file.sha256)) else {
            throw ArchiveError(.damaged, "the archive's object for \(file.name) is missing: \(objectPath(file.sha256))")
        }
        return [UInt8](data)
    }
}

/// What both archives do with the runs a reference matched.
public enum ArchiveLookup {
    public static func single(_ runs: [ArchivedRun], reference: String) throws(ArchiveError) -> ArchivedRun {
        guard let run = runs.first else { throw ArchiveError(.notFound, "no archived run '\(reference)'") }
        guard runs.count == 1 else {
            throw ArchiveError(
                .notFound,
                "'\(reference)' matches \(runs.count) bundles; give an attestation digest prefix: "
                    + runs.map { String($0.attestationSHA256.prefix(12)) }.joined(separator: ", "))
        }
        return run
    }
}
