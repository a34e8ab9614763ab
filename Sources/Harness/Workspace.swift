import AcceptanceCore
import Foundation

/// Where procedures and fixtures are: given explicitly, in the current directory, in `$ACCEPTANCE_HOME`, or
/// beside the executable's checkout (so `.build/debug/acceptance` works from anywhere).
public struct Workspace: Sendable {
    public var procedures: String
    public var fixtures: String

    public init(procedures: String, fixtures: String) {
        self.procedures = procedures
        self.fixtures = fixtures
    }

    public static func locate(procedures: String? = nil, fixtures: String? = nil) -> Workspace {
        let root = findRoot()
        return Workspace(procedures: procedures ?? "\(root)/Procedures", fixtures: fixtures ?? "\(root)/Fixtures")
    }

    static func findRoot() -> String {
        let manager = FileManager.default
        func isRoot(_ path: String) -> Bool {
            manager.fileExists(atPath: "\(path)/Procedures") && manager.fileExists(atPath: "\(path)/Fixtures")
        }
        let current = manager.currentDirectoryPath
        if isRoot(current) { return current }
        if let home = ProcessInfo.processInfo.environment["ACCEPTANCE_HOME"], isRoot(home) { return home }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? current).resolvingSymlinksInPath()
        var directory = executable.deletingLastPathComponent()
        while directory.path != "/" {
            if isRoot(directory.path) { return directory.path }
            directory = directory.deletingLastPathComponent()
        }
        return current
    }

    public var scenarios: String { "\(fixtures)/scenarios" }

    /// Procedure files in the procedures folder, sorted.
    public func procedureFiles() -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: procedures)) ?? []
        return files.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { "\(procedures)/\($0)" }
    }

    /// The file of a procedure, by id (`leak-test` → `Procedures/leak-test.yaml`) or by path.
    public func procedureFile(_ idOrPath: String) throws(HarnessError) -> String {
        let manager = FileManager.default
        if idOrPath.contains("/") || idOrPath.hasSuffix(".yaml") {
            guard manager.fileExists(atPath: idOrPath) else { throw .procedureNotFound(idOrPath, known: knownIDs()) }
            return idOrPath
        }
        for candidate in ["\(procedures)/\(idOrPath).yaml", "\(procedures)/\(idOrPath).yml"] {
            if manager.fileExists(atPath: candidate) { return candidate }
            // A link whose target is gone: say so, rather than "no procedure 'x'; did you mean 'x'?".
            if let target = try? manager.destinationOfSymbolicLink(atPath: candidate) {
                throw .input("\(candidate) is a symbolic link to \(target), which does not exist")
            }
        }
        throw .procedureNotFound(idOrPath, known: knownIDs().filter { $0 != idOrPath })
    }

    func knownIDs() -> [String] {
        procedureFiles().map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }
    }
}

/// What can stop a run before it starts, each naming what to fix.
public enum HarnessError: Error, Sendable, CustomStringConvertible {
    case procedureNotFound(String, known: [String])
    case invalidFiles(DiagnosticsError)
    case parameter(ParameterError)
    case input(String)
    /// A limit changed where that is not allowed, or without a reason: a usage error.
    case deviation(String)
    /// A scenario or station named that does not exist (a typo): a usage error, with the closest name.
    case unknownName(what: String, name: String, known: [String])
    case unsupported(String)
    case record(RecordWriteError)
    /// The station has a run it did not finish: nothing may move the rack until it is recovered.
    case unfinishedRun(UnfinishedRun)

    public var description: String {
        switch self {
        case let .procedureNotFound(name, known):
            var text = "no procedure '\(name)'"
            if let suggestion = closest(to: name, in: known) { text += "; did you mean '\(suggestion)'?" }
            return text + " (available: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
        case let .invalidFiles(error): return error.description
        case let .parameter(error): return error.description
        case let .input(message): return message
        case let .deviation(message): return message
        case let .unknownName(what, name, known):
            var text = "no \(what) '\(name)'"
            if let suggestion = closest(to: name, in: known) { text += "; did you mean '\(suggestion)'?" }
            return text + (known.isEmpty ? "" : " (\(what)s: \(known.joined(separator: ", ")))")
        case let .unsupported(message): return message
        case let .record(error): return error.description
        case let .unfinishedRun(run):
            return "station '\(run.station)' did not finish run \(run.summary): the rack may still be pressurised "
                + "or powered. Nothing moves it until it is recovered: acceptance recover --station \(run.stationFile) "
                + "(drives the devices that run moved to their safe state, checks it, and writes that run's record)"
        }
    }
}
