import Foundation
import Reports

/// A PostgreSQL archive's address: `postgres://USER@HOST[:PORT]/DATABASE[?sslmode=…&sslrootcert=FILE]`. It never
/// carries a password (that would end up in station files, shell history and process lists): the password comes from
/// the environment (`PGPASSWORD`) or a password file readable by its owner only (`PostgresCredentials`).
public struct PostgresAddress: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable, Equatable, CaseIterable {
        /// Plain TCP: for a server on loopback or a trusted network only.
        case disable
        /// TLS if the server offers it, plain otherwise (libpq's default).
        case prefer
        /// TLS, without checking the server's certificate.
        case require
        /// TLS, the certificate checked against `sslrootcert` (or the system's roots), not the host name.
        case verifyCA = "verify-ca"
        /// TLS, the certificate and the host name checked.
        case verifyFull = "verify-full"
    }

    public var user: String
    public var host: String
    public var port: Int
    public var database: String
    public var tls: TLSMode
    /// CA certificates (PEM) the server's certificate must chain to.
    public var rootCertificates: String?

    /// Whether a location names a PostgreSQL archive rather than a folder.
    public static func isAddress(_ location: String) -> Bool {
        location.hasPrefix("postgres://") || location.hasPrefix("postgresql://")
    }

    /// The address as people may see it: no password, ever.
    public var description: String {
        var text = "postgres://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)"
        if tls != .prefer { text += "?sslmode=\(tls.rawValue)" }
        return text
    }

    public init(
        user: String, host: String, port: Int = 5432, database: String, tls: TLSMode = .prefer,
        rootCertificates: String? = nil
    ) {
        self.user = user
        self.host = host
        self.port = port
        self.database = database
        self.tls = tls
        self.rootCertificates = rootCertificates
    }

    /// Reads an address. The user comes from the address or `PGUSER`; the database from the address, `PGDATABASE`
    /// or the user's name. Mistakes are named, and the text is never echoed with a password in it.
    public init(_ text: String, environment: [String: String]) throws(ArchiveError) {
        guard Self.isAddress(text), let components = URLComponents(string: text), let host = components.host,
            !host.isEmpty
        else {
            throw ArchiveError(
                .unavailable,
                "'\(Self.redacted(text))' is not a PostgreSQL address: write postgres://USER@HOST:PORT/DATABASE")
        }
        if components.password != nil {
            throw ArchiveError(
                .unavailable,
                "the archive address \(Self.redacted(text)) has a password in it: take it out, and give it in "
                    + "PGPASSWORD or a password file only its owner can read (archive_password_file, PGPASSFILE)")
        }
        guard let user = components.user ?? environment["PGUSER"], !user.isEmpty else {
            throw ArchiveError(
                .unavailable, "the archive address \(text) names no user: write postgres://USER@\(host)/… or set PGUSER"
            )
        }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        var address = PostgresAddress(
            user: user, host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host,
            port: components.port ?? 5432,
            database: path.isEmpty ? (environment["PGDATABASE"] ?? user) : path)
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = item.value.flatMap(TLSMode.init(rawValue:)) else {
                    throw ArchiveError(
                        .unavailable,
                        "the archive address \(text): sslmode '\(item.value ?? "")' is not one of "
                            + TLSMode.allCases.map(\.rawValue).joined(separator: ", "))
                }
                address.tls = mode
            case "sslrootcert":
                address.rootCertificates = item.value
            default:
                throw ArchiveError(
                    .unavailable,
                    "the archive address \(text): unknown setting '\(item.name)' (known: sslmode, sslrootcert)")
            }
        }
        if address.rootCertificates != nil, address.tls == .prefer || address.tls == .disable {
            address.tls = .verifyFull
        }
        self = address
    }

    /// The text with any password in it replaced by `***`.
    static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? "postgres://***"
    }
}

/// Where an archive's password comes from, as libpq and psql look for it: `PGPASSWORD`, else a password file
/// (`archive_password_file` of the station or line, else `PGPASSFILE`, else `~/.pgpass`) in the `.pgpass` format
/// (`host:port:database:user:password`, `*` matches anything, `\:` and `\\` escape). A file anyone but its owner
/// can read is refused, not quietly used.
public enum PostgresCredentials {
    public static func password(
        for address: PostgresAddress, passwordFile: String?, environment: [String: String]
    ) throws(ArchiveError) -> String? {
        if let password = environment["PGPASSWORD"] { return password }
        let file: String
        if let named = passwordFile ?? environment["PGPASSFILE"] {
            file = named
        } else if let home = environment["HOME"], FileManager.default.fileExists(atPath: "\(home)/.pgpass") {
            file = "\(home)/.pgpass"
        } else {
            return nil
        }
        var info = stat()
        guard stat(file, &info) == 0 else {
            throw ArchiveError(
                .unavailable, "cannot read the archive's password file \(file): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ArchiveError(.unavailable, "the archive's password file \(file) is not a regular file")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw ArchiveError(
                .unavailable,
                "the archive's password file \(file) can be read by others (mode "
                    + String(info.st_mode & 0o777, radix: 8) + "): `chmod 600 \(file)`; it is not used until then")
        }
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8)
        else {
            throw ArchiveError(.unavailable, "cannot read the archive's password file \(file)")
        }
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = split(String(line))
            guard fields.count == 5 else {
                throw ArchiveError(
                    .unavailable,
                    "\(file):\(number + 1): write host:port:database:user:password (found \(fields.count) fields)")
            }
            let wanted = [address.host, String(address.port), address.database, address.user]
            if zip(fields.prefix(4), wanted).allSatisfy({ $0 == "*" || $0 == $1 }) { return fields[4] }
        }
        return nil
    }

    /// A `.pgpass` line's fields: split on `:` not escaped by `\`.
    static func split(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == ":" {
                fields.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        fields.append(current)
        return fields
    }
}
