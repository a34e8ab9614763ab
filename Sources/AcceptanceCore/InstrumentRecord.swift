/// A station instrument a run used, as the record, report, OCP stream and attestation list it: what `*IDN?` said,
/// how it was reached, and its calibration.
public struct InstrumentRecord: Sendable, Hashable, Codable {
    /// Its name in the rack profile (`dmm`, `gauge`).
    public var name: String
    /// The device profile describing it.
    public var profile: String
    public var manufacturer: String
    public var model: String
    public var serial: String
    public var firmware: String
    /// How it was reached: `USB 2a8d:1301 serial MY60001234`, or `simulated`.
    public var connection: String
    /// The USBTMC capabilities it reported, when it is on USB.
    public var interface: String?
    /// The calibration certificate and the date it is due (YYYY-MM-DD), from the station.
    public var calibrationCertificate: String?
    public var calibrationDue: String?
    /// Why the calibration does not hold (past due, none recorded), when the run went ahead anyway.
    public var calibrationProblem: String?
    public var simulated: Bool

    public init(
        name: String, profile: String, manufacturer: String, model: String, serial: String, firmware: String,
        connection: String, interface: String? = nil, simulated: Bool = false
    ) {
        self.name = name
        self.profile = profile
        self.manufacturer = manufacturer
        self.model = model
        self.serial = serial
        self.firmware = firmware
        self.connection = connection
        self.interface = interface
        self.simulated = simulated
    }

    enum CodingKeys: String, CodingKey {
        case name, profile, manufacturer, model, serial, firmware, connection, interface, simulated
        case calibrationCertificate = "calibration_certificate"
        case calibrationDue = "calibration_due"
        case calibrationProblem = "calibration_problem"
    }

    /// For the console and the report: `gauge: Mensor CPG2500, serial 610123, firmware 1.4.2, calibrated to
    /// 2027-03-01 (CAL-2026-0311)`.
    public var summary: String {
        var text = "\(name): \(manufacturer) \(model), serial \(serial), firmware \(firmware), \(connection)"
        if simulated {
            text += ", simulated (no calibration)"
        } else if let problem = calibrationProblem {
            text += ", NOT CALIBRATED: \(problem)"
        } else if let due = calibrationDue {
            text += ", calibration due \(due)" + (calibrationCertificate.map { " (\($0))" } ?? "")
        }
        return text
    }
}

/// A limit of the procedure changed for one run (`--param max_decay=10kPa`): who, what, from, to and why. Recorded,
/// shown in red, signed, and an archive wants an approver's signature on a bundle that has one.
public struct DeviationRecord: Sendable, Hashable, Codable {
    public var parameter: String
    /// The procedure's value, and the one the run used.
    public var procedureValue: String
    public var value: String
    public var reason: String
    public var by: String

    public init(parameter: String, procedureValue: String, value: String, reason: String, by: String) {
        self.parameter = parameter
        self.procedureValue = procedureValue
        self.value = value
        self.reason = reason
        self.by = by
    }

    enum CodingKeys: String, CodingKey {
        case parameter, value, reason, by
        case procedureValue = "procedure_value"
    }

    /// `max_decay 2 kPa → 10 kPa by J. Smith: retest after QD swap (QA-1234)`.
    public var summary: String { "\(parameter) \(procedureValue) → \(value) by \(by): \(reason)" }
}
