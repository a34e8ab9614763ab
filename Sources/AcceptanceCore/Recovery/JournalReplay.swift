import Foundation

/// What a run's `journal.jsonl` says happened, read back after the station stopped without finishing the run
/// (killed, crashed, power lost): the steps it finished, the one it was in, every sample taken, every device it
/// moved and what it commanded last, trips. Recovery rebuilds the run's record from this and nothing else.
public struct JournalReplay: Sendable {
    public struct Sample: Sendable, Hashable {
        public var index: Int
        public var elapsed: Double
        /// By point, in `units`.
        public var values: [String: Double]
        public var units: [String: String]
    }

    /// A step as the journal has it: started, and finished if the run got that far.
    public struct StepEvents: Sendable {
        public var id: String
        public var started: String?
        public var startedClock: Double?
        public var finished: StepRecord?
        public var samples: [Sample] = []
        /// Operators who accepted the step's hazard before it started.
        public var hazard: HazardRecord?
    }

    public var path: String
    public var runID: String?
    public var procedureID: String?
    public var procedureSHA256: String?
    public var started: String?
    public var parameters: [String: String] = [:]
    /// Steps in the order they started.
    public var steps: [StepEvents] = []
    /// Devices moved (or about to be), in the order first moved, with the commands sent to each.
    public var actuatedOrder: [String] = []
    public var actuated: [String: [String]] = [:]
    public var trips: [InterlockTrip] = []
    /// True when the run reached its end (`run_finished`): there is nothing to recover but the bundle.
    public var finished = false
    public var cleanupStarted = false
    /// The last event's kind, calendar time and run-clock seconds: when the station stopped.
    public var lastEvent: String?
    public var lastTime: String?
    public var lastClock: Double = 0
    /// Lines that could not be read (a line cut by a power loss): counted, not fatal.
    public var unreadableLines = 0

    /// Reads a journal. Only a journal that cannot be opened is an error; a torn last line is skipped and counted.
    public static func read(path: String) throws(RecordWriteError) -> JournalReplay {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RecordWriteError(path: path, reason: "cannot read the journal")
        }
        var replay = JournalReplay(path: path)
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            guard let event = try? JSONValue.parse(line), let kind = event["event"]?.string else {
                replay.unreadableLines += 1
                continue
            }
            replay.take(kind, event)
        }
        return replay
    }

    mutating func take(_ kind: String, _ event: JSONValue) {
        lastEvent = kind
        if let time = event["time"]?.string { lastTime = time }
        if let clock = event["clock_s"]?.number { lastClock = clock }
        switch kind {
        case "run_started":
            runID = event["run_id"]?.string
            procedureID = event["procedure"]?.string
            procedureSHA256 = event["procedure_sha256"]?.string
            started = event["time"]?.string
            for (name, value) in event["parameters"]?.object ?? [:] {
                parameters[name] = value.string ?? value.number.map(JSONLine.exact)
            }
        case "step_started":
            guard let id = event["step"]?.string else { return }
            steps.append(StepEvents(id: id, started: event["time"]?.string, startedClock: event["clock_s"]?.number))
        case "sample":
            guard let id = event["step"]?.string, let index = steps.lastIndex(where: { $0.id == id }) else { return }
            steps[index].samples.append(
                Sample(
                    index: event["index"]?.number.map { Int($0) } ?? steps[index].samples.count,
                    elapsed: event["elapsed_s"]?.number ?? 0,
                    values: (event["values"]?.object ?? [:]).compactMapValues(\.number),
                    units: (event["units"]?.object ?? [:]).compactMapValues(\.string)))
        case "step_finished":
            guard let id = event["step"]?.string else { return }
            if !steps.contains(where: { $0.id == id && $0.finished == nil }) {
                steps.append(StepEvents(id: id, started: event["time"]?.string, startedClock: nil))
            }
            guard let index = steps.lastIndex(where: { $0.id == id && $0.finished == nil }) else { return }
            steps[index].finished = Self.stepRecord(event, started: steps[index].started)
        case "hazard_confirmed":
            guard let id = event["step"]?.string, let index = steps.lastIndex(where: { $0.id == id }) else { return }
            steps[index].hazard = Self.hazard(event)
        case "cleanup_started":
            cleanupStarted = true
        case "actuated":
            guard let device = event["device"]?.string else { return }
            if actuated[device] == nil { actuatedOrder.append(device) }
            actuated[device, default: []].append(event["command"]?.string ?? "")
        case "interlock":
            guard let trip = Self.trip(event) else { return }
            trips.append(trip)
            for action in trip.reaction {
                let device = String(action.action.prefix { $0 != "." })
                if actuated[device] == nil { actuatedOrder.append(device) }
                actuated[device, default: []].append(action.action)
            }
        case "run_finished":
            finished = true
        default:
            break
        }
    }

    /// The step that was running when the journal ends, if any: started, never finished.
    public var interrupted: StepEvents? { steps.last { $0.finished == nil } }

    static func measurement(_ object: JSONValue) -> MeasurementRecord {
        var record = MeasurementRecord(
            name: object["name"]?.string ?? "?", value: object["value"]?.number, text: object["text"]?.string,
            unit: object["unit"]?.string, low: object["low"]?.number, high: object["high"]?.number,
            limits: object["limits"]?.string,
            verdict: object["verdict"]?.string.flatMap(Verdict.init(rawValue:)) ?? .error)
        record.comparator = object["comparator"]?.string
        record.of = object["of"]?.string
        record.statistic = object["statistic"]?.string
        return record
    }

    /// The step's record as far as the journal has it; the procedure supplies its name, group and source.
    static func stepRecord(_ event: JSONValue, started: String?) -> StepRecord {
        var record = StepRecord(
            id: event["step"]?.string ?? "?", group: .main, number: 0, name: "", kind: "",
            verdict: event["verdict"]?.string.flatMap(Verdict.init(rawValue:)) ?? .error, started: started,
            ended: event["time"]?.string, measurements: (event["measurements"]?.array ?? []).map(measurement),
            message: event["message"]?.string, error: event["error"]?.string, source: "")
        record.durationSeconds = event["duration_s"]?.number
        record.confirmedBy = event["confirmed_by"]?.string
        if let hazard = event["hazard"] { record.hazard = Self.hazard(hazard) }
        if let members = event["members"]?.array {
            record.members = members.map { member in
                MemberRecord(
                    device: member["device"]?.string ?? "?",
                    verdict: member["verdict"]?.string.flatMap(Verdict.init(rawValue:)) ?? .error,
                    measurements: (member["measurements"]?.array ?? []).map(measurement),
                    message: member["message"]?.string, error: member["error"]?.string)
            }
        }
        return record
    }

    static func hazard(_ object: JSONValue) -> HazardRecord {
        HazardRecord(
            hazard: object["hazard"]?.string ?? "",
            required: object["required"]?.number.map { Int($0) } ?? 1,
            confirmations: (object["confirmations"]?.array ?? []).map { confirmation in
                HazardRecord.Confirmation(
                    operator: confirmation["operator"]?.string ?? "?", at: confirmation["at"]?.string ?? "",
                    automatic: confirmation["automatic"]?.string)
            })
    }

    static func trip(_ event: JSONValue) -> InterlockTrip? {
        guard let name = event["interlock"]?.string else { return nil }
        return InterlockTrip(
            interlock: name, description: event["description"]?.string ?? name,
            condition: event["condition"]?.string ?? "",
            cause: event["cause"]?.string.flatMap(InterlockTrip.Cause.init(rawValue:)) ?? .condition,
            at: event["at"]?.string ?? event["time"]?.string ?? "",
            clockSeconds: event["tripped_clock_s"]?.number ?? 0,
            readings: (event["readings"]?.array ?? []).compactMap { $0["reading"]?.string },
            culprits: (event["culprits"]?.array ?? []).compactMap { $0["device"]?.string },
            reaction: (event["reaction"]?.array ?? []).map { result in
                InterlockTrip.ActionResult(
                    action: result["action"]?.string ?? "?", succeeded: result["succeeded"]?.bool ?? false,
                    error: result["error"]?.string)
            },
            reactedClockSeconds: event["reacted_clock_s"]?.number ?? 0)
    }
}
