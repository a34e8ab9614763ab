import Logging
import PostgresNIO
import Reports

/// The archive's tables, in their own schema (`acceptance`) so they can share a database with anything else. Each
/// version is applied once, under an advisory lock, so stations opening a new database at once do not race.
enum PostgresSchema {
    /// Version n is `migrations[n - 1]`; never edit one that has shipped, add the next.
    static let migrations: [[String]] = [
        [
            "CREATE SCHEMA IF NOT EXISTS acceptance",
            """
            CREATE TABLE acceptance.object (
                sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
                size bigint NOT NULL CHECK (size >= 0),
                content bytea NOT NULL,
                stored_at timestamptz NOT NULL DEFAULT now())
            """,
            """
            CREATE TABLE acceptance.run (
                attestation_sha256 text PRIMARY KEY CHECK (attestation_sha256 ~ '^[0-9a-f]{64}$'),
                run_id text NOT NULL,
                rack_serial text,
                procedure text NOT NULL,
                procedure_version text NOT NULL,
                verdict text NOT NULL,
                station text NOT NULL,
                started text NOT NULL,
                signer text,
                added_at text NOT NULL)
            """,
            "CREATE INDEX run_rack ON acceptance.run (rack_serial)",
            "CREATE INDEX run_run_id ON acceptance.run (run_id)",
            "CREATE INDEX run_procedure ON acceptance.run (procedure)",
            "CREATE INDEX run_started ON acceptance.run (started)",
            """
            CREATE TABLE acceptance.file (
                attestation_sha256 text NOT NULL REFERENCES acceptance.run,
                name text NOT NULL,
                sha256 text NOT NULL REFERENCES acceptance.object,
                size bigint NOT NULL,
                PRIMARY KEY (attestation_sha256, name))
            """,
            // The archive only adds: what is stored is never changed or removed through it, nor by accident.
            """
            CREATE FUNCTION acceptance.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the acceptance archive only adds: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME;
            END $$
            """,
            """
            CREATE TRIGGER object_append_only BEFORE UPDATE OR DELETE ON acceptance.object
                FOR EACH ROW EXECUTE FUNCTION acceptance.refuse_change()
            """,
            """
            CREATE TRIGGER run_append_only BEFORE UPDATE OR DELETE ON acceptance.run
                FOR EACH ROW EXECUTE FUNCTION acceptance.refuse_change()
            """,
            """
            CREATE TRIGGER file_append_only BEFORE UPDATE OR DELETE ON acceptance.file
                FOR EACH ROW EXECUTE FUNCTION acceptance.refuse_change()
            """,
            """
            CREATE TRIGGER archive_no_truncate BEFORE TRUNCATE ON acceptance.object
                FOR EACH STATEMENT EXECUTE FUNCTION acceptance.refuse_change()
            """,
            """
            CREATE TRIGGER run_no_truncate BEFORE TRUNCATE ON acceptance.run
                FOR EACH STATEMENT EXECUTE FUNCTION acceptance.refuse_change()
            """,
            """
            CREATE TRIGGER file_no_truncate BEFORE TRUNCATE ON acceptance.file
                FOR EACH STATEMENT EXECUTE FUNCTION acceptance.refuse_change()
            """,
        ]
    ]

    /// Brings the database's archive tables up to the newest version.
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.withTransaction(logger: logger) { connection in
            // One station at a time; the lock ends with the transaction.
            try await connection.query(
                "SELECT pg_advisory_xact_lock(hashtext('acceptance.archive.schema'))", logger: logger)
            try await connection.query("CREATE SCHEMA IF NOT EXISTS acceptance", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS acceptance.schema_version (
                    version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            let current = try await version(connection, logger: logger)
            for (index, statements) in migrations.enumerated() where index + 1 > current {
                for statement in statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO acceptance.schema_version (version) VALUES (\(index + 1))", logger: logger)
            }
        }
    }

    /// Refuses a database without the archive's tables, or with a newer version than this tool knows.
    static func check(_ connection: PostgresConnection, logger: Logger, address: PostgresAddress) async throws {
        let exists = try await connection.query(
            "SELECT to_regclass('acceptance.schema_version') IS NOT NULL", logger: logger
        ).collect()
        guard let row = exists.first, try row.decode(Bool.self) else {
            throw ArchiveError(
                .unavailable,
                "the database \(address) holds no acceptance archive yet: `acceptance archive add` or "
                    + "`acceptance archive migrate` makes it")
        }
        let current = try await version(connection, logger: logger)
        guard current <= migrations.count else {
            throw ArchiveError(
                .unavailable,
                "the archive \(address) is at schema version \(current); this acceptance knows up to "
                    + "\(migrations.count): update acceptance")
        }
    }

    static func version(_ connection: PostgresConnection, logger: Logger) async throws -> Int {
        let rows = try await connection.query(
            "SELECT coalesce(max(version), 0) FROM acceptance.schema_version", logger: logger
        ).collect()
        guard let row = rows.first else { return 0 }
        return Int(try row.decode(Int32.self))
    }
}
