import AcceptanceCore
import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import Reports

/// The factory's archive: one PostgreSQL database shared by every station, through PostgresNIO. Bundle files are
/// stored in the database too, by content hash (`acceptance.object`), so the server alone is the whole archive.
///
/// Adds are one transaction each and idempotent: objects, the run and its files are inserted with
/// `ON CONFLICT DO NOTHING`, so stations adding the same bundle at once store it once, and a transaction that loses
/// a race waits for the winner and then finds its rows there. The tables refuse UPDATE, DELETE and TRUNCATE.
///
/// One connection, owned by this value and closed by `close()` (`withArchive` scopes it).
public final class PostgresArchive: ArchiveStore {
    public let address: PostgresAddress
    let connection: PostgresConnection
    let logger: Logger

    public var location: String { address.description }
    public let stagingParent: String

    /// Connects, runs `body`, and closes the connection whatever happens. With `creating`, the archive's tables are
    /// made (or brought up to date) first; without, a database that has none is refused.
    public static func withArchive<Result: Sendable>(
        _ address: PostgresAddress, password: String?, creating: Bool,
        _ body: (PostgresArchive) async throws -> Result
    ) async throws -> Result {
        let archive = try await connect(address, password: password, creating: creating)
        do {
            let result = try await body(archive)
            await archive.close()
            return result
        } catch {
            await archive.close()
            throw error
        }
    }

    /// Connects (10 s timeout) and checks or makes the schema. The caller closes it.
    public static func connect(
        _ address: PostgresAddress, password: String?, creating: Bool
    ) async throws(ArchiveError) -> PostgresArchive {
        // PostgresNIO logs at debug and trace only; none of it is wanted on a technician's terminal.
        let logger = Logger(label: "acceptance.archive.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        var configuration = PostgresConnection.Configuration(
            host: address.host, port: address.port, username: address.user, password: password,
            database: address.database, tls: try tls(for: address))
        configuration.options.connectTimeout = .seconds(10)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        } catch {
            throw ArchiveError(
                .unavailable,
                "cannot connect to the archive \(address): "
                    + describe(error, user: address.user, hasPassword: password != nil))
        }
        let archive = PostgresArchive(address: address, connection: connection, logger: logger)
        do {
            if creating {
                try await PostgresSchema.migrate(connection, logger: logger)
            } else {
                try await PostgresSchema.check(connection, logger: logger, address: address)
            }
        } catch {
            await archive.close()
            if let error = error as? ArchiveError { throw error }
            throw ArchiveError(.unavailable, "the archive \(address): " + describe(error))
        }
        return archive
    }

    init(address: PostgresAddress, connection: PostgresConnection, logger: Logger) {
        self.address = address
        self.connection = connection
        self.logger = logger
        stagingParent = FileManager.default.temporaryDirectory.path
    }

    public func close() async {
        try? await connection.close()
    }

    static func tls(for address: PostgresAddress) throws(ArchiveError) -> PostgresConnection.Configuration.TLS {
        if address.tls == .disable { return .disable }
        var configuration = TLSConfiguration.makeClientConfiguration()
        switch address.tls {
        case .disable, .prefer, .require: configuration.certificateVerification = .none
        case .verifyCA: configuration.certificateVerification = .noHostnameVerification
        case .verifyFull: configuration.certificateVerification = .fullVerification
        }
        if let roots = address.rootCertificates {
            configuration.trustRoots = .file(roots)
        }
        do {
            let context = try NIOSSLContext(configuration: configuration)
            return address.tls == .prefer ? .prefer(context) : .require(context)
        } catch {
            throw ArchiveError(
                .unavailable,
                "the archive \(address): cannot set up TLS"
                    + (address.rootCertificates.map { " with the CA certificates in \($0)" } ?? "") + ": \(error)")
        }
    }

    // MARK: Adding

    public func store(_ bundle: StagedBundle) async throws(ArchiveError) -> ArchiveAddOutcome {
        var contents: [String: ByteBuffer] = [:]
        for file in bundle.files where contents[file.sha256] == nil {
            guard let data = FileManager.default.contents(atPath: bundle.path(of: file)) else {
                throw ArchiveError(.failed, "cannot read \(bundle.path(of: file))")
            }
            contents[file.sha256] = ByteBuffer(bytes: data)
        }
        // Two transactions that share objects insert them in the same (digest) order, so they queue instead of
        // deadlocking; should the server still pick one as a deadlock victim, it is tried again.
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await insert(bundle, contents: contents)
            } catch let error as ArchiveError {
                throw error
            } catch let error as PostgresTransactionError where error.closureError is ArchiveError {
                throw (error.closureError as? ArchiveError) ?? ArchiveError(.failed, describe(error))
            } catch {
                let state = sqlState(error)
                if attempt < 5, state == "40P01" || state == "40001" { continue }
                throw ArchiveError(.failed, "cannot store \(bundle.source) in \(address): " + describe(error))
            }
        }
    }

    private func insert(_ bundle: StagedBundle, contents: [String: ByteBuffer]) async throws -> ArchiveAddOutcome {
        let run = bundle.run
        let logger = self.logger
        let address = self.address
        return try await connection.withTransaction(logger: logger) { connection throws -> ArchiveAddOutcome in
            for digest in contents.keys.sorted() {
                guard let bytes = contents[digest] else { continue }
                let inserted = try await connection.query(
                    """
                    INSERT INTO acceptance.object (sha256, size, content) VALUES (\(digest), \(bytes.readableBytes), \(bytes))
                    ON CONFLICT (sha256) DO NOTHING RETURNING sha256
                    """, logger: logger
                ).collect()
                if inserted.isEmpty {
                    // Already stored by an earlier bundle: the stored bytes must be the ones named by the digest.
                    let rows = try await connection.query(
                        "SELECT encode(sha256(content), 'hex') = sha256 FROM acceptance.object WHERE sha256 = \(digest)",
                        logger: logger
                    ).collect()
                    guard let row = rows.first, try row.decode(Bool.self) else {
                        throw ArchiveError(
                            .damaged,
                            "the archive \(address)'s object \(digest) does not match its digest; "
                                + "the database needs a person's attention")
                    }
                }
            }
            let added = try await connection.query(
                """
                INSERT INTO acceptance.run (attestation_sha256, run_id, rack_serial, procedure, procedure_version,
                    verdict, station, started, signer, added_at)
                VALUES (\(run.attestationSHA256), \(run.runID), \(run.rackSerial), \(run.procedure),
                    \(run.procedureVersion), \(run.verdict), \(run.station), \(run.started), \(run.signer), \(run.addedAt))
                ON CONFLICT (attestation_sha256) DO NOTHING RETURNING attestation_sha256
                """, logger: logger
            ).collect()
            var newFiles: [String] = []
            for file in bundle.files {
                let inserted = try await connection.query(
                    """
                    INSERT INTO acceptance.file (attestation_sha256, name, sha256, size)
                    VALUES (\(run.attestationSHA256), \(file.name), \(file.sha256), \(file.size))
                    ON CONFLICT (attestation_sha256, name) DO NOTHING RETURNING name
                    """, logger: logger
                ).collect()
                if !inserted.isEmpty { newFiles.append(file.name) }
            }
            return added.isEmpty ? .alreadyArchived(run, newFiles: newFiles) : .added(run)
        }
    }

    // MARK: Reading

    static let runColumns = """
        r.attestation_sha256, r.run_id, r.rack_serial, r.procedure, r.procedure_version, r.verdict, r.station,
        r.started, r.signer, r.added_at,
        EXISTS (SELECT 1 FROM acceptance.file f WHERE f.attestation_sha256 = r.attestation_sha256
                AND f.name = 'approval.dsse.json') AS approved
        """

    public func list(_ filter: ArchiveFilter) async throws(ArchiveError) -> [ArchivedRun] {
        var conditions: [String] = []
        var binds = PostgresBindings()
        func condition(_ sql: String, _ value: String) {
            binds.append(value)
            conditions.append(sql.replacingOccurrences(of: "?", with: "$\(binds.count)"))
        }
        if let rack = filter.rack { condition("r.rack_serial = ?", rack) }
        if let procedure = filter.procedure { condition("r.procedure = ?", procedure) }
        if let verdict = filter.verdict { condition("r.verdict = ?", verdict.uppercased()) }
        if let since = filter.since { condition("r.started >= ?", Timestamp.string(since)) }
        let sql =
            "SELECT \(Self.runColumns) FROM acceptance.run r"
            + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            + " ORDER BY r.started, r.run_id"
        do {
            return try await runs(PostgresQuery(unsafeSQL: sql, binds: binds))
        } catch {
            throw ArchiveError(.failed, "cannot read the archive \(address): " + describe(error))
        }
    }

    private func runs(_ query: PostgresQuery) async throws -> [ArchivedRun] {
        var runs: [ArchivedRun] = []
        let rows = try await connection.query(query, logger: logger)
        for try await row in rows {
            let (statement, runID, rack, procedure, version, verdict, station, started, signer, addedAt, approved) =
                try row.decode(
                    (
                        String, String, String?, String, String, String, String, String, String?, String, Bool
                    ).self)
            runs.append(
                ArchivedRun(
                    runID: runID, attestationSHA256: statement, rackSerial: rack, procedure: procedure,
                    procedureVersion: version, verdict: verdict, station: station, started: started, signer: signer,
                    approved: approved, addedAt: addedAt))
        }
        return runs
    }

    public func find(_ reference: String) async throws(ArchiveError) -> ArchivedBundle {
        let matches: [ArchivedRun]
        do {
            let prefix = reference.lowercased()
            matches = try await runs(
                """
                SELECT \(unescaped: Self.runColumns) FROM acceptance.run r
                WHERE r.run_id = \(reference)
                   OR (length(\(prefix)) >= 8 AND left(r.attestation_sha256, length(\(prefix))) = \(prefix))
                """)
        } catch {
            throw ArchiveError(.failed, "cannot read the archive \(address): " + describe(error))
        }
        let run = try ArchiveLookup.single(matches, reference: reference)
        do {
            var files: [ArchivedFile] = []
            let rows = try await connection.query(
                """
                SELECT name, sha256, size FROM acceptance.file WHERE attestation_sha256 = \(run.attestationSHA256)
                ORDER BY name
                """, logger: logger)
            for try await (name, sha256, size) in rows.decode((String, String, Int64).self) {
                files.append(ArchivedFile(name: name, sha256: sha256, size: Int(size)))
            }
            return ArchivedBundle(run: run, files: files)
        } catch {
            throw ArchiveError(.failed, "cannot read the archive \(address): " + describe(error))
        }
    }

    public func contents(of file: ArchivedFile) async throws(ArchiveError) -> [UInt8] {
        do {
            let rows = try await connection.query(
                "SELECT content FROM acceptance.object WHERE sha256 = \(file.sha256)", logger: logger
            ).collect()
            guard let row = rows.first else {
                throw ArchiveError(.damaged, "the archive \(address) has no object \(file.sha256) for \(file.name)")
            }
            var buffer = try row.decode(ByteBuffer.self)
            return buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch let error as ArchiveError {
            throw error
        } catch {
            throw ArchiveError(.failed, "cannot read \(file.name) from the archive \(address): " + describe(error))
        }
    }

    /// How many objects (distinct file contents) the archive holds, and their bytes.
    public func objectTotals() async throws(ArchiveError) -> (count: Int, bytes: Int) {
        do {
            let rows = try await connection.query(
                "SELECT count(*), coalesce(sum(size), 0)::bigint FROM acceptance.object", logger: logger
            ).collect()
            guard let row = rows.first else { return (0, 0) }
            let (count, bytes) = try row.decode((Int64, Int64).self)
            return (Int(count), Int(bytes))
        } catch {
            throw ArchiveError(.failed, "cannot read the archive \(address): " + describe(error))
        }
    }
}

/// The server's SQLSTATE for an error, if it came from the server.
func sqlState(_ error: any Error) -> String? {
    if let error = error as? PostgresTransactionError {
        return (error.closureError ?? error.commitError ?? error.beginError).flatMap(sqlState)
    }
    return (error as? PSQLError)?.serverInfo?[.sqlState]
}

/// What went wrong, in words a person can act on. PostgresNIO hides its errors' details from `description` (they may
/// hold data); here only the server's message, hint and SQLSTATE, or the connection's problem, are shown, never the
/// query's values or a password.
func describe(_ error: any Error, user: String? = nil, hasPassword: Bool = true) -> String {
    if let error = error as? ArchiveError { return error.description }
    if let error = error as? PostgresTransactionError {
        if let inner = error.closureError ?? error.commitError ?? error.beginError { return describe(inner) }
        return "the transaction failed"
    }
    guard let error = error as? PSQLError else { return String(describing: type(of: error)) }
    if let info = error.serverInfo, let message = info[.message] {
        var text = message
        if let hint = info[.hint] { text += " (\(hint))" }
        if let state = info[.sqlState] { text += " [SQLSTATE \(state)]" }
        if state(info) == "28P01" || state(info) == "28000" {
            text += hasPassword ? "" : "; no password was given: set PGPASSWORD or name a password file"
        }
        return text
    }
    switch error.code {
    case .authMechanismRequiresPassword:
        return "the server wants a password for user \(user ?? "?") and none was given: set PGPASSWORD, or name a "
            + "password file only its owner can read (archive_password_file, --password-file, PGPASSFILE, ~/.pgpass)"
    case .sslUnsupported:
        return "the server does not offer TLS, and the address asks for it (sslmode)"
    case .connectionError:
        if let underlying = error.underlying { return "connection failed: \(underlying)" }
        return "connection failed"
    case .serverClosedConnection:
        return "the server closed the connection"
    default:
        return "\(error.code)"
    }
}

private func state(_ info: PSQLError.ServerInfo) -> String? { info[.sqlState] }
