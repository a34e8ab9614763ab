import AcceptanceCore
import Foundation
import Reports

/// `acceptance recover`: a run its station did not finish (killed, crashed, power lost) is found from the station's
/// state folder; the devices its journal says it moved are driven to their safe state and read back; then its record
/// is written from the journal (verdict ABORTED, "station stopped unexpectedly", every measurement and sample taken
/// before the stop) and bundled and signed like any run's, and the station is free again.
public enum Recovery {
    public struct Outcome: Sendable {
        public var run: UnfinishedRun
        /// What the rack was read back as after being driven.
        public var safeState: SafeStateRecord?
        /// The record written (nil when the rack was not shown safe and the record was held back).
        public var record: RunRecord?
        public var bundle: PreparedRun.BundleOutcome?
        /// The devices were driven and shown safe, or the run had already checked them (its record was written).
        public var madeSafe: Bool { safeState?.verified ?? (record != nil) }
    }

    /// Why recovery could not finish: the rack is not known safe and the station stays blocked.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var run: UnfinishedRun
        public var problem: String
        public var description: String { "run \(run.runID) not recovered: \(problem)" }
    }

    /// Recovers one unfinished run, holding its station's claim for the whole time.
    /// - Parameters:
    ///   - recordUnsafe: write the record even if the rack is not shown safe (the technician has made it safe by
    ///     hand); the record then says NOT SAFE. Otherwise the record waits and the station stays blocked.
    public static func recover(
        _ run: UnfinishedRun, claim: StationClaim, recoveredBy: String?, recordUnsafe: Bool = false,
        observer: any RunObserver
    ) async throws(Failure) -> Outcome {
        func fail(_ problem: String) -> Failure { Failure(run: run, problem: problem) }
        let replay: JournalReplay
        do {
            replay = try JournalReplay.read(path: run.folder + "/journal.jsonl")
        } catch {
            throw fail("\(error)")
        }
        var request = RunRequest(
            procedure: run.procedureFile, workspace: Workspace(procedures: run.procedures, fixtures: run.fixtures))
        request.station = run.stationFile
        request.parameters = run.parameters
        request.inputs = run.inputs
        request.operatorName = run.operatorName
        request.signingKey = run.signingKey
        request.timeScale = run.timeScale
        request.limits = run.limits
        request.deviationReason = run.deviationReason
        request.reportsDirectory = (run.folder as NSString).deletingLastPathComponent
        let prepared: PreparedRun
        do {
            let inputs = try RunInputs.load(request)
            guard let station = inputs.station else { throw HarnessError.unsupported("no station") }
            let plan = try DevicePlan.make(
                configuration: inputs.configuration, source: .station(station),
                clock: WallClock(timeScale: run.timeScale ?? 1), only: Set(replay.actuatedOrder))
            let folder: RunFolder
            do { folder = try RunFolder(existing: run.folder) } catch { throw HarnessError.record(error) }
            var made = PreparedRun.make(
                inputs: inputs, plan: plan, folder: folder, runID: run.runID, request: request, claim: claim)
            if let journaled = replay.procedureSHA256, journaled != inputs.procedure.sha256 {
                made = made.warning(
                    "\(inputs.procedureFile) changed since the run started (SHA-256 \(journaled.prefix(12))… then, "
                        + "\(inputs.procedure.sha256.prefix(12))… now): steps are named from the file as it is now")
            }
            prepared = made
        } catch let error as HarnessError {
            throw fail("\(error)")
        } catch {
            throw fail("\(error)")
        }
        guard let folder = prepared.folder else { throw fail("no run folder") }

        // The run wrote its record (it was stopped while bundling): the rack was checked by the run itself.
        if FileManager.default.fileExists(atPath: folder.file("record.json")) {
            do {
                let record = try JSONDecoder().decode(
                    RunRecord.self, from: Data(contentsOf: URL(fileURLWithPath: folder.file("record.json"))))
                let bundle = await prepared.bundle(record, identity: recoveredBy.map { "recovered by \($0)" })
                claim.end()
                return Outcome(run: run, safeState: nil, record: record, bundle: bundle)
            } catch {
                throw fail("\(folder.file("record.json")) cannot be read: \(describeFileError(error))")
            }
        }

        let events = TransportEventLog(journal: folder.journal, clock: prepared.clock)
        let result: (SafeStateRecord, RunRecord?)
        do {
            result = try await prepared.plan.withDevices(events: events) { bus, connected in
                var settings = prepared.settings
                settings.endpoints.merge(connected.endpoints) { $1 }
                settings.warnings += connected.warnings
                let runner = Runner(
                    settings: settings, bus: bus, clock: prepared.clock, console: AutomaticOperator(),
                    observer: observer, folder: folder, transportEvents: events)
                let safe = await runner.makeSafe(after: replay)
                guard safe.verified || recordUnsafe else { return (safe, nil) }
                return (safe, runner.writeRecovered(replay, safe: safe, recoveredBy: recoveredBy))
            }
        } catch {
            throw fail(
                "the devices it moved (\(replay.actuatedOrder.joined(separator: ", "))) could not be connected, so "
                    + "the rack is NOT known safe: \(error)")
        }
        let (safe, record) = result
        guard let record else {
            return Outcome(run: run, safeState: safe, record: nil, bundle: nil)
        }
        let bundle = await prepared.bundle(record, identity: recoveredBy.map { "recovered by \($0)" })
        if FileManager.default.fileExists(atPath: folder.file("record.json")) { claim.end() }
        return Outcome(run: run, safeState: safe, record: record, bundle: bundle)
    }
}

extension PreparedRun {
    /// The same run, with one more warning for its record.
    func warning(_ text: String) -> PreparedRun {
        var settings = self.settings
        settings.warnings.append(text)
        var copy = PreparedRun(
            inputs: inputs, settings: settings, plan: plan, folder: folder, endpoints: endpoints,
            transportEvents: transportEvents, bundleInputs: bundleInputs, claim: claim)
        copy.allowUncalibrated = allowUncalibrated
        copy.pdfPrinter = pdfPrinter
        copy.archive = archive
        return copy
    }
}
