import Foundation

/// The outcome of a step or a run.
public enum Verdict: String, Sendable, Hashable, Codable, CustomStringConvertible {
    /// The rack met every limit.
    case pass = "PASS"
    /// The rack failed a limit.
    case fail = "FAIL"
    /// The station could not test: a device did not answer, a configuration was wrong. Never reported as FAIL.
    case error = "ERROR"
    /// The operator stopped the run.
    case aborted = "ABORTED"
    /// Not run, because an earlier step did not pass.
    case skipped = "SKIPPED"

    public var description: String { rawValue }

    /// The process exit code for a run's verdict: 0 PASS, 1 FAIL, 2 ERROR, 3 ABORTED.
    public var exitCode: Int32 {
        switch self {
        case .pass, .skipped: 0
        case .fail: 1
        case .error: 2
        case .aborted: 3
        }
    }

    /// How bad, for combining: a run is as bad as its worst step. ERROR outranks FAIL: a result the station
    /// could not obtain must never read as a judgement of the rack.
    var severity: Int {
        switch self {
        case .pass, .skipped: 0
        case .fail: 1
        case .error: 2
        case .aborted: 3
        }
    }

    public static func worst(_ a: Verdict, _ b: Verdict) -> Verdict { b.severity > a.severity ? b : a }
}

/// A measured value with its unit, the limits it was judged against, and the verdict.
public struct MeasurementRecord: Sendable, Codable, Hashable {
    public var name: String
    /// The numeric value, in `unit`; nil for text and true/false values (see `text`).
    public var value: Double?
    public var text: String?
    public var unit: String?
    public var low: Double?
    public var high: Double?
    /// `low <= value <= high`, as written, for people.
    public var limits: String?
    public var verdict: Verdict
    /// How the value was judged: `>=` (low only), `<=` (high only), `between` (both, inclusive), `==` (an exact
    /// text, such as a firmware version); nil when it was only recorded.
    public var comparator: String?
    /// For a statistic of a sampled series: which point, and which statistic (`cdu.loop_pressure`, `drop`).
    public var of: String?
    public var statistic: String?

    public init(
        name: String, value: Double?, text: String? = nil, unit: String?, low: Double? = nil,
        high: Double? = nil, limits: String? = nil, verdict: Verdict
    ) {
        self.name = name
        self.value = value
        self.text = text
        self.unit = unit
        self.low = low
        self.high = high
        self.limits = limits
        self.verdict = verdict
    }

    /// `301.2 kPa`, `manual`, `true`.
    public var displayValue: String {
        if let value { return unit.map { "\(Quantity.format(value)) \($0)" } ?? Quantity.format(value) }
        return text ?? "-"
    }

    /// `≤ 2 kPa`, `295 kPa … 305 kPa`.
    public var displayLimits: String? {
        let unitSuffix = unit.map { " \($0)" } ?? ""
        switch (low, high) {
        case let (low?, high?): return "\(Quantity.format(low))…\(Quantity.format(high))\(unitSuffix)"
        case let (low?, nil): return "≥ \(Quantity.format(low))\(unitSuffix)"
        case let (nil, high?): return "≤ \(Quantity.format(high))\(unitSuffix)"
        default: return nil
        }
    }
}

/// A sampled time series, stored beside the record as CSV.
public struct SeriesRecord: Sendable, Codable, Hashable {
    /// The CSV file in the run folder.
    public var file: String
    public var points: [String]
    public var units: [String]
    public var samples: Int
    public var intervalSeconds: Double

    public init(file: String, points: [String], units: [String], samples: Int, intervalSeconds: Double) {
        self.file = file
        self.points = points
        self.units = units
        self.samples = samples
        self.intervalSeconds = intervalSeconds
    }

    enum CodingKeys: String, CodingKey {
        case file, points, units, samples
        case intervalSeconds = "interval_s"
    }
}

public struct StepRecord: Sendable, Codable, Hashable {
    public var id: String
    public var group: StepGroup
    public var number: Int
    public var name: String
    public var kind: String
    public var verdict: Verdict
    public var started: String?
    public var ended: String?
    public var durationSeconds: Double?
    /// Wall-clock seconds the step took (on the simulated clock, `durationSeconds` is simulated time).
    public var wallSeconds: Double?
    public var measurements: [MeasurementRecord]
    /// What happened, in a sentence: why it failed, what was written, how the operator answered.
    public var message: String?
    /// For ERROR: the device or configuration problem.
    public var error: String?
    /// For prompts: `operator` when a person confirmed it, `auto` when confirmed without a terminal or with --yes.
    public var confirmedBy: String?
    public var series: SeriesRecord?
    /// Device transactions retried during the step, in order.
    public var retries: [String]?
    public var source: String
    /// For a `for_each` step: each member's own outcome.
    public var members: [MemberRecord]?
    /// For a hazardous step: the hazard and who accepted it.
    public var hazard: HazardRecord?
    /// For a step with `retry:`: every attempt, in order, the last being the one the step's verdict is.
    public var attempts: [AttemptRecord]?
    /// Shared equipment the step waited for before it could start (`reference gauge, 3.2 s`).
    public var waited: String?

    public init(
        id: String, group: StepGroup, number: Int, name: String, kind: String, verdict: Verdict,
        started: String? = nil, ended: String? = nil, measurements: [MeasurementRecord] = [], message: String? = nil,
        error: String? = nil, source: String
    ) {
        self.id = id
        self.group = group
        self.number = number
        self.name = name
        self.kind = kind
        self.verdict = verdict
        self.started = started
        self.ended = ended
        self.measurements = measurements
        self.message = message
        self.error = error
        self.source = source
    }

    enum CodingKeys: String, CodingKey {
        case id, group, number, name, kind, verdict, started, ended, measurements, message, error, series, retries,
            source
        case members, hazard, attempts, waited
        case durationSeconds = "duration_s"
        case wallSeconds = "wall_s"
        case confirmedBy = "confirmed_by"
    }
}

/// One attempt of a step with `retry:`: its verdict, what it measured and why it did not pass.
public struct AttemptRecord: Sendable, Codable, Hashable {
    /// From 1.
    public var attempt: Int
    public var verdict: Verdict
    public var started: String?
    public var ended: String?
    public var measurements: [MeasurementRecord]
    public var message: String?
    public var error: String?
    /// For a `for_each` step: each member's outcome in this attempt.
    public var members: [MemberRecord]?

    public init(
        attempt: Int, verdict: Verdict, started: String?, ended: String?, measurements: [MeasurementRecord],
        message: String? = nil, error: String? = nil
    ) {
        self.attempt = attempt
        self.verdict = verdict
        self.started = started
        self.ended = ended
        self.measurements = measurements
        self.message = message
        self.error = error
    }
}

/// One member's outcome of a `for_each` step (`compute07`: PASS, its measurements).
public struct MemberRecord: Sendable, Codable, Hashable {
    public var device: String
    public var verdict: Verdict
    public var measurements: [MeasurementRecord]
    public var message: String?
    public var error: String?

    public init(
        device: String, verdict: Verdict, measurements: [MeasurementRecord], message: String? = nil,
        error: String? = nil
    ) {
        self.device = device
        self.verdict = verdict
        self.measurements = measurements
        self.message = message
        self.error = error
    }
}

/// Everything about one run: written as `record.json` when the run ends.
public struct RunRecord: Sendable, Codable {
    public static let schema = "acceptance.record/1"

    public struct ProcedureInfo: Sendable, Codable, Hashable {
        public var id: String
        public var title: String
        public var version: String
        public var file: String
        public var sha256: String
    }

    public struct ClockInfo: Sendable, Codable, Hashable {
        public var kind: ClockKind
        public var timeScale: Double?
        /// Clock seconds from start to end: simulated seconds on a simulated clock.
        public var elapsedSeconds: Double
        public var wallSeconds: Double

        enum CodingKeys: String, CodingKey {
            case kind
            case timeScale = "time_scale"
            case elapsedSeconds = "elapsed_s"
            case wallSeconds = "wall_s"
        }
    }

    public var schema = RunRecord.schema
    public var runID: String
    public var procedure: ProcedureInfo
    public var parameters: [String: String]
    public var rackProfile: String
    public var rackSerial: String?
    public var `operator`: String?
    public var station: String
    /// The simulation scenario, when the rack was simulated.
    public var scenario: String?
    public var inputs: [String: String]
    public var clock: ClockInfo
    public var started: String
    public var ended: String?
    public var verdict: Verdict
    public var message: String?
    /// True when every cleanup step ran and passed: the rack was left in its safe state.
    public var cleanupCompleted: Bool
    public var steps: [StepRecord]
    /// How each device was reached (`compute01: https://10.0.5.11, session auth, pinned 3f2a…`): never credentials.
    public var endpoints: [String: String]?
    /// The model (device profile) of each device the run used, as fitted at the station (`cdu: coolflow-cdu-2000`).
    public var models: [String: String]?
    /// The station instruments the run used: identity from `*IDN?`, connection and calibration.
    public var instruments: [InstrumentRecord]?
    /// Limits of the procedure this run changed, each with who and why.
    public var deviations: [DeviationRecord]?
    /// The named limit set (a rack SKU's limits, `Fixtures/limits/…`) the run was judged against, by digest.
    public var limitSet: LimitSetRecord?
    /// Requests retried outside any step: while connecting (a BMC busy at login) or between steps.
    public var retries: [String]?
    /// Station settings an auditor must see: certificate verification switched off, an unsigned station.
    public var warnings: [String]?
    /// The harness that ran: its version and the SHA-256 of its executable.
    public var harness: HarnessInfo?
    /// Serial numbers the procedure read (`compute11.gpu3_serial`), and firmware versions (`compute07.bios_version`).
    public var parts: [String: String]?
    public var firmware: [String: String]?
    /// The interlocks watched (or waived) during the run, and any trip.
    public var interlocks: [InterlockRecord]?
    /// The safe-state check at the end of the run.
    public var safeState: SafeStateRecord?

    /// What simulates the rack at a station that is a simulator (`simulator:` in its file, as `acceptance simulate
    /// --station-out` writes it): the run is SIMULATED though it went through a station's real transports.
    public var simulator: String?

    /// A run on the built-in simulated rack (it has a scenario), or at a station whose rack is a simulator: never
    /// evidence about a real rack.
    public var isSimulated: Bool { scenario != nil || simulator != nil }
    /// Why the run ended as it did when the station itself stopped (`station stopped unexpectedly`), and the
    /// recovery that wrote this record afterwards.
    public var recovery: RecoveryRecord?

    public struct HarnessInfo: Sendable, Codable, Hashable {
        public var version: String
        public var binarySHA256: String?

        public init(version: String, binarySHA256: String?) {
            self.version = version
            self.binarySHA256 = binarySHA256
        }

        enum CodingKeys: String, CodingKey {
            case version
            case binarySHA256 = "binary_sha256"
        }
    }

    enum CodingKeys: String, CodingKey {
        case endpoints, models, instruments, deviations, retries, warnings, harness, parts, firmware, interlocks
        case limitSet = "limit_set"
        case simulator
        case recovery
        case safeState = "safe_state"
        case schema
        case runID = "run_id"
        case procedure, parameters
        case rackProfile = "rack_profile"
        case rackSerial = "rack_serial"
        case `operator`, station, scenario, inputs, clock, started, ended, verdict, message
        case cleanupCompleted = "cleanup_completed"
        case steps
    }

    public func steps(in group: StepGroup) -> [StepRecord] { steps.filter { $0.group == group } }
}

/// UTC timestamps with milliseconds, `2026-11-25T01:02:03.456Z`, formatted without Foundation's slow formatters
/// (the journal stamps every event).
public enum Timestamp {
    /// Parses what `string` writes (and RFC 3339 UTC with or without fractional seconds); nil otherwise.
    public static func date(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    public static func string(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        var millis = Int(((interval - Double(seconds)) * 1000).rounded())
        if millis >= 1000 {
            millis -= 1000
            seconds += 1
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        // Written straight into the string's own storage: no array in between (the journal stamps every event).
        return String(unsafeUninitializedCapacity: 24) { bytes in
            func put(_ value: Int, _ width: Int, at offset: Int) {
                var value = value
                for index in stride(from: offset + width - 1, through: offset, by: -1) {
                    bytes[index] = UInt8(48 + value % 10)
                    value /= 10
                }
            }
            put(Int(parts.tm_year) + 1900, 4, at: 0)
            bytes[4] = 45  // -
            put(Int(parts.tm_mon) + 1, 2, at: 5)
            bytes[7] = 45
            put(Int(parts.tm_mday), 2, at: 8)
            bytes[10] = 84  // T
            put(Int(parts.tm_hour), 2, at: 11)
            bytes[13] = 58  // :
            put(Int(parts.tm_min), 2, at: 14)
            bytes[16] = 58
            put(Int(parts.tm_sec), 2, at: 17)
            bytes[19] = 46  // .
            put(millis, 3, at: 20)
            bytes[23] = 90  // Z
            return 24
        }
    }

}
