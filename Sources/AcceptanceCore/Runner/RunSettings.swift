import Foundation

/// What a run needs besides devices and time: which procedure, with which values, where.
public struct RunSettings: Sendable {
    public var runID: String
    public var procedure: Procedure
    /// Parameter values after command-line overrides.
    public var parameters: [String: Quantity]
    /// Values for prompts given on the command line (`--input rack_serial=...`).
    public var inputs: [String: String]
    /// Values a simulated rack supplies for prompts when no operator can answer (its serial number).
    public var simulatedInputs: [String: String] = [:]
    public var station: String
    public var operatorName: String?
    public var scenario: String?
    /// Text parameter values (a release name).
    public var textParameters: [String: String] = [:]
    /// Firmware manifests by release name, for firmware steps.
    public var firmwareManifests: [String: FirmwareManifest] = [:]
    /// Transport settings a technician or auditor must see in the record (`insecure TLS to compute01`).
    public var warnings: [String] = []
    /// How each device is reached, for the record (no credentials).
    public var endpoints: [String: String] = [:]
    /// The instruments the run uses, as they identified themselves, with their calibration.
    public var instruments: [InstrumentRecord] = []
    /// Limits changed for this run.
    public var deviations: [DeviationRecord] = []
    /// Shared equipment the run's steps take turns with (a line's resources), if any.
    public var gate: (any StepGate)?
    /// What simulates the rack, at a station that declares it is a simulator.
    public var simulator: String?
    /// The limit set the procedure's limits come from, if any.
    public var limitSet: LimitSetRecord?
    /// The model (profile) of each device used, as fitted.
    public var models: [String: String] = [:]
    /// The harness's version and executable digest, for the record.
    public var harness: RunRecord.HarnessInfo?
    /// The interlocks the supervisor watches (the rack's, with the station's changes, less those waived).
    public var interlocks: [Interlock] = []
    /// Interlocks the station waived, by name, with its reason: in the record and the report.
    public var waivers: [String: String] = [:]
    /// What each waived interlock would have watched, for the record.
    public var waivedDescriptions: [String: String] = [:]
    public var waivedConditions: [String: String] = [:]
    /// Why hazards may be confirmed without a person when nobody is at a terminal (`simulated rack`, a bench
    /// station's declaration); nil on a real station, where only identified operators confirm them.
    public var automaticHazards: String?

    public init(
        runID: String, procedure: Procedure, parameters: [String: Quantity], inputs: [String: String] = [:],
        station: String, operatorName: String? = nil, scenario: String? = nil
    ) {
        self.runID = runID
        self.procedure = procedure
        self.parameters = parameters
        self.inputs = inputs
        self.station = station
        self.operatorName = operatorName
        self.scenario = scenario
    }

    /// A run id that sorts by time and names the procedure: `20261125T010203Z-leak-test-3f9a`.
    public static func makeRunID(procedure: String, date: Date = Date()) -> String {
        let stamp = Timestamp.string(date).replacingOccurrences(of: "-", with: "").replacingOccurrences(
            of: ":", with: "")
        let compact = String(stamp.prefix(15)) + "Z"
        let suffix = String(UInt16.random(in: 0...UInt16.max), radix: 16).leftPadded(to: 4)
        return "\(compact)-\(procedure)-\(suffix)"
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
