import AcceptanceCore
import Foundation
import InstrumentCore
import Yams

/// A test station: which transport reaches each device instance of the rack (with timeouts, retries and where
/// credentials are), which models are fitted where they differ from the rack profile, and the station's identity,
/// default operator, signing key and archive. `Fixtures/stations/<name>.yaml`.
public struct StationConfiguration: Sendable {
    public var id: String
    public var description: String
    public var operatorName: String?
    public var rack: String?
    /// Each bound device's binding, by instance name.
    public var bindings: [String: any DeviceBinding] = [:]
    /// Each bound group's bindings, one per member in member order.
    public var groupBindings: [String: [any DeviceBinding]] = [:]
    /// Models fitted instead of the rack profile's, by device or group name (`cdu: coolflow-cdu-2000`).
    public var models: [String: String] = [:]
    /// Group sizes of the rack this station tests (`power_shelves: 6`).
    public var groupCounts: [String: Int] = [:]
    /// The station's Ed25519 private key (PKCS#8 PEM, mode 0600) that signs every bundle it produces.
    public var signingKey: String?
    /// Where `acceptance archive` keeps bundles by default: a folder, or a PostgreSQL address.
    public var archive: String?
    /// The PostgreSQL archive's password file (`.pgpass` format, mode 0600).
    public var archivePasswordFile: String?

    /// The station's archive with its password file, if it names one.
    public var archiveLocation: ArchiveLocation? {
        archive.map { ArchiveLocation($0, passwordFile: archivePasswordFile) }
    }
    public var file: String

    /// Interlocks this station changes (a faster poll) or adds, over the rack profile's.
    public var interlocks: [InterlockDefinition] = []
    /// Interlocks this station does not watch, by name, with the reason (it cannot reach their sensors), and where.
    public var waivers: [String: (reason: String, location: SourceLocation)] = [:]
    /// A bench station whose "rack" cannot hurt anyone (a simulator on this machine) may confirm hazardous steps
    /// without a person when nobody is at a terminal, with this reason, in every record. Never on a line station.
    public var automaticHazards: String?
    /// Whether this station's machine may run on the built-in simulated rack (`--simulated`); a line station says
    /// `allow_simulated: false`, so a simulated PASS can never be produced where real racks are tested.
    public var allowSimulated = true
    /// Whether a run here may change one of a procedure's limits (a recorded deviation, with a reason, that an
    /// approver signs before the archive takes the bundle). Off unless the station says so.
    public var allowDeviations = false
    /// `simulator: <what>`: this station's "rack" is a simulator (`acceptance simulate` on this machine): every run
    /// here is SIMULATED, in the record, the report, JUnit and the signature, and the archive treats it so.
    public var simulator: String?
    /// `report_pdf: true`: every run's bundle carries `report.pdf` (WeasyPrint), covered by the signature.
    public var reportPDF = false
    /// `limits: {leak-test: {file: …, sha256: …}}`: the limit set (a rack SKU's) each procedure is judged by here,
    /// pinned by digest: a file changed since it was pinned is refused.
    public var limitPins: [String: LimitPin] = [:]

    public struct LimitPin: Sendable, Hashable {
        public var file: String
        public var sha256: String
    }

    /// Each instrument's calibration, by instrument name (`instruments:` in the station file).
    public var calibrations: [String: Calibration] = [:]

    /// Where each device and group is bound in the file, for messages found later (a device the rack lacks).
    public var locations: [String: SourceLocation] = [:]

    public init(id: String, description: String = "", file: String) {
        self.id = id
        self.description = description
        self.file = file
    }

    /// Loads a station file, binding each device through the transport its key names (`modbus:`, `redfish:`).
    public static func load(path: String, connectors: DeviceConnectors) throws(DiagnosticsError) -> StationConfiguration
    {
        let (sink, source) = YAMLSource.open(path: path)
        var reader = YAMLReader(sink: sink)
        var station = StationConfiguration(id: "", file: path)
        if let root = source?.treeForChecking, let entries = reader.mapping(root, "station") {
            reader.rejectUnknownKeys(
                entries,
                allowed: [
                    "station", "description", "operator", "rack", "devices", "instruments", "groups",
                    "settings", "signing_key", "archive", "archive_password_file", "interlocks", "waive",
                    "confirm_hazards_automatically",
                    "allow_simulated", "allow_deviations", "report_pdf", "limits", "simulator",
                ],
                in: "station")
            for (key, _, value) in entries {
                switch key {
                case "station": station.id = reader.scalar(value, "station") ?? ""
                case "signing_key":
                    station.signingKey = reader.scalar(value, "signing_key").map { relative($0, to: path) }
                case "archive":
                    station.archive = reader.archiveLocation(value, relativeTo: path)
                case "archive_password_file":
                    station.archivePasswordFile = reader.scalar(value, "archive_password_file").map {
                        relative($0, to: path)
                    }
                case "interlocks": station.interlocks = InterlockDefinition.parseAll(value, reader: &reader)
                case "waive":
                    for (name, keyNode, node) in reader.mapping(value, "waive") ?? [] {
                        let reason = reader.scalar(node, "the reason for waiving '\(name)'") ?? ""
                        if reason.trimmingCharacters(in: .whitespaces).isEmpty {
                            reader.error(
                                "waiving interlock '\(name)' needs a reason (it goes in every record and report)",
                                at: keyNode)
                            continue
                        }
                        station.waivers[name] = (reason, reader.location(of: keyNode))
                    }
                case "confirm_hazards_automatically":
                    let reason = reader.scalar(value, "confirm_hazards_automatically") ?? ""
                    if reason.trimmingCharacters(in: .whitespaces).isEmpty {
                        reader.error(
                            "confirm_hazards_automatically needs the reason nobody can be hurt at this station (it goes "
                                + "in every record)", at: value)
                    } else {
                        station.automaticHazards = reason
                    }
                case "description": station.description = reader.scalar(value, "description") ?? ""
                case "allow_simulated": station.allowSimulated = reader.bool(value, "allow_simulated") ?? true
                case "allow_deviations": station.allowDeviations = reader.bool(value, "allow_deviations") ?? false
                case "report_pdf": station.reportPDF = reader.bool(value, "report_pdf") ?? false
                case "simulator": station.simulator = reader.scalar(value, "simulator")
                case "limits":
                    // procedure: {file: …, sha256: …}: the limit set this station judges that procedure by.
                    for (procedure, _, pinNode) in reader.mapping(value, "limits") ?? [] {
                        guard let fields = reader.mapping(pinNode, "limits of \(procedure)") else { continue }
                        reader.rejectUnknownKeys(fields, allowed: ["file", "sha256"], in: "limits of \(procedure)")
                        let file = fields.first { $0.key == "file" }.flatMap { reader.scalar($0.value, "file") }
                        let digest = fields.first { $0.key == "sha256" }.flatMap { reader.scalar($0.value, "sha256") }
                        guard let file, let digest else {
                            reader.error("limits of \(procedure) need 'file' and its 'sha256'", at: pinNode)
                            continue
                        }
                        let hex = digest.lowercased()
                        guard hex.count == 64, hex.allSatisfy(\.isHexDigit) else {
                            reader.error("sha256 is 64 hex digits (sha256sum FILE)", at: pinNode)
                            continue
                        }
                        station.limitPins[procedure] = .init(file: relative(file, to: path), sha256: hex)
                    }
                case "operator": station.operatorName = reader.scalar(value, "operator")
                case "rack": station.rack = reader.scalar(value, "rack")
                case "devices":
                    for (name, keyNode, node) in reader.mapping(value, "devices") ?? [] {
                        station.locations[name] = reader.location(of: keyNode)
                        guard
                            let (connector, settings) = entry(
                                name, "device", keyNode, node, into: &station, connectors: connectors, reader: &reader)
                        else { continue }
                        if let binding = connector.parseBinding(settings, device: name, file: path, reader: &reader) {
                            station.bindings[name] = binding
                        }
                    }
                case "instruments":
                    for (name, keyNode, node) in reader.mapping(value, "instruments") ?? [] {
                        station.locations[name] = reader.location(of: keyNode)
                        if let fields = reader.mapping(node, "instrument '\(name)'") {
                            if let calibration = fields.first(where: { $0.key == "calibration" }) {
                                station.calibrations[name] = Calibration.parse(calibration.value, reader: &reader)
                            } else {
                                reader.error(
                                    "instrument '\(name)' needs its calibration: {certificate: <id>, due: YYYY-MM-DD}",
                                    at: keyNode)
                            }
                        }
                        guard
                            let (connector, settings) = entry(
                                name, "instrument", keyNode, node, into: &station, connectors: connectors,
                                reader: &reader, extraKeys: ["calibration"])
                        else { continue }
                        if let binding = connector.parseBinding(settings, device: name, file: path, reader: &reader) {
                            station.bindings[name] = binding
                        }
                    }
                case "settings":
                    for (name, _, node) in reader.mapping(value, "settings") ?? [] {
                        if let count = reader.integer(node, name) { station.groupCounts[name] = count }
                    }
                case "groups":
                    for (name, keyNode, node) in reader.mapping(value, "groups") ?? [] {
                        station.locations["group:\(name)"] = reader.location(of: keyNode)
                        guard
                            let (connector, settings) = entry(
                                name, "group", keyNode, node, into: &station, connectors: connectors, reader: &reader)
                        else { continue }
                        if let bindings = connector.parseGroupBinding(
                            settings, group: name, file: path, reader: &reader)
                        {
                            station.groupBindings[name] = bindings
                        }
                    }
                default: break
                }
            }
            if station.id.isEmpty { reader.error("a station file needs 'station: <id>'", at: root) }
        }
        if reader.sink.hasErrors || source?.root == nil { throw DiagnosticsError(reader.sink.diagnostics) }
        return station
    }

    /// A device's or group's entry: its fitted `model`, if any, and the one transport it names with that transport's
    /// settings.
    static func entry(
        _ name: String, _ what: String, _ keyNode: Node, _ node: Node, into station: inout StationConfiguration,
        connectors: DeviceConnectors, reader: inout YAMLReader, extraKeys: [String] = []
    ) -> (any DeviceConnector, Node)? {
        guard let fields = reader.mapping(node, "\(what) '\(name)'") else { return nil }
        let transportKeys = connectors.all.map(\.stationKey)
        reader.rejectUnknownKeys(fields, allowed: ["model"] + extraKeys + transportKeys, in: "\(what) '\(name)'")
        if let model = parseModel(fields, reader: &reader) { station.models[name] = model }
        return transport(fields, connectors: connectors, what: "\(what) '\(name)'", at: keyNode, reader: &reader)
    }

    static func parseModel(_ fields: [(key: String, keyNode: Node, value: Node)], reader: inout YAMLReader) -> String? {
        guard let node = fields.first(where: { $0.key == "model" })?.value, let model = reader.scalar(node, "model")
        else {
            return nil
        }
        guard model.range(of: #"^[A-Za-z0-9][A-Za-z0-9._-]*$"#, options: .regularExpression) != nil else {
            reader.error("model '\(model)' is not a profile name (Fixtures/devices/<model>.yaml)", at: node)
            return nil
        }
        return model
    }

    /// The one transport a device or group names.
    static func transport(
        _ fields: [(key: String, keyNode: Node, value: Node)], connectors: DeviceConnectors,
        what: String, at node: Node, reader: inout YAMLReader
    ) -> (any DeviceConnector, Node)? {
        let named = fields.compactMap { field in
            connectors.connector(forStationKey: field.key).map { ($0, field.value) }
        }
        guard named.count == 1, let only = named.first else {
            let keys = connectors.all.map(\.stationKey).joined(separator: " or ")
            reader.error(
                named.isEmpty ? "\(what) needs a transport: \(keys)" : "\(what) names more than one transport",
                at: node)
            return nil
        }
        return only
    }

    /// Every binding of the rack's devices: each bound device, and each member of a bound group (by position).
    public func binding(of device: String, in rack: RackProfile) -> (any DeviceBinding)? {
        if let binding = bindings[device] { return binding }
        guard let instance = rack.devices.first(where: { $0.name == device }), let group = instance.group,
            let members = rack.group(named: group)?.members, let index = members.firstIndex(of: device),
            let list = groupBindings[group], index < list.count
        else { return nil }
        return list[index]
    }

    /// Problems binding this station to `rack`: devices or groups it does not have, groups with too few addresses.
    public func mismatches(with rack: RackProfile) -> [String] {
        var problems: [String] = []
        if let stationRack = self.rack, stationRack != rack.id {
            problems.append("station '\(id)' is for rack '\(stationRack)', not '\(rack.id)'")
        }
        // Each problem starts with where it is in the station file.
        func at(_ key: String) -> String { locations[key].map { "\($0): " } ?? "\(file): " }
        for name in bindings.keys.sorted() where !rack.devices.contains(where: { $0.name == name }) {
            var text = "\(at(name))station '\(id)' binds '\(name)', which rack '\(rack.id)' does not have"
            if let suggestion = closest(to: name, in: rack.devices.map(\.name)) {
                text += "; did you mean '\(suggestion)'?"
            }
            problems.append(text)
        }
        for (group, list) in groupBindings.sorted(by: { $0.key < $1.key }) {
            guard let members = rack.group(named: group)?.members else {
                problems.append(
                    "\(at("group:\(group)"))station '\(id)' binds group '\(group)', which rack '\(rack.id)' does not have"
                )
                continue
            }
            if members.count > list.count {
                problems.append(
                    "\(at("group:\(group)"))station '\(id)' gives \(list.count) addresses for \(group), which has "
                        + "\(members.count) members")
            }
        }
        return problems
    }
}

/// Every firmware manifest in `Fixtures/firmware/`, by release name.
enum FirmwareManifests {
    static func load(from fixtures: String) throws(HarnessError) -> [String: FirmwareManifest] {
        let directory = "\(fixtures)/firmware"
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
            $0.hasSuffix(".yaml")
        }
        var manifests: [String: FirmwareManifest] = [:]
        for file in files.sorted() {
            do {
                let manifest = try FirmwareManifest.load(path: "\(directory)/\(file)")
                manifests[manifest.release] = manifest
            } catch {
                throw .invalidFiles(error)
            }
        }
        return manifests
    }
}

/// A path from a station file, relative to the file's folder unless absolute.
func relative(_ path: String, to file: String) -> String {
    path.hasPrefix("/") ? path : ((file as NSString).deletingLastPathComponent as NSString).appendingPathComponent(path)
}

/// An instrument's calibration as its certificate says: the certificate's id and the date it is due again.
public struct Calibration: Sendable, Hashable {
    public var certificate: String
    /// `2027-03-01`.
    public var due: String
    /// The first moment it is past due: the start of the day after `due`, UTC.
    public var expires: Date

    /// `{certificate: CAL-2026-0311, due: 2027-03-01}`.
    static func parse(_ node: Node, reader: inout YAMLReader) -> Calibration? {
        guard let fields = reader.mapping(node, "calibration") else { return nil }
        reader.rejectUnknownKeys(fields, allowed: ["certificate", "due"], in: "calibration")
        let certificate = fields.first { $0.key == "certificate" }.flatMap { reader.scalar($0.value, "certificate") }
        let dueNode = fields.first { $0.key == "due" }?.value
        let due = dueNode.flatMap { reader.scalar($0, "due") }
        guard let certificate, !certificate.trimmingCharacters(in: .whitespaces).isEmpty, let due, let dueNode else {
            reader.error("calibration needs 'certificate' (its id) and 'due' (YYYY-MM-DD)", at: node)
            return nil
        }
        guard let day = Self.day(due) else {
            reader.error("due must be a date, YYYY-MM-DD, such as 2027-03-01; not '\(due)'", at: dueNode)
            return nil
        }
        return Calibration(certificate: certificate, due: due, expires: day.addingTimeInterval(86_400))
    }

    /// Midnight UTC of a YYYY-MM-DD date; nil for anything else.
    static func day(_ text: String) -> Date? {
        guard text.range(of: #"^\d{4}-\d{2}-\d{2}$"#, options: .regularExpression) != nil else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        formatter.timeZone = TimeZone(identifier: "UTC")
        guard let date = formatter.date(from: text), formatter.string(from: date) == text else { return nil }
        return date
    }

    /// Why it does not hold on `date`, or nil.
    public func problem(on date: Date) -> String? {
        date >= expires ? "calibration \(certificate) was due \(due)" : nil
    }
}

/// The instrument profiles in `Fixtures/devices/` that name the USB vendor:product they enumerate with.
public enum InstrumentProfiles {
    /// Profile model by `vendor:product`; profiles that do not load are left out.
    public static func byUSBID(fixtures: String) -> [String: String] {
        let folder = "\(fixtures)/devices"
        var found: [String: String] = [:]
        for file in ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        where file.hasSuffix(".yaml") {
            guard let profile = try? DeviceProfile.load(path: "\(folder)/\(file)", protocols: Transports.protocols),
                let usb = profile.scpiSettings.usbID
            else { continue }
            found[usb] = profile.model
        }
        return found
    }
}
