import AcceptanceCore
import Crypto
import Foundation
import Reports
import Simulation
import Synchronization

/// This harness's version, written into every record and bundle.
public enum HarnessVersion {
    public static let current = "0.5.0"

    /// SHA-256 of the running executable, so a record names exactly the build that produced it.
    public static let binarySHA256: String? = {
        try? ReportBundle.sha256(file: "/proc/self/exe")
    }()
}

/// How the runner reaches the built-in simulated rack.
public enum SimulatorTransport: String, Sendable, CaseIterable {
    /// Straight to the simulated devices, in memory.
    case memory
    /// Over real Modbus TCP and Redfish over HTTPS (pinned) on loopback, through libmodbus and AsyncHTTPClient, with
    /// the simulation clock still shared.
    case tcp
}

/// Everything the `run` command was asked to do.
public struct RunRequest: Sendable {
    public var procedure: String
    public var workspace: Workspace
    /// `name=value` overrides, unparsed.
    public var parameters: [String: String] = [:]
    public var inputs: [String: String] = [:]
    public var operatorName: String?
    public var scenario = "nominal"
    /// Simulated seconds per wall second; nil runs simulated time as fast as possible. With a station, it speeds
    /// the runner's clock up to match a simulator running at the same scale.
    public var timeScale: Double?
    public var reportsDirectory = "reports"
    /// A station file (or the name of one in `Fixtures/stations`): real devices instead of the simulated rack.
    public var station: String?
    public var simulatorTransport = SimulatorTransport.memory
    /// Models fitted in the simulated rack instead of the rack profile's, by device or group (`--model`). A station
    /// says its own in its file.
    public var models: [String: String] = [:]
    /// The Ed25519 private key that signs the bundle (a station's `signing_key` otherwise).
    public var signingKey: String?
    /// The station state folder (`StationState.defaultDirectory()` for the command line): a run at a station
    /// takes the station there, and is refused while a run it did not finish waits for recovery. Nil: no claim (the
    /// library's tests, and the built-in simulated rack, which has no state to recover).
    public var stateDirectory: String?
    /// How long clients wait for the simulated rack's BMCs on loopback (`--sim-transport tcp`); nil: 10 s.
    public var loopbackPatience: Duration?
    /// Runs even with an instrument whose calibration is past due (or not recorded), saying so in the record.
    public var allowUncalibrated = false
    /// Why a limit is overridden (`--deviation-reason`): required at a station that allows deviations.
    public var deviationReason: String?
    /// Shared equipment the run's steps take turns with (a line's resources).
    public var gate: (any StepGate)?
    /// The name a run on the simulated rack records as its station (a line's bay: `sim-line bay 3`); a station's
    /// runs record the station's own id.
    public var simulatedStationName: String?
    /// A limit set (`Fixtures/limits/<name>.yaml`, or a file): the rack SKU's limits instead of the procedure's
    /// defaults. A station that pins a set for the procedure uses its own and refuses another.
    public var limits: String?
    /// Print `report.pdf` into the bundle (WeasyPrint), covered by the signature. A station's `report_pdf: true`
    /// asks for it on every run.
    public var pdf = false
    /// The archive whose earlier runs of the rack go in the report when the station names none (a line's `archive`).
    public var archive: ArchiveLocation?
    /// One simulated rack and clock for several runs (a suite's procedures on one rack): made by the first run
    /// prepared with it, reused by the rest. Nil: a rack of its own for each run.
    public var simulation: SharedSimulation?

    public init(procedure: String, workspace: Workspace) {
        self.procedure = procedure
        self.workspace = workspace
    }
}

/// A run that has been loaded, checked and bound to its devices, but has not connected or touched the rack yet.
/// `run` connects the devices for the length of the run and closes every connection before it returns.
public struct PreparedRun: Sendable {
    public let inputs: RunInputs
    public let settings: RunSettings
    public let plan: DevicePlan
    public let folder: RunFolder?
    /// Where each device will be reached, for the console header.
    public let endpoints: [String: String]
    /// Retries and other transport events, made before any client (with the run's journal, so each is written the
    /// moment it happens) and handed to the runner.
    let transportEvents: TransportEventLog
    let bundleInputs: BundleInputs
    /// The station, held for the run (nil for the simulated rack, or without a state folder).
    let claim: StationClaim?
    /// Whether a run with an instrument out of calibration goes ahead (recorded).
    var allowUncalibrated = false
    /// Prints `report.pdf` into the bundle (`--pdf`, or the station's `report_pdf: true`).
    var pdfPrinter: PDFPrinter?
    /// The archive whose earlier runs of this rack go in the report: the station's, else the line's.
    var archive: ArchiveLocation?

    /// Each instrument the run uses whose calibration does not hold today (past due, or none recorded at the
    /// station), by name. The simulated bench has no calibration to hold.
    public func calibrationProblems(on date: Date = Date()) -> [String: String] {
        guard let station = inputs.station else { return [:] }
        var problems: [String: String] = [:]
        let instruments = Set(configuration.rack.devices.filter(\.isInstrument).map(\.name))
        for device in plan.devices where instruments.contains(device.name) {
            if let calibration = station.calibrations[device.name] {
                if let problem = calibration.problem(on: date) { problems[device.name] = problem }
            } else {
                problems[device.name] = "station '\(station.id)' records no calibration for it"
            }
        }
        return problems
    }

    public var configuration: RackConfiguration { inputs.configuration }
    /// The simulated rack, when the run is against the simulator (nil with a station).
    public var rack: SimulatedRack? { plan.rack }
    public var clock: any RunClock { plan.clock }
    /// Warnings found while loading (shown, but not fatal).
    public var warnings: [Diagnostic] { inputs.warnings }

    /// Loads the procedure, profiles and scenario or station once, resolves parameters, binds the devices the
    /// procedure uses (reading credentials, connecting nothing), and opens the run folder.
    public static func prepare(
        _ request: RunRequest, recordToDisk: Bool = true
    ) async throws(HarnessError) -> PreparedRun {
        let inputs = try RunInputs.load(request)
        // A PDF that was asked for and cannot be made is found out before the rack is touched.
        var printer: PDFPrinter?
        if request.pdf || inputs.station?.reportPDF == true {
            guard let found = PDFPrinter.find() else {
                throw .unsupported(
                    "report.pdf is asked for (\(request.pdf ? "--pdf" : "station '\(inputs.station?.id ?? "")' report_pdf"))"
                        + " but WeasyPrint is not installed: apt install weasyprint")
            }
            printer = found
        }
        // The interlocks' devices are bound too: the supervisor watches them even when no step uses them.
        let needed = inputs.usedDevices + inputs.watchedDevices.filter { !inputs.usedDevices.contains($0) }
        var plan: DevicePlan
        if let station = inputs.station {
            plan = try DevicePlan.make(
                configuration: inputs.configuration, source: .station(station),
                clock: WallClock(timeScale: request.timeScale ?? 1), only: Set(needed))
        } else {
            let clock = request.simulation?.clock ?? SimulationClock(timeScale: request.timeScale)
            let make = { () throws(HarnessError) -> SimulatedRack in
                try SimulatedRack.make(inputs: inputs, clock: clock)
            }
            let rack: SimulatedRack
            if let simulation = request.simulation {
                rack = try simulation.rack(make)
            } else {
                rack = try make()
            }
            plan = try DevicePlan.make(
                configuration: inputs.configuration,
                source: .simulated(rack, request.simulatorTransport), clock: clock, only: Set(needed))
            if let patience = request.loopbackPatience { plan.loopbackPatience = patience }
        }
        // At a station, nothing is bound to a rack another command is moving, or that a run left unrecovered.
        var claim: StationClaim?
        if let directory = request.stateDirectory, inputs.station != nil {
            claim = try StationClaim.takeForActuation(station: plan.stationID, in: directory)
        }
        let bound = Set(plan.devices.map(\.name))
        let unwatched = inputs.watchedDevices.filter { !bound.contains($0) }
        if !unwatched.isEmpty {
            let blind = inputs.interlocks.filter { interlock in
                !Set(interlock.devices + interlock.reaction.map(\.device)).isDisjoint(with: unwatched)
            }
            throw .unsupported(
                "station '\(plan.stationID)' does not connect \(unwatched.prefix(5).joined(separator: ", "))"
                    + (unwatched.count > 5 ? " and \(unwatched.count - 5) more" : "")
                    + ", which interlock\(blind.count == 1 ? "" : "s") "
                    + blind.map { "'\($0.name)'" }.joined(separator: ", ") + " must watch or move; bind "
                    + (unwatched.count == 1 ? "it" : "them") + " in the station, or waive the interlock by name with a "
                    + "reason (waive: {\(blind.first?.name ?? "name"): reason})")
        }
        let missing = needed.filter { !bound.contains($0) }
        if !missing.isEmpty {
            throw .unsupported(
                "procedure '\(inputs.procedure.id)' uses \(missing.joined(separator: ", ")), which station "
                    + "'\(plan.stationID)' does not connect")
        }
        var runID = RunSettings.makeRunID(procedure: inputs.procedure.id)
        var folder: RunFolder?
        if recordToDisk {
            // Run ids carry a random suffix; on the rare clash, draw another rather than share a folder.
            for attempt in 1...5 where folder == nil {
                do {
                    folder = try RunFolder(reportsDirectory: request.reportsDirectory, runID: runID)
                } catch {
                    if attempt == 5 { throw .record(error) }
                    runID = RunSettings.makeRunID(procedure: inputs.procedure.id)
                }
            }
        }
        if let claim, let folder, let station = inputs.station {
            try claim.begin(
                UnfinishedRun(
                    runID: runID, station: plan.stationID, stationFile: Self.absolute(station.file),
                    procedureFile: Self.absolute(inputs.procedureFile), folder: Self.absolute(folder.path),
                    procedures: Self.absolute(request.workspace.procedures),
                    fixtures: Self.absolute(request.workspace.fixtures), parameters: request.parameters,
                    inputs: request.inputs, operatorName: request.operatorName,
                    signingKey: request.signingKey.map(Self.absolute), timeScale: request.timeScale,
                    started: Timestamp.string(Date()), pid: getpid(), host: ProcessInfo.processInfo.hostName,
                    limits: request.limits.map { $0.contains("/") ? Self.absolute($0) : $0 },
                    deviationReason: request.deviationReason))
        }
        var prepared = make(inputs: inputs, plan: plan, folder: folder, runID: runID, request: request, claim: claim)
        prepared.pdfPrinter = printer
        return prepared
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// The run's settings and bundle inputs, for a run just prepared or one being recovered.
    static func make(
        inputs: RunInputs, plan: DevicePlan, folder: RunFolder?, runID: String, request: RunRequest,
        claim: StationClaim?
    ) -> PreparedRun {
        var settings = RunSettings(
            runID: runID, procedure: inputs.procedure, parameters: inputs.parameters,
            inputs: request.inputs,
            station: inputs.station == nil ? request.simulatedStationName ?? plan.stationID : plan.stationID,
            operatorName: request.operatorName ?? inputs.station?.operatorName,
            scenario: inputs.scenario?.name)
        settings.simulatedInputs = inputs.scenario?.inputs ?? [:]
        settings.textParameters = inputs.textParameters
        settings.firmwareManifests = inputs.manifests
        settings.warnings = plan.warnings
        settings.endpoints = plan.endpoints
        settings.models = Dictionary(uniqueKeysWithValues: plan.devices.map { ($0.name, $0.profile.model) })
        settings.interlocks = inputs.interlocks
        settings.deviations = inputs.deviations
        settings.limitSet = inputs.limitSet
        settings.simulator = inputs.station?.simulator
        settings.gate = request.gate
        for deviation in inputs.deviations {
            settings.warnings.append("DEVIATION from the procedure: \(deviation.summary)")
        }
        if inputs.station == nil {
            settings.automaticHazards = "simulated rack"
        } else if let station = inputs.station, let reason = station.automaticHazards {
            settings.automaticHazards = "station '\(station.id)': \(reason)"
            settings.warnings.append(
                "hazardous steps are confirmed without a person when nobody is at a terminal (station '\(station.id)': "
                    + "\(reason))")
        }
        for (interlock, reason) in inputs.waived {
            settings.waivers[interlock.name] = reason
            settings.waivedDescriptions[interlock.name] = interlock.description
            settings.waivedConditions[interlock.name] = interlock.condition.source
            settings.warnings.append("interlock '\(interlock.name)' WAIVED by the station: \(reason)")
        }
        settings.harness = RunRecord.HarnessInfo(
            version: HarnessVersion.current, binarySHA256: HarnessVersion.binarySHA256)
        if inputs.signingKeyPath == nil {
            settings.warnings.append(
                "UNSIGNED: no signing key (station signing_key or --signing-key); the report bundle "
                    + "will carry no signature and cannot be verified or archived")
        }
        var prepared = PreparedRun(
            inputs: inputs, settings: settings, plan: plan, folder: folder, endpoints: plan.endpoints,
            transportEvents: TransportEventLog(journal: folder?.journal, clock: plan.clock),
            bundleInputs: BundleInputs(
                procedureFile: inputs.procedureFile,
                configurationFile: inputs.configurationFile,
                harnessVersion: HarnessVersion.current,
                harnessBinarySHA256: HarnessVersion.binarySHA256),
            claim: claim)
        prepared.allowUncalibrated = request.allowUncalibrated
        prepared.archive = inputs.station?.archiveLocation ?? request.archive
        return prepared
    }

    /// Transport warnings the operator must see before the run (certificate verification off).
    public var transportWarnings: [String] { settings.warnings }

    /// Whether the rack is simulated: the built-in simulator, or a station that says its rack is one.
    public var isSimulated: Bool { rack != nil || inputs.station?.simulator != nil }

    /// What became of the run's report bundle.
    public enum BundleOutcome: Sendable {
        case signed(folder: String, keyID: String)
        case unsigned(folder: String)
        case failed(String)
    }

    /// Runs to the end, then turns the run folder into a report bundle (signed if there is a key).
    public func runAndBundle(
        console: any OperatorConsole, observer: any RunObserver, stop: StopController
    ) async
        -> (RunRecord, BundleOutcome?)
    {
        let record = await run(console: console, observer: observer, stop: stop)
        let bundle = await self.bundle(record, observer: observer)
        // The run has ended, its rack checked and its record written: nothing is left for recovery. (Without a
        // record on disk the marker stays, so `acceptance recover` writes one from the journal.)
        if let folder, FileManager.default.fileExists(atPath: folder.file("record.json")) { claim?.end() }
        return (record, bundle)
    }

    /// Turns the run folder into a report bundle, signed with the key read when the run was prepared (a key file
    /// changed or removed during the run changes nothing).
    func bundle(_ record: RunRecord, identity extra: String? = nil) async -> BundleOutcome? {
        guard let folder else { return nil }
        let signer: BundleSigner?
        switch self.signer(for: record, identity: extra) {
        case let .success(value): signer = value
        case let .failure(error): return .failed(error.description)
        }
        do {
            try ReportBundle.make(
                folder: folder.path, record: record, inputs: bundleInputs, signer: signer,
                history: await history(record))
        } catch {
            return .failed(error.description)
        }
        if let signer { return .signed(folder: folder.path, keyID: SigningKeys.keyID(signer.key.publicKey)) }
        return .unsigned(folder: folder.path)
    }

    /// The same, with `report.pdf` printed before signing when the run asked for it (`--pdf`, or the station's
    /// `report_pdf`). A PDF that cannot be printed leaves the bundle signed without it, and the observer is told.
    func bundle(_ record: RunRecord, observer: any RunObserver) async -> BundleOutcome? {
        guard let folder, let pdf = pdfPrinter else { return await bundle(record) }
        let signer: BundleSigner?
        switch self.signer(for: record, identity: nil) {
        case let .success(value): signer = value
        case let .failure(error): return .failed(error.description)
        }
        do {
            try await ReportBundle.make(
                folder: folder.path, record: record, inputs: bundleInputs, signer: signer, pdf: pdf,
                history: await history(record))
        } catch {
            observer.handle(.notice("report.pdf NOT made: \(error); the bundle is signed without it"))
            try? FileManager.default.removeItem(atPath: folder.file(ReportBundle.pdfFile))
            return await bundle(record)
        }
        if let signer { return .signed(folder: folder.path, keyID: SigningKeys.keyID(signer.key.publicKey)) }
        return .unsigned(folder: folder.path)
    }

    /// The rack's earlier runs in the station's archive (`archive:`, or the line's), for the report; nil without one.
    func history(_ record: RunRecord) async -> RackHistory? {
        guard let archive, let serial = record.rackSerial else { return nil }
        return await archive.history(rackSerial: serial)
    }

    struct SignerError: Error, CustomStringConvertible {
        var description: String
    }

    /// The station's signer for this record, from the key read when the run was prepared.
    func signer(for record: RunRecord, identity extra: String?) -> Result<BundleSigner?, SignerError> {
        var signer: BundleSigner?
        if let raw = inputs.signingKey {
            do {
                signer = BundleSigner(
                    key: try Curve25519.Signing.PrivateKey(rawRepresentation: raw),
                    identity: "station \(record.station)" + (record.operator.map { ", operator \($0)" } ?? "")
                        + (extra.map { ", \($0)" } ?? ""))
            } catch {
                return .failure(SignerError(description: "signing key: \(error)"))
            }
        }
        return .success(signer)
    }

    /// Connects the devices, runs to the end, and closes every connection, session, client and loopback server
    /// before returning. Cleanup always runs; the record is written to the run folder. (No bundle: see
    /// `runAndBundle`.)
    public func run(console: any OperatorConsole, observer: any RunObserver, stop: StopController) async -> RunRecord {
        let next = rack.map { SimulatedTechnician(rack: $0.redfish, next: observer) as any RunObserver } ?? observer
        let events = transportEvents
        let calibration = calibrationProblems()
        if !calibration.isEmpty, !allowUncalibrated {
            let runner = Runner(
                settings: settings, bus: DeviceBus(configuration: configuration, devices: [:]), clock: clock,
                console: console, observer: next, folder: folder, stop: stop, transportEvents: events)
            return runner.refuse(
                because: "before anything was actuated: "
                    + calibration.map { "instrument '\($0.key)' is not calibrated: \($0.value)" }
                    .joined(separator: "; ") + " (--allow-uncalibrated runs anyway and says so in the record)")
        }
        do {
            return try await plan.withDevices(events: events, supervised: Set(inputs.watchedDevices)) {
                bus, watching, connected in
                var settings = self.settings
                settings.endpoints.merge(connected.endpoints) { $1 }
                settings.warnings += connected.warnings
                settings.instruments = connected.instruments.values.sorted { $0.name < $1.name }.map { instrument in
                    var instrument = instrument
                    let calibrationRecord = inputs.station?.calibrations[instrument.name]
                    instrument.calibrationCertificate = calibrationRecord?.certificate
                    instrument.calibrationDue = calibrationRecord?.due
                    instrument.calibrationProblem = calibration[instrument.name]
                    return instrument
                }
                for (name, problem) in calibration.sorted(by: { $0.key < $1.key }) {
                    settings.warnings.append(
                        "UNCALIBRATED: instrument '\(name)' \(problem); run with --allow-uncalibrated")
                }
                let runner = Runner(
                    settings: settings, bus: bus, clock: clock, console: console, observer: next,
                    folder: folder, stop: stop, transportEvents: events, supervisorBus: watching)
                return await runner.run()
            }
        } catch {
            let runner = Runner(
                settings: settings, bus: DeviceBus(configuration: configuration, devices: [:]), clock: clock,
                console: console, observer: next, folder: folder, stop: stop, transportEvents: events)
            return runner.refuse(because: "before anything was actuated, the devices could not be connected: \(error)")
        }
    }
}

/// A simulated rack that outlives one run: the procedures of a suite test the same rack, in the state the last one
/// left it, on one simulation clock.
public final class SharedSimulation: Sendable {
    public let clock: SimulationClock
    private let shared = Mutex<SimulatedRack?>(nil)

    public init(timeScale: Double? = nil) { clock = SimulationClock(timeScale: timeScale) }

    /// The rack, made on first use.
    func rack(_ make: () throws(HarnessError) -> SimulatedRack) throws(HarnessError) -> SimulatedRack {
        if let rack = shared.withLock({ $0 }) { return rack }
        let rack = try make()
        shared.withLock { $0 = rack }
        return rack
    }
}

extension SimulatedRack {
    /// The simulated rack a run's inputs describe (scenario, rack configuration, firmware release), on `clock`.
    static func make(inputs: RunInputs, clock: any RunClock) throws(HarnessError) -> SimulatedRack {
        let scenario = inputs.scenario ?? .nominal
        do {
            return try SimulatedRack(
                configuration: inputs.configuration, scenario: scenario, clock: clock,
                manifest: inputs.manifests[scenario.redfish.release])
        } catch {
            throw .unsupported(error.description)
        }
    }
}

/// In simulation, does what a confirmed prompt asked the technician to do (`manual_action: remove-supply 1`), before
/// the next step looks, then passes every event on.
struct SimulatedTechnician: RunObserver {
    let rack: SimulatedRedfishRack
    let next: any RunObserver

    func handle(_ event: RunEvent) {
        if case let .stepFinished(step, record) = event, record.verdict == .pass, let action = step.manualAction {
            rack.perform(manualAction: action)
        }
        next.handle(event)
    }
}
