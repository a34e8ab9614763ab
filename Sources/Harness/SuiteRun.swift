import AcceptanceCore
import Crypto
import Foundation
import Reports

/// `acceptance run fat-suite`: what the suite is, and the run request each of its procedures starts from.
public struct SuiteRequest: Sendable {
    /// A suite id (`Procedures/suites/<id>.yaml`) or a suite file.
    public var suite: String
    /// Station or simulated rack, parameters, inputs, operator, folders, key: shared by every procedure. A
    /// parameter or input goes to the procedures that have it (and must belong to at least one).
    public var run: RunRequest
    /// Go on after a procedure FAILs; nil: as the suite file says.
    public var continueOnFail: Bool?

    public init(suite: String, run: RunRequest) {
        self.suite = suite
        self.run = run
    }
}

/// A suite, loaded and checked (every procedure against the rack, every parameter and input), with its folder
/// made: ready to run its procedures one after another on one rack.
public struct SuiteRun: Sendable {
    public let suite: Suite
    public let request: SuiteRequest
    public let runID: String
    /// `reports/<run id>`: the suite's bundle, each procedure's run folder inside it.
    public let folder: String
    /// Each procedure's inputs, checked before anything connected.
    public let procedures: [RunInputs]
    /// The simulated rack every procedure tests, when there is no station.
    let simulation: SharedSimulation?
    public var isSimulated: Bool { procedures.first.map { $0.station == nil || $0.station?.simulator != nil } ?? true }
    public var continueOnFail: Bool { request.continueOnFail ?? suite.continueOnFail }

    /// Loads the suite and every procedure it lists (reporting every problem before any procedure runs) and makes
    /// the suite's folder.
    public static func prepare(_ request: SuiteRequest) throws(HarnessError) -> SuiteRun {
        let path = try request.run.workspace.suiteFile(request.suite)
        let suite: Suite
        do {
            suite = try Suite.load(path: path)
        } catch {
            throw .invalidFiles(error)
        }
        // A limit set is for one procedure: it goes to that one only.
        var limitsFor: String?
        if let requested = request.run.limits {
            let file = try RunInputs.limitSetFile(requested, workspace: request.run.workspace)
            do {
                limitsFor = try LimitSet.load(path: file).procedure
            } catch {
                throw .invalidFiles(error)
            }
        }
        var procedures: [RunInputs] = []
        var claimed = Set<String>()
        for entry in suite.procedures {
            var single = request.run
            single.procedure = entry.procedure
            // The procedure's own parameters: parse it once without any, then hand it those it has.
            let bare = try RunInputs.load(Self.without(parameters: single))
            let names = Set(bare.procedure.parameters.map(\.name))
            single.parameters = request.run.parameters.filter { names.contains($0.key) }
            let inputs = Set(bare.procedure.inputs.map(\.name))
            single.inputs = request.run.inputs.filter { inputs.contains($0.key) || $0.key == "rack_serial" }
            claimed.formUnion(single.parameters.keys)
            claimed.formUnion(single.inputs.keys)
            if bare.procedure.id != limitsFor { single.limits = nil }
            procedures.append(try RunInputs.load(single))
        }
        if let limitsFor, !procedures.contains(where: { $0.procedure.id == limitsFor }) {
            throw .input(
                "limit set \(request.run.limits ?? "") is for procedure '\(limitsFor)', which suite '\(suite.id)' does "
                    + "not run (it runs \(procedures.map(\.procedure.id).joined(separator: ", ")))")
        }
        for name in request.run.parameters.keys.sorted() where !claimed.contains(name) {
            throw .parameter(
                .unknown(name, known: Array(Set(procedures.flatMap { $0.procedure.parameters.map(\.name) })).sorted()))
        }
        for name in request.run.inputs.keys.sorted() where !claimed.contains(name) && name != "rack_serial" {
            throw .input("no procedure of suite '\(suite.id)' asks for an input '\(name)'")
        }
        var runID = RunSettings.makeRunID(procedure: suite.id)
        var folder = "\(request.run.reportsDirectory)/\(runID)"
        for attempt in 1...5 {
            do {
                try FileManager.default.createDirectory(
                    atPath: request.run.reportsDirectory, withIntermediateDirectories: true)
                guard mkdir(folder, 0o755) == 0 else {
                    throw RecordWriteError(path: folder, reason: String(cString: strerror(errno)))
                }
                break
            } catch let error as RecordWriteError {
                if attempt == 5 { throw .record(error) }
            } catch {
                if attempt == 5 { throw .record(RecordWriteError(path: folder, reason: describeFileError(error))) }
            }
            runID = RunSettings.makeRunID(procedure: suite.id)
            folder = "\(request.run.reportsDirectory)/\(runID)"
        }
        let simulation = procedures.first?.station == nil ? SharedSimulation(timeScale: request.run.timeScale) : nil
        return SuiteRun(
            suite: suite, request: request, runID: runID, folder: folder, procedures: procedures,
            simulation: simulation)
    }

    static func without(parameters request: RunRequest) -> RunRequest {
        var bare = request
        bare.parameters = [:]
        bare.inputs = [:]
        bare.deviationReason = nil
        bare.limits = nil
        return bare
    }

    /// What a procedure of the suite needs from whoever drives it (the command line): an observer for its run.
    public typealias ObserverFactory = @Sendable (_ index: Int, _ prepared: PreparedRun) -> any RunObserver

    /// Runs the procedures in order on one rack, each to its own record and bundle in the suite's folder, stopping
    /// at the first that does not pass (after a FAIL only if the suite does not continue), then writes and signs the
    /// suite's bundle. `stop` stops the procedure running and every one after it.
    public func run(
        console: any OperatorConsole, observer: ObserverFactory, stop: StopController
    ) async -> (SuiteRecord, PreparedRun.BundleOutcome) {
        let first = procedures.first
        var record = SuiteRecord(
            runID: runID,
            suite: .init(
                id: suite.id, title: suite.title, version: suite.version,
                file: (suite.file as NSString).lastPathComponent, sha256: suite.sha256),
            station: first?.station?.id ?? "simulated", scenario: first?.station == nil ? request.run.scenario : nil,
            operator: request.run.operatorName ?? first?.station?.operatorName, started: Timestamp.string(Date()),
            continueOnFail: continueOnFail)
        record.simulator = first?.station?.simulator
        var runs: [SuiteBundle.Run] = []
        var rackSerial = request.run.inputs["rack_serial"]
        var stopReason: String?
        var lastPrepared: PreparedRun?
        for (index, inputs) in procedures.enumerated() {
            let id = inputs.procedure.id
            if let reason = stopReason {
                record.procedures.append(.init(id: id, verdict: .skipped, message: "not run: \(reason)"))
                continue
            }
            if let reason = stop.reason {
                stopReason = "the suite was stopped (\(reason.rawValue))"
                record.procedures.append(.init(id: id, verdict: .skipped, message: "not run: \(stopReason ?? "")"))
                continue
            }
            var single = request.run
            single.procedure = inputs.procedureFile
            single.reportsDirectory = folder
            single.simulation = simulation
            single.parameters = request.run.parameters.filter { name, _ in
                inputs.procedure.parameter(named: name) != nil
            }
            let asked = Set(inputs.procedure.inputs.map(\.name))
            single.inputs = request.run.inputs.filter { asked.contains($0.key) }
            if inputs.limitSet == nil || inputs.station?.limitPins[inputs.procedure.id] != nil { single.limits = nil }
            // One rack: the serial the first procedure read (or was given) is every procedure's.
            if let rackSerial { single.inputs["rack_serial"] = rackSerial }
            let prepared: PreparedRun
            do {
                prepared = try await PreparedRun.prepare(single)
            } catch {
                record.procedures.append(.init(id: id, verdict: .error, message: "could not start: \(error)"))
                stopReason = "'\(id)' could not start"
                continue
            }
            lastPrepared = prepared
            // The suite's stop reaches the procedure running now.
            let procedureStop = StopController()
            let forward = Task {
                if let reason = await stop.waitForStop() { procedureStop.requestStop(reason) }
            }
            let (result, bundle) = await prepared.runAndBundle(
                console: console, observer: observer(index, prepared), stop: procedureStop)
            forward.cancel()
            await forward.value
            rackSerial = rackSerial ?? result.rackSerial
            var entry = SuiteRecord.ProcedureRun(
                id: id, runID: result.runID, folder: result.runID, verdict: result.verdict, message: result.message,
                started: result.started, ended: result.ended)
            if case let .failed(reason)? = bundle {
                entry.verdict = Verdict.worst(entry.verdict, .error)
                entry.message = (entry.message.map { "\($0); " } ?? "") + "bundle not written: \(reason)"
            }
            record.procedures.append(entry)
            runs.append(SuiteBundle.Run(folder: result.runID, record: result))
            switch entry.verdict {
            case .pass, .skipped: break
            case .fail where continueOnFail: break
            case .fail: stopReason = "'\(id)' FAILED (the suite stops at the first FAIL; --continue-on-fail goes on)"
            case .error: stopReason = "'\(id)' ended in ERROR"
            case .aborted: stopReason = "'\(id)' was stopped"
            }
        }
        record.rackSerial = rackSerial
        record.ended = Timestamp.string(Date())
        record.verdict = record.procedures.map(\.verdict).reduce(.pass, Verdict.worst)
        // A suite stopped (Ctrl-C) is ABORTED whatever ran; one that stopped at a FAIL stays FAIL.
        if stop.reason != nil, record.procedures.contains(where: { $0.verdict == .skipped }) {
            record.verdict = .aborted
        } else if record.verdict == .pass, record.procedures.contains(where: { $0.verdict == .skipped }) {
            record.verdict = .error
        }
        let passed = record.procedures.count { $0.verdict == .pass }
        let failed = record.procedures.filter { $0.verdict != .pass && $0.verdict != .skipped }
        var message = "\(passed) of \(record.procedures.count) procedures passed"
        if !failed.isEmpty {
            message +=
                "; "
                + failed.map { "\($0.id) \($0.verdict.rawValue)\($0.message.map { ": \($0)" } ?? "")" }
                .joined(separator: "; ")
        }
        if let reason = stop.reason { message += "; stopped by \(reason.rawValue)" }
        record.message = message
        let pdf = request.run.pdf || first?.station?.reportPDF == true ? PDFPrinter.find() : nil
        return (
            record,
            await bundle(
                record, runs: runs, signingKey: lastPrepared?.inputs.signingKey ?? first?.signingKey, pdf: pdf)
        )
    }

    /// Writes the suite's record, report and JUnit, and signs the whole folder with the station's key.
    func bundle(
        _ record: SuiteRecord, runs: [SuiteBundle.Run], signingKey: Data?, pdf: PDFPrinter?
    ) async -> PreparedRun.BundleOutcome {
        var signer: BundleSigner?
        if let raw = signingKey {
            do {
                signer = BundleSigner(
                    key: try Curve25519.Signing.PrivateKey(rawRepresentation: raw),
                    identity: "station \(record.station)" + (record.operator.map { ", operator \($0)" } ?? ""))
            } catch {
                return .failed("signing key: \(error)")
            }
        }
        let inputs = BundleInputs(
            procedureFile: suite.file, configurationFile: procedures.first?.configurationFile,
            harnessVersion: HarnessVersion.current, harnessBinarySHA256: HarnessVersion.binarySHA256)
        do {
            try await SuiteBundle.make(
                folder: folder, suite: record, runs: runs, inputs: inputs, signer: signer, pdf: pdf)
        } catch {
            // Without its PDF the suite is still signed (as a run's bundle is), and says why there is none.
            guard pdf != nil else { return .failed(error.description) }
            try? FileManager.default.removeItem(atPath: "\(folder)/\(ReportBundle.pdfFile)")
            ConsoleOutput.standardError.write("report.pdf NOT made: \(error); the suite is signed without it\n")
            do {
                try await SuiteBundle.make(folder: folder, suite: record, runs: runs, inputs: inputs, signer: signer)
            } catch {
                return .failed(error.description)
            }
        }
        if let signer { return .signed(folder: folder, keyID: SigningKeys.keyID(signer.key.publicKey)) }
        return .unsigned(folder: folder)
    }
}

extension Workspace {
    /// Suite files: `Procedures/suites/*.yaml`, sorted.
    public func suiteFiles() -> [String] {
        let folder = "\(procedures)/suites"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return files.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { "\(folder)/\($0)" }
    }

    public var suiteIDs: [String] {
        suiteFiles().map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }
    }

    /// Whether `name` names a suite rather than a procedure.
    public func isSuite(_ name: String) -> Bool {
        if name.contains("/") { return name.contains("/suites/") && FileManager.default.fileExists(atPath: name) }
        return suiteIDs.contains(name) && (try? procedureFile(name)) == nil
    }

    /// The file of a suite, by id (`fat-suite` → `Procedures/suites/fat-suite.yaml`) or by path.
    public func suiteFile(_ idOrPath: String) throws(HarnessError) -> String {
        if idOrPath.contains("/") {
            guard FileManager.default.fileExists(atPath: idOrPath) else {
                throw .procedureNotFound(idOrPath, known: suiteIDs)
            }
            return idOrPath
        }
        for candidate in ["\(procedures)/suites/\(idOrPath).yaml", "\(procedures)/suites/\(idOrPath).yml"]
        where FileManager.default.fileExists(atPath: candidate) {
            return candidate
        }
        throw .procedureNotFound(idOrPath, known: suiteIDs)
    }
}
