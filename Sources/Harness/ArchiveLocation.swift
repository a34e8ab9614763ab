import AcceptanceCore
import ArchivePostgres
import Foundation
import Reports
import Yams

/// Where an archive is: a folder (the embedded archive, SQLite-indexed) or a PostgreSQL address shared by every
/// station (`postgres://USER@HOST:PORT/DATABASE`), with the password file for the latter. Opening one gives the same
/// `ArchiveStore` either way, so every `acceptance archive` command and the report's rack history work on both.
public struct ArchiveLocation: Sendable, Equatable, CustomStringConvertible {
    /// The folder, or the address (never with a password in it).
    public var text: String
    /// A `.pgpass`-format file, readable by its owner only, with the PostgreSQL password.
    public var passwordFile: String?

    public init(_ text: String, passwordFile: String? = nil) {
        self.text = text
        self.passwordFile = passwordFile
    }

    public var isPostgres: Bool { PostgresAddress.isAddress(text) }

    public var description: String { text }

    /// Checks an address's form (a folder is any path); the message names what is wrong, never a password.
    public static func check(_ text: String, environment: [String: String]) -> String? {
        guard PostgresAddress.isAddress(text) else { return nil }
        do {
            _ = try PostgresAddress(text, environment: environment)
            return nil
        } catch {
            return error.description
        }
    }

    /// Whether there is an archive here to read without creating one: a folder with an index, or any address (the
    /// server says whether it holds an archive).
    public var mayExist: Bool {
        isPostgres || FileManager.default.fileExists(atPath: "\(text)/index.sqlite")
    }

    /// Opens the archive, runs `body` with it, and closes it whatever happens. `creating`: make the folder and index,
    /// or the database's tables, when they are not there yet (adding does; reading never creates anything).
    public func withStore<Result: Sendable>(
        creating: Bool, environment: [String: String] = ProcessInfo.processInfo.environment,
        _ body: (any ArchiveStore) async throws -> Result
    ) async throws -> Result {
        let store = try await open(creating: creating, environment: environment)
        do {
            let result = try await body(store)
            await store.close()
            return result
        } catch {
            await store.close()
            throw error
        }
    }

    /// The archive, open; the caller closes it.
    public func open(
        creating: Bool, environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws(ArchiveError) -> any ArchiveStore {
        guard isPostgres else {
            return creating ? try FolderArchive(directory: text) : try FolderArchive.open(directory: text)
        }
        let address = try PostgresAddress(text, environment: environment)
        let password = try PostgresCredentials.password(
            for: address, passwordFile: passwordFile, environment: environment)
        return try await PostgresArchive.connect(address, password: password, creating: creating)
    }

    /// The rack's earlier runs here, for the report; nil when there is no archive here yet.
    public func history(rackSerial: String) async -> RackHistory? {
        guard mayExist else { return nil }
        do {
            return try await withStore(creating: false) { store in
                await RackHistory.load(from: store, rackSerial: rackSerial)
            }
        } catch {
            return RackHistory(archive: text, runs: [], problem: "\(error)")
        }
    }
}

extension YAMLReader {
    /// An `archive:` value in a station or line file: a folder (relative to the file) or a PostgreSQL address, whose
    /// mistakes are reported at the value's line and column.
    mutating func archiveLocation(_ node: Node, relativeTo file: String) -> String? {
        guard let text = scalar(node, "archive") else { return nil }
        guard PostgresAddress.isAddress(text) else { return relative(text, to: file) }
        if let problem = ArchiveLocation.check(text, environment: ProcessInfo.processInfo.environment) {
            error("archive: \(problem)", at: node)
            return nil
        }
        return text
    }
}
