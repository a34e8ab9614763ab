import AcceptanceCore
import Foundation

/// A suite's bundle: its folder holds each procedure's own bundle (a run folder, signed on its own) and, at the
/// top, `suite.json`, one `report.html` with every procedure, one `junit.xml` (a test suite per procedure) and
/// `verify.sh`; `attestation.dsse.json` covers every file, the procedures' included. `acceptance verify` and
/// `verify.sh` check it as they check a run's bundle.
public enum SuiteBundle {
    public static let recordFile = "suite.json"

    /// One procedure's run inside the suite: its folder (relative to the suite's) and its record.
    public struct Run: Sendable {
        public var folder: String
        public var record: RunRecord

        public init(folder: String, record: RunRecord) {
            self.folder = folder
            self.record = record
        }
    }

    /// Writes the suite's record, the combined report and JUnit, and the attestation over the whole folder.
    @discardableResult
    public static func make(
        folder: String, suite: SuiteRecord, runs: [Run], inputs: BundleInputs, signer: BundleSigner?,
        pdf: PDFPrinter? = nil, signedAt: Date = Date()
    ) async throws(ReportBundle.BundleError) -> DSSEEnvelope {
        let signature = signer.map {
            ReportBundle.SignatureBlock(
                identity: $0.identity, keyID: SigningKeys.keyID($0.key.publicKey),
                signedAt: Timestamp.string(signedAt), meaning: $0.meaning)
        }
        do {
            try ReportBundle.write(folder, recordFile, try json(suite))
            let ran = Set(runs.map(\.record.runID))
            let notRun = suite.procedures.filter { $0.runID.map { !ran.contains($0) } ?? true }.map {
                JUnitReport.NotRun(procedure: $0.id, verdict: $0.verdict, message: $0.message ?? "not run")
            }
            try ReportBundle.write(
                folder, "junit.xml",
                JUnitReport.xml(runs.map(\.record), name: "acceptance \(suite.suite.id)", notRun: notRun))
            try ReportBundle.write(folder, "report.html", html(suite, runs: runs, in: folder, signature: signature))
            try ReportBundle.write(folder, "verify.sh", VerifyScript.text)
        } catch {
            throw ReportBundle.BundleError(description: "cannot write the suite's report files: \(error)")
        }
        if let pdf { try await pdf.print(html: "\(folder)/report.html", to: "\(folder)/\(ReportBundle.pdfFile)") }
        let statement = try statement(folder: folder, suite: suite, runs: runs, inputs: inputs, signature: signature)
        return try ReportBundle.seal(folder: folder, statement: statement, signer: signer)
    }

    static func json(_ suite: SuiteRecord) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(suite), as: UTF8.self) + "\n"
    }

    /// The statement a verifier reads as it reads a run's: the suite in place of the procedure, every procedure's
    /// steps as tests (`leak-test main.3 Hold`), and every procedure's deviations and instruments.
    static func statement(
        folder: String, suite: SuiteRecord, runs: [Run], inputs: BundleInputs,
        signature: ReportBundle.SignatureBlock?
    ) throws(ReportBundle.BundleError) -> [UInt8] {
        let subjects = try ReportBundle.subjects(in: folder)
        var configuration: [JSONValue] = [
            [
                "name": .string("suite \(suite.suite.id) \(suite.suite.version)"),
                "uri": .string(suite.suite.file), "digest": ["sha256": .string(suite.suite.sha256)],
            ]
        ]
        for run in runs {
            configuration.append([
                "name": .string("procedure \(run.record.procedure.id) \(run.record.procedure.version)"),
                "uri": .string(run.record.procedure.file),
                "digest": ["sha256": .string(run.record.procedure.sha256)],
            ])
        }
        if let file = inputs.configurationFile, let digest = inputs.configurationSHA256 {
            let kind = suite.scenario == nil ? "station \(suite.station)" : "scenario \(suite.scenario ?? "")"
            configuration.append([
                "name": .string(kind), "uri": .string((file as NSString).lastPathComponent),
                "digest": ["sha256": .string(digest)],
            ])
        }
        configuration.append(ReportBundle.harnessEntry(inputs))
        func names(_ verdicts: Set<Verdict>) -> [String] {
            runs.flatMap { run in
                run.record.steps.filter { verdicts.contains($0.verdict) }.map {
                    "\(run.record.procedure.id) \($0.id) \($0.name)"
                }
            }
        }
        var deviations: [JSONValue] = []
        var instruments: [String: JSONValue] = [:]
        for run in runs {
            for case .object(var entry) in ReportBundle.deviationEntries(run.record) {
                entry["procedure"] = .string(run.record.procedure.id)
                deviations.append(.object(entry))
            }
            for instrument in run.record.instruments ?? [] {
                instruments[instrument.name] = ReportBundle.instrumentEntry(instrument)
            }
        }
        var predicate = ReportBundle.predicateCore(
            verdict: suite.verdict, runID: suite.runID, rackSerial: suite.rackSerial, station: suite.station,
            procedure: suite.suite.id, version: suite.suite.version, started: suite.started,
            simulated: suite.isSimulated || runs.contains { $0.record.isSimulated }, configuration: configuration,
            passed: names([.pass]), failed: names([.fail, .error, .aborted]))
        predicate["deviations"] = .array(deviations)
        predicate["suite"] = [
            "id": .string(suite.suite.id),
            "procedures": .array(
                suite.procedures.map { procedure in
                    var entry: [String: JSONValue] = [
                        "id": .string(procedure.id), "verdict": .string(procedure.verdict.rawValue),
                    ]
                    if let runID = procedure.runID { entry["runId"] = .string(runID) }
                    if let folder = procedure.folder { entry["folder"] = .string(folder) }
                    if let set = runs.first(where: { $0.record.runID == procedure.runID })?.record.limitSet {
                        entry["limitSet"] = ["name": .string(set.name), "sha256": .string(set.sha256)]
                    }
                    return .object(entry)
                }),
        ]
        if !instruments.isEmpty {
            predicate["instruments"] = .array(instruments.keys.sorted().compactMap { instruments[$0] })
        }
        if let signature { predicate["signer"] = ReportBundle.signerEntry(signature) }
        let statement: JSONValue = [
            "_type": .string(ReportBundle.statementType), "subject": .array(subjects),
            "predicateType": .string(ReportBundle.predicateType), "predicate": .object(predicate),
        ]
        return statement.bytes
    }

    /// One page for the whole suite: its verdict, the procedures in order, then each procedure's full report.
    static func html(
        _ suite: SuiteRecord, runs: [Run], in folder: String, signature: ReportBundle.SignatureBlock?
    ) -> String {
        let e = HTMLReport.e
        return HTMLReport.document(
            title: "\(suite.suite.id) \(suite.verdict.rawValue) · rack \(suite.rackSerial ?? "(no serial)")",
            runID: suite.runID, rackSerial: suite.rackSerial, simulated: suite.isSimulated
        ) {
            var out = """
                <h1>\(e(suite.suite.title))</h1>
                <div>suite \(e(suite.suite.id)) \(e(suite.suite.version)) · run \(e(suite.runID)) · rack \(e(suite.rackSerial ?? "(no serial)")) · station \(e(suite.station))</div>
                <div class="verdict \(suite.verdict.rawValue)" id="verdict">\(e(suite.verdict.rawValue))\(suite.isSimulated ? " · SIMULATED" : "")<small>\(e(suite.message ?? judgement(suite)))</small></div>
                <h2>Procedures</h2>
                <table id="procedures">
                <tr><th>#</th><th>Procedure</th><th>Run</th><th>Started</th><th>Verdict</th><th>Notes</th></tr>

                """
            for (index, procedure) in suite.procedures.enumerated() {
                let link = procedure.folder.map { "<a href=\"\(e($0))/report.html\">\(e(procedure.runID ?? $0))</a>" }
                out +=
                    "<tr><td>\(index + 1)</td><td><a href=\"#procedure-\(e(procedure.id))\">\(e(procedure.id))</a></td>"
                    + "<td>\(link ?? "-")</td><td>\(e(procedure.started ?? "-"))</td>"
                    + "<td class=\"\(procedure.verdict.rawValue)\">\(procedure.verdict.rawValue)</td>"
                    + "<td>\(e(procedure.message ?? ""))</td></tr>\n"
            }
            out += "</table>\n"
            for run in runs {
                let series = ReportBundle.loadSeries(folder: "\(folder)/\(run.folder)", record: run.record)
                out +=
                    "<section class=\"procedure\" id=\"procedure-\(e(run.record.procedure.id))\">\n"
                    + HTMLReport.runSections(run.record, series: series) + "</section>\n"
            }
            return out + HTMLReport.signatureSection(signature)
        }
    }

    static func judgement(_ suite: SuiteRecord) -> String {
        let text =
            switch suite.verdict {
            case .pass: "The rack passed every procedure of the suite."
            case .fail: "The rack FAILED a procedure of the suite."
            case .error: "The station could not complete the suite: this is not a verdict on the rack."
            case .aborted: "The suite was stopped before it finished."
            case .skipped: "Nothing was run."
            }
        return suite.isSimulated ? text + " SIMULATED rack: no real rack was tested." : text
    }
}
