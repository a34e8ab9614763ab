import AcceptanceCore
import Foundation

/// What a station remembers between commands: which run is moving its rack right now, and a run that never
/// finished. Kept in a state folder (`$ACCEPTANCE_STATE_DIR`, else `$XDG_STATE_HOME/acceptance`, else
/// `~/.local/state/acceptance`), one pair of files per station id:
/// - `<station>.lock`, held with `flock` by the process driving the rack (the kernel lets go when it dies, however
///   it dies), so two commands never move one rack at once;
/// - `<station>.run.json`, written (and flushed) before a run connects anything and removed once its record and
///   bundle are written. Found while nobody holds the lock, it is a run the station did not finish: the rack may be
///   pressurised or powered, and nothing may move it until `acceptance recover` has made it safe.
///
/// The built-in simulated rack has none of this: it lives and dies with the process that runs it.
public enum StationState {
    /// The state folder this process uses.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit = environment["ACCEPTANCE_STATE_DIR"], !explicit.isEmpty { return explicit }
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") { return state + "/acceptance" }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return home + "/.local/state/acceptance"
    }

    public static func fileName(_ station: String) -> String {
        String(station.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
    }

    /// The unfinished run recorded for a station, if any (whether or not its process is still alive).
    public static func unfinished(station: String, in directory: String) throws(HarnessError) -> UnfinishedRun? {
        let path = "\(directory)/\(fileName(station)).run.json"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            return try JSONDecoder().decode(UnfinishedRun.self, from: data)
        } catch {
            throw .input(
                "\(path) (a run this station did not finish) cannot be read: \(describeFileError(error)); "
                    + "check the rack by hand, then move the file away")
        }
    }

    /// Every unfinished run in the state folder that no live process owns.
    public static func abandoned(in directory: String) throws(HarnessError) -> [UnfinishedRun] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var runs: [UnfinishedRun] = []
        for name in names.sorted() where name.hasSuffix(".run.json") {
            let station = String(name.dropLast(".run.json".count))
            guard let run = try unfinished(station: station, in: directory) else { continue }
            guard let claim = try? StationClaim.take(station: run.station, in: directory) else { continue }
            withExtendedLifetime(claim) {}
            runs.append(run)
        }
        return runs
    }

    /// Whether a live process holds the station (a run in progress), without taking it.
    public static func isBusy(station: String, in directory: String) -> Bool {
        guard FileManager.default.fileExists(atPath: "\(directory)/\(fileName(station)).lock") else { return false }
        return (try? StationClaim.take(station: station, in: directory)) == nil
    }
}

/// A run that a station started and has not finished: enough to find its folder and reconnect its devices.
public struct UnfinishedRun: Codable, Sendable, Hashable {
    public var runID: String
    public var station: String
    /// Absolute paths: recovery may be run from another directory.
    public var stationFile: String
    public var procedureFile: String
    public var folder: String
    public var procedures: String
    public var fixtures: String
    public var parameters: [String: String]
    public var inputs: [String: String]
    public var operatorName: String?
    public var signingKey: String?
    public var timeScale: Double?
    public var started: String
    public var pid: Int32
    public var host: String
    /// The limit set asked for (`--limits`) and the reason given for a deviation: recovery loads the run as it was.
    public var limits: String?
    public var deviationReason: String?

    enum CodingKeys: String, CodingKey {
        case runID = "run_id"
        case station
        case stationFile = "station_file"
        case procedureFile = "procedure_file"
        case folder, procedures, fixtures, parameters, inputs
        case operatorName = "operator"
        case signingKey = "signing_key"
        case timeScale = "time_scale"
        case started, pid, host, limits
        case deviationReason = "deviation_reason"
    }

    /// `20261201T…-leak-test-3f9a (leak-test, started 2026-12-01T…, pid 4242)`.
    public var summary: String {
        "\(runID) (\((procedureFile as NSString).lastPathComponent), started \(started), pid \(pid) on \(host))"
    }
}

/// The right to move a station's rack: an exclusive `flock` on its lock file, held for as long as this value lives
/// (one owner: closing the descriptor in `deinit` lets go; a killed process lets go with it).
public final class StationClaim: Sendable {
    public let station: String
    public let directory: String
    private let descriptor: Int32

    private init(station: String, directory: String, descriptor: Int32) {
        self.station = station
        self.directory = directory
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    var markerPath: String { "\(directory)/\(StationState.fileName(station)).run.json" }

    /// Takes the station, or says who has it. Creates the state folder (owner only) if needed.
    public static func take(station: String, in directory: String) throws(HarnessError) -> StationClaim {
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .record(RecordWriteError(path: directory, reason: describeFileError(error)))
        }
        let path = "\(directory)/\(StationState.fileName(station)).lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw .record(RecordWriteError(path: path, reason: String(cString: strerror(errno))))
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            let running = (try? StationState.unfinished(station: station, in: directory)).flatMap { $0 }
            throw .unsupported(
                "station '\(station)' is in use by another acceptance command"
                    + (running.map { ": run \($0.summary)" } ?? "") + "; wait for it to finish")
        }
        return StationClaim(station: station, directory: directory, descriptor: descriptor)
    }

    /// Takes the station for a command that moves the rack: refused while another command has it, and refused while
    /// a run it did not finish waits for `acceptance recover`.
    public static func takeForActuation(station: String, in directory: String) throws(HarnessError) -> StationClaim {
        let claim = try take(station: station, in: directory)
        if let run = try StationState.unfinished(station: station, in: directory) {
            throw .unfinishedRun(run)
        }
        return claim
    }

    /// Records the run as started and unfinished, flushed to disk before anything connects.
    public func begin(_ run: UnfinishedRun) throws(HarnessError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            try writeFileAtomically(try encoder.encode(run), to: markerPath)
        } catch let error as RecordWriteError {
            throw .record(error)
        } catch {
            throw .record(RecordWriteError(path: markerPath, reason: "\(error)"))
        }
    }

    /// The run is finished (its record written, the rack checked): nothing left to recover.
    public func end() {
        unlink(markerPath)
    }
}
