import Crypto
import Foundation

/// A suite: procedures run in order on one rack (`Procedures/suites/fat-suite.yaml`), with one combined bundle and
/// report. It stops at the first procedure that does not pass, unless it (or the command line) says to go on after a
/// FAIL; an ERROR or an abort always stops it.
public struct Suite: Sendable {
    public var id: String
    public var title: String
    public var version: String
    public var description: String
    /// Procedure ids (or paths), in the order they run.
    public var procedures: [Entry]
    /// Go on to the next procedure after one FAILs (never after an ERROR or an abort).
    public var continueOnFail: Bool
    public var file: String
    /// SHA-256 of the file's bytes, hex.
    public var sha256: String

    public struct Entry: Sendable {
        public var procedure: String
        public var location: SourceLocation
    }

    public static func load(path: String) throws(DiagnosticsError) -> Suite {
        let (sink, source) = YAMLSource.open(path: path)
        var reader = YAMLReader(sink: sink)
        var suite = Suite(
            id: "", title: "", version: "", description: "", procedures: [], continueOnFail: false, file: path,
            sha256: "")
        if let root = source?.treeForChecking, let entries = reader.mapping(root, "suite") {
            reader.rejectUnknownKeys(
                entries, allowed: ["suite", "title", "version", "description", "procedures", "continue_on_fail"],
                in: "suite")
            for (key, _, value) in entries {
                switch key {
                case "suite": suite.id = reader.scalar(value, "suite") ?? ""
                case "title": suite.title = reader.scalar(value, "title") ?? ""
                case "version": suite.version = reader.scalar(value, "version") ?? ""
                case "description": suite.description = reader.scalar(value, "description") ?? ""
                case "continue_on_fail": suite.continueOnFail = reader.bool(value, "continue_on_fail") ?? false
                case "procedures":
                    for item in reader.sequence(value, "procedures") ?? [] {
                        guard let id = reader.scalar(item, "procedure") else { continue }
                        if suite.procedures.contains(where: { $0.procedure == id }) {
                            reader.error("procedure '\(id)' is listed twice", at: item)
                        }
                        suite.procedures.append(Entry(procedure: id, location: reader.location(of: item)))
                    }
                default: break
                }
            }
            if suite.id.isEmpty { reader.error("a suite needs 'suite: <id>'", at: root) }
            if suite.title.isEmpty { reader.error("a suite needs a 'title'", at: root) }
            if suite.procedures.isEmpty { reader.error("a suite lists its 'procedures', in order", at: root) }
        }
        if reader.sink.hasErrors || source?.root == nil { throw DiagnosticsError(reader.sink.diagnostics) }
        if let data = FileManager.default.contents(atPath: path) {
            suite.sha256 = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        }
        return suite
    }
}

/// What a suite run came to: `suite.json` at the top of its bundle.
public struct SuiteRecord: Sendable, Codable {
    public static let schema = "acceptance.suite/1"

    public struct SuiteInfo: Sendable, Codable, Hashable {
        public var id: String
        public var title: String
        public var version: String
        public var file: String
        public var sha256: String

        public init(id: String, title: String, version: String, file: String, sha256: String) {
            self.id = id
            self.title = title
            self.version = version
            self.file = file
            self.sha256 = sha256
        }
    }

    /// One procedure of the suite: its run (folder, record) or why it did not run.
    public struct ProcedureRun: Sendable, Codable, Hashable {
        public var id: String
        public var runID: String?
        /// Its run folder, relative to the suite's.
        public var folder: String?
        public var verdict: Verdict
        public var message: String?
        public var started: String?
        public var ended: String?

        public init(
            id: String, runID: String? = nil, folder: String? = nil, verdict: Verdict, message: String? = nil,
            started: String? = nil, ended: String? = nil
        ) {
            self.id = id
            self.runID = runID
            self.folder = folder
            self.verdict = verdict
            self.message = message
            self.started = started
            self.ended = ended
        }

        enum CodingKeys: String, CodingKey {
            case id, folder, verdict, message, started, ended
            case runID = "run_id"
        }
    }

    public var schema = SuiteRecord.schema
    public var runID: String
    public var suite: SuiteInfo
    public var rackSerial: String?
    public var station: String
    public var scenario: String?
    public var `operator`: String?
    public var started: String
    public var ended: String?
    public var verdict: Verdict
    public var message: String?
    public var continueOnFail: Bool
    public var procedures: [ProcedureRun]

    /// What simulates the rack at a station that is a simulator.
    public var simulator: String?
    public var isSimulated: Bool { scenario != nil || simulator != nil }

    public init(
        runID: String, suite: SuiteInfo, station: String, scenario: String?, operator: String?, started: String,
        continueOnFail: Bool
    ) {
        self.runID = runID
        self.suite = suite
        self.station = station
        self.scenario = scenario
        self.operator = `operator`
        self.started = started
        self.continueOnFail = continueOnFail
        verdict = .pass
        procedures = []
    }

    enum CodingKeys: String, CodingKey {
        case schema, suite, station, scenario, started, ended, verdict, message, procedures, simulator
        case runID = "run_id"
        case rackSerial = "rack_serial"
        case `operator` = "operator"
        case continueOnFail = "continue_on_fail"
    }
}
