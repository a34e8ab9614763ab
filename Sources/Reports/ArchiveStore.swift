import AcceptanceCore
import Foundation

/// Where QA keeps signed bundles. Two kinds share this interface and the `acceptance archive` commands: a folder with
/// an SQLite index on one machine (`FolderArchive`, the embedded default) and a PostgreSQL database shared by every
/// station (`PostgresArchive`). Either only ever adds: nothing stored is overwritten or deleted, every bundle is
/// verified against the keyring before it is stored, and adding a bundle twice stores it once.
public protocol ArchiveStore: Sendable {
    /// Where the archive is, as people may see it (a folder, or a `postgres://` address without credentials).
    var location: String { get }

    /// Where a bundle being added is copied to be verified: the copy that verified is the copy stored.
    var stagingParent: String { get }

    /// Stores a bundle that has been copied and verified (`StagedBundle.stage`); in one transaction, idempotent.
    func store(_ bundle: StagedBundle) async throws(ArchiveError) -> ArchiveAddOutcome

    /// Runs matching the filter, oldest first.
    func list(_ filter: ArchiveFilter) async throws(ArchiveError) -> [ArchivedRun]

    /// A run by its id or by a prefix of its attestation digest (at least 8 hex digits), with its files.
    func find(_ reference: String) async throws(ArchiveError) -> ArchivedBundle

    /// A stored file's bytes, by content hash (checked by the caller).
    func contents(of file: ArchivedFile) async throws(ArchiveError) -> [UInt8]

    /// Ends the connection (if any). The store is not used afterwards.
    func close() async
}

/// An archived run: what the index keeps about a bundle.
public struct ArchivedRun: Sendable, Hashable {
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

    public init(
        runID: String, attestationSHA256: String, rackSerial: String?, procedure: String, procedureVersion: String,
        verdict: String, station: String, started: String, signer: String?, approved: Bool, addedAt: String
    ) {
        self.runID = runID
        self.attestationSHA256 = attestationSHA256
        self.rackSerial = rackSerial
        self.procedure = procedure
        self.procedureVersion = procedureVersion
        self.verdict = verdict
        self.station = station
        self.started = started
        self.signer = signer
        self.approved = approved
        self.addedAt = addedAt
    }
}

/// One file of an archived bundle: its path inside the bundle and its content hash.
public struct ArchivedFile: Sendable, Hashable {
    public var name: String
    public var sha256: String
    public var size: Int

    public init(name: String, sha256: String, size: Int) {
        self.name = name
        self.sha256 = sha256
        self.size = size
    }
}

public struct ArchivedBundle: Sendable {
    public var run: ArchivedRun
    public var files: [ArchivedFile]

    public init(run: ArchivedRun, files: [ArchivedFile]) {
        self.run = run
        self.files = files
    }
}

public struct ArchiveFilter: Sendable {
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

public enum ArchiveAddOutcome: Sendable {
    case added(ArchivedRun)
    case alreadyArchived(ArchivedRun, newFiles: [String])

    public var run: ArchivedRun {
        switch self {
        case let .added(run), let .alreadyArchived(run, _): run
        }
    }
}

public struct ArchiveError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The archive cannot be opened or reached (no such folder, server down, wrong password, no schema yet).
        case unavailable
        /// A bundle was refused: it does not verify, is simulated, deviates without approval, or cannot be read.
        case refused
        /// No archived run matches, or several do.
        case notFound
        /// Something stored does not match its digest.
        case damaged
        /// Reading, writing or querying failed.
        case failed
    }

    public var kind: Kind
    public var description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// A bundle copied into a staging folder and verified there, with everything the index keeps about it. The copy that
/// verified is the copy stored, so nothing can change between the check and the store.
public struct StagedBundle: Sendable {
    /// The folder the bundle was added from (for messages).
    public var source: String
    /// The verified copy.
    public var folder: String
    public var run: ArchivedRun
    public var files: [ArchivedFile]

    /// The staged copy of a file.
    public func path(of file: ArchivedFile) -> String { "\(folder)/\(file.name)" }

    /// Copies `source` into a new folder under `parent`, verifies the copy against the keyring, and refuses (with the
    /// reasons) a bundle that does not verify, a simulated run (unless `allowSimulated`) and a deviation without an
    /// approver's signature. The caller removes the copy (`discard`).
    public static func stage(
        _ source: String, under parent: String, keyring: Keyring, allowSimulated: Bool
    ) throws(ArchiveError) -> StagedBundle {
        let staging = "\(parent)/.incoming-\(UUID().uuidString)"
        var names: [String]
        do {
            names = try ReportBundle.subjectFiles(in: source) + [ReportBundle.attestationFile]
            if FileManager.default.fileExists(atPath: "\(source)/\(ReportBundle.approvalFile)") {
                names.append(ReportBundle.approvalFile)
            }
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
            for name in names {
                let target = "\(staging)/\(name)"
                try FileManager.default.createDirectory(
                    atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                guard let data = FileManager.default.contents(atPath: "\(source)/\(name)") else {
                    throw ArchiveError(.refused, "refused \(source): cannot read \(source)/\(name)")
                }
                try data.write(to: URL(fileURLWithPath: target), options: .withoutOverwriting)
            }
        } catch let error as ArchiveError {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        } catch let error as ReportBundle.BundleError {
            try? FileManager.default.removeItem(atPath: staging)
            throw ArchiveError(.refused, "refused \(source): \(error.description)")
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw ArchiveError(.failed, "cannot copy \(source) to \(staging): \(describeFileError(error))")
        }
        do {
            return try verified(source: source, staging: staging, names: names, keyring: keyring, allowSimulated)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    private static func verified(
        source: String, staging: String, names: [String], keyring: Keyring, _ allowSimulated: Bool
    ) throws(ArchiveError) -> StagedBundle {
        let verification = BundleVerifier.verify(folder: staging, keyring: keyring)
        guard verification.verified else {
            throw ArchiveError(
                .refused, "refused \(source): it does not verify: " + verification.failures.joined(separator: "; "))
        }
        guard allowSimulated || !verification.simulated else {
            throw ArchiveError(
                .refused,
                "refused \(source): it is a run on the SIMULATED rack, not evidence about a real one "
                    + "(archive it with --allow-simulated if you mean to)")
        }
        // A run that changed a procedure's limit is evidence only once an approver has signed for the change.
        guard verification.deviations.isEmpty || verification.approved else {
            throw ArchiveError(
                .refused,
                "refused \(source): it deviates from the procedure's limits ("
                    + verification.deviations.joined(separator: ", ")
                    + ") and no approver has signed it: acceptance approve \(source) --key APPROVER.key.pem")
        }
        guard let statement = verification.statementSHA256, let runID = verification.runID,
            let procedure = verification.procedure, let started = verification.started
        else {
            throw ArchiveError(.refused, "refused \(source): its statement lacks the run id, procedure or start time")
        }
        var files: [ArchivedFile] = []
        for name in names {
            let path = "\(staging)/\(name)"
            do {
                let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                files.append(ArchivedFile(name: name, sha256: try ReportBundle.sha256(file: path), size: size))
            } catch {
                throw ArchiveError(.failed, "cannot read \(path): \(describeFileError(error))")
            }
        }
        var run = ArchivedRun(
            runID: runID, attestationSHA256: statement, rackSerial: verification.rackSerial,
            procedure: procedure, procedureVersion: verification.procedureVersion ?? "",
            verdict: verification.verdict ?? "?", station: "", started: started, signer: verification.signerName,
            approved: names.contains(ReportBundle.approvalFile), addedAt: Timestamp.string(Date()))
        // A run's record, or a suite's (its procedures' records are inside, in their own folders).
        for file in ["record.json", SuiteBundle.recordFile] {
            if let data = FileManager.default.contents(atPath: "\(staging)/\(file)"),
                let record = try? JSONValue.parse([UInt8](data)), let station = record["station"]?.string
            {
                run.station = station
                break
            }
        }
        return StagedBundle(source: source, folder: staging, run: run, files: files)
    }

    public func discard() {
        try? FileManager.default.removeItem(atPath: folder)
    }
}

extension ArchiveStore {
    /// Verifies a bundle and stores it (see `StagedBundle.stage`).
    public func add(
        bundle folder: String, keyring: Keyring, allowSimulated: Bool = false
    ) async throws(ArchiveError) -> ArchiveAddOutcome {
        let staged = try StagedBundle.stage(
            folder, under: stagingParent, keyring: keyring, allowSimulated: allowSimulated)
        defer { staged.discard() }
        return try await store(staged)
    }

    /// Writes a run's bundle into a new (or empty) folder, checking every file's digest on the way out.
    public func export(_ reference: String, to folder: String) async throws(ArchiveError) -> ArchivedRun {
        let found = try await find(reference)
        if let existing = try? FileManager.default.contentsOfDirectory(atPath: folder), !existing.isEmpty {
            throw ArchiveError(.failed, "\(folder) is not empty; export writes into a new or empty folder only")
        }
        for file in found.files {
            // Names come from the index: only plain relative paths are written out.
            guard !file.name.hasPrefix("/"), !file.name.split(separator: "/").contains(".."),
                file.sha256.count == 64, file.sha256.allSatisfy(\.isHexDigit)
            else {
                throw ArchiveError(.damaged, "the index lists an unsafe file name '\(file.name)'; not exported")
            }
            let bytes = try await contents(of: file)
            let digest = ReportBundle.sha256(bytes: bytes)
            guard digest == file.sha256 else {
                throw ArchiveError(
                    .damaged, "the archived copy of \(file.name) is damaged (sha256 \(digest), indexed \(file.sha256))")
            }
            let target = "\(folder)/\(file.name)"
            do {
                try FileManager.default.createDirectory(
                    atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Data(bytes).write(to: URL(fileURLWithPath: target), options: .withoutOverwriting)
                try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: target)
            } catch {
                throw ArchiveError(.failed, "cannot export to \(folder): \(describeFileError(error))")
            }
        }
        return found.run
    }
}

/// A rack's earlier runs as the station's archive has them, for the report's "previous runs of this rack".
public struct RackHistory: Sendable {
    /// Where the archive is (a folder, or a `postgres://` address without credentials).
    public var archive: String
    public var runs: [ArchivedRun]
    /// Why the archive could not be read (the report says so instead of showing nothing).
    public var problem: String?

    public init(archive: String, runs: [ArchivedRun], problem: String? = nil) {
        self.archive = archive
        self.runs = runs
        self.problem = problem
    }

    /// The runs of `rackSerial` in `store`, newest first (at most `limit`).
    public static func load(from store: any ArchiveStore, rackSerial: String, limit: Int = 20) async -> RackHistory {
        do {
            let runs = try await store.list(.init(rack: rackSerial))
            return RackHistory(
                archive: store.location, runs: Array(runs.sorted { $0.started > $1.started }.prefix(limit)))
        } catch {
            return RackHistory(archive: store.location, runs: [], problem: error.description)
        }
    }
}
