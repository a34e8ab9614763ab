import Foundation

/// A throwaway PostgreSQL cluster on loopback, started by the test that needs it (Debian's `postgresql`: `initdb` and
/// `pg_ctl` in a temporary folder, on a free port), never a mock. Connections over TCP need a password (SCRAM), as a
/// factory server would; the socket in the cluster's folder is trusted, for `psql` set-up and checks.
public final class PostgresCluster: Sendable {
    public let directory: String
    public let port: Int
    let binaries: String
    /// Who owns and runs the cluster: `postgres` when the tests run as root (initdb refuses root), else nobody else.
    let owner: String?

    /// The role and password the tests' archives use.
    public let user = "qa_archive"
    public let password: String

    /// Initialises and starts a cluster; stop it with `stop()`.
    public static func start() async throws -> PostgresCluster {
        guard let binaries = installedBinaries() else {
            throw PeerMissing(description: "PostgreSQL server programs are not installed: run `bash .ci/setup`")
        }
        let directory = temporaryDirectory("acceptance-postgres")
        let owner: String? = getuid() == 0 ? "postgres" : nil
        let cluster = PostgresCluster(
            directory: directory, port: freePort(), binaries: binaries, owner: owner,
            password: "pw-\(UUID().uuidString.prefix(12))")
        let data = "\(directory)/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        if owner != nil {
            let (status, output) = try await runProgram(try program("chown"), ["-R", "postgres", directory])
            guard status == 0 else { throw PeerMissing(description: "chown postgres \(directory): \(output)") }
        }
        try await cluster.asOwner(
            "\(binaries)/initdb",
            ["-D", data, "-U", "postgres", "-A", "trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8"])
        try await cluster.asOwner(
            "\(binaries)/pg_ctl",
            [
                "-D", data, "-l", "\(directory)/server.log", "-w", "-t", "60", "-o",
                "-p \(cluster.port) -k \(data) -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
                    + "-c full_page_writes=off -c max_connections=60",
                "start",
            ])
        _ = try await cluster.psql("CREATE ROLE \(cluster.user) LOGIN PASSWORD '\(cluster.password)'")
        return cluster
    }

    init(directory: String, port: Int, binaries: String, owner: String?, password: String) {
        self.directory = directory
        self.port = port
        self.binaries = binaries
        self.owner = owner
        self.password = password
    }

    /// The newest installed server's programs (`/usr/lib/postgresql/15/bin`).
    static func installedBinaries() -> String? {
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return versions.compactMap { Int($0) }.sorted().reversed().map { "\(root)/\($0)/bin" }.first {
            FileManager.default.isExecutableFile(atPath: "\($0)/initdb")
        }
    }

    /// Runs a server program as the cluster's owner. Descriptors other than 0-2 are closed first: Foundation's
    /// `Process` learns that a child has ended from a socket the child inherits, and the server that `pg_ctl start`
    /// leaves running would otherwise hold it open, so the start would never be seen to end.
    @discardableResult
    func asOwner(_ executable: String, _ arguments: [String]) async throws -> String {
        let closeAndRun =
            "for fd in /proc/$$/fd/*; do n=${fd##*/}; [ \"$n\" -gt 2 ] && eval \"exec $n>&-\"; done; exec \"$@\""
        var command = [executable] + arguments
        if let owner { command = [try program("runuser"), "-u", owner, "--"] + command }
        let (status, output) = try await runProgram(
            try program("bash"), ["-c", closeAndRun, "bash"] + command, seconds: 120)
        guard status == 0 else {
            throw PeerMissing(description: "\(executable) \(arguments.joined(separator: " ")) failed: \(output)")
        }
        return output
    }

    /// Runs SQL as the superuser through the cluster's socket; the output is unaligned, tuples only.
    public func psql(_ sql: String, database: String = "postgres") async throws -> String {
        let (status, output) = try await runProgram(
            "\(binaries)/psql",
            [
                "-h", "\(directory)/data", "-p", String(port), "-U", "postgres", "-d", database, "-v",
                "ON_ERROR_STOP=1",
                "-A", "-t", "-q", "-c", sql,
            ])
        guard status == 0 else { throw PeerMissing(description: "psql \(sql): \(output)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs SQL and returns its exit status and output (for statements that are meant to fail).
    public func psqlStatus(_ sql: String, database: String) async throws -> (Int32, String) {
        try await runProgram(
            "\(binaries)/psql",
            [
                "-h", "\(directory)/data", "-p", String(port), "-U", "postgres", "-d", database, "-v",
                "ON_ERROR_STOP=1",
                "-A", "-t", "-q", "-c", sql,
            ])
    }

    /// A new database owned by the tests' role, and its archive address.
    public func newDatabase() async throws -> String {
        let name = "archive_\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await psql("CREATE DATABASE \(name) OWNER \(user)")
        return "postgres://\(user)@127.0.0.1:\(port)/\(name)?sslmode=disable"
    }

    /// A `.pgpass` file with the role's password, mode 0600.
    public func passwordFile(in folder: String) throws -> String {
        let path = "\(folder)/archive.pgpass"
        try "127.0.0.1:\(port):*:\(user):\(password)\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        return path
    }

    /// Stops the server at once and removes its folder, on a thread of its own: called from a `defer` in an async
    /// test, it must not hold one of the few threads every other test's tasks run on while `pg_ctl` waits.
    public func stop() {
        let runuser = (try? program("runuser")) ?? "/usr/sbin/runuser"
        let executable = owner == nil ? "\(binaries)/pg_ctl" : runuser
        let stop = ["\(binaries)/pg_ctl", "-D", "\(directory)/data", "-m", "immediate", "-w", "stop"]
        let arguments = owner.map { ["-u", $0, "--"] + stop } ?? Array(stop.dropFirst())
        let directory = self.directory
        Thread.detachNewThread {
            // posix_spawn, not Foundation's Process (see `ChildProcess`).
            let process = try? ChildProcess(
                executable, arguments, environment: ProcessInfo.processInfo.environment, stdout: "/dev/null",
                stderr: "/dev/null")
            process?.waitUntilExit()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}
