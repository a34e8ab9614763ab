import AcceptanceCore
import Crypto
import Foundation

/// Who signs a bundle, and what the signature means.
public struct BundleSigner {
    public var key: Curve25519.Signing.PrivateKey
    /// The station (or person) signing: `line-1-bay-4 (operator J. Smith)`.
    public var identity: String
    public var meaning: String

    public static let stationMeaning =
        "The test station attests that these files are exactly the records it produced for "
        + "this run, unaltered; it does not attest that the rack is fit for use beyond the verdict they state."

    public init(key: Curve25519.Signing.PrivateKey, identity: String, meaning: String = BundleSigner.stationMeaning) {
        self.key = key
        self.identity = identity
        self.meaning = meaning
    }
}

/// Files a bundle's attestation points at besides its own: the procedure and the station or scenario, by digest.
public struct BundleInputs: Sendable {
    public var procedureFile: String
    /// The station configuration, or the simulation scenario.
    public var configurationFile: String?
    /// Its SHA-256 as it was when the run was prepared (hashed then, not after the run).
    public var configurationSHA256: String?
    /// `acceptance 0.4.0`, and the SHA-256 of the executable that ran.
    public var harnessVersion: String
    public var harnessBinarySHA256: String?

    public init(procedureFile: String, configurationFile: String?, harnessVersion: String, harnessBinarySHA256: String?)
    {
        self.procedureFile = procedureFile
        self.configurationFile = configurationFile
        configurationSHA256 = configurationFile.flatMap { try? ReportBundle.sha256(file: $0) }
        self.harnessVersion = harnessVersion
        self.harnessBinarySHA256 = harnessBinarySHA256
    }
}

/// Turns a finished run's folder into a report bundle: `junit.xml`, `ocp.jsonl`, `report.html` and `verify.sh`
/// beside `record.json`, the journal and the series, then `attestation.dsse.json` over all of them.
public enum ReportBundle {
    public static let attestationFile = "attestation.dsse.json"
    public static let approvalFile = "approval.dsse.json"
    public static let statementType = "https://in-toto.io/Statement/v1"
    public static let predicateType = "https://in-toto.io/attestation/test-result/v0.1"

    public struct BundleError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Writes the derived files and the attestation. Unsigned (no signer) is allowed: the attestation then has no
    /// signatures, and `verify` says UNSIGNED.
    @discardableResult
    public static func make(
        folder: String, record: RunRecord, inputs: BundleInputs, signer: BundleSigner?,
        history: RackHistory? = nil, signedAt: Date = Date()
    ) throws(BundleError) -> DSSEEnvelope {
        let signature = signatureBlock(signer, signedAt: signedAt)
        try writeDerivedFiles(folder: folder, record: record, inputs: inputs, signature: signature, history: history)
        return try sign(folder: folder, record: record, inputs: inputs, signer: signer, signature: signature)
    }

    /// The same, with `report.pdf` printed from `report.html` (by `pdf`) before signing, so the signature covers
    /// the PDF as it covers the page it was printed from.
    @discardableResult
    public static func make(
        folder: String, record: RunRecord, inputs: BundleInputs, signer: BundleSigner?, pdf: PDFPrinter,
        history: RackHistory? = nil, signedAt: Date = Date()
    ) async throws(BundleError) -> DSSEEnvelope {
        let signature = signatureBlock(signer, signedAt: signedAt)
        try writeDerivedFiles(folder: folder, record: record, inputs: inputs, signature: signature, history: history)
        try await pdf.print(html: "\(folder)/report.html", to: "\(folder)/\(pdfFile)")
        return try sign(folder: folder, record: record, inputs: inputs, signer: signer, signature: signature)
    }

    public static let pdfFile = "report.pdf"

    static func signatureBlock(_ signer: BundleSigner?, signedAt: Date) -> SignatureBlock? {
        signer.map {
            SignatureBlock(
                identity: $0.identity, keyID: SigningKeys.keyID($0.key.publicKey),
                signedAt: Timestamp.string(signedAt), meaning: $0.meaning)
        }
    }

    /// The derived files written one at a time, each timed on the wall clock (for `acceptance-bench bundle`):
    /// reading the series, `junit.xml`, `ocp.jsonl`, `report.html`.
    public static func timedDerivedFiles(
        folder: String, record: RunRecord, harness: String
    ) throws(BundleError) -> [(file: String, seconds: Double)] {
        let clock = ContinuousClock()
        var timings: [(String, Double)] = []
        var start = clock.now
        func lap(_ name: String) {
            let now = clock.now
            timings.append((name, (now - start).seconds))
            start = now
        }
        let series = loadSeries(folder: folder, record: record)
        lap("series CSV read")
        do {
            try write(folder, "junit.xml", JUnitReport.xml(record))
            lap("junit.xml")
            try OCPStream.write(record, series: series, harness: harness, to: "\(folder)/ocp.jsonl")
            lap("ocp.jsonl")
            try write(folder, "report.html", HTMLReport.html(record, series: series, signature: nil))
            lap("report.html")
        } catch {
            throw BundleError(description: "cannot write the report files: \(error)")
        }
        return timings
    }

    /// `junit.xml`, `ocp.jsonl`, `report.html` and `verify.sh`, from the record and the series.
    static func writeDerivedFiles(
        folder: String, record: RunRecord, inputs: BundleInputs, signature: SignatureBlock?, history: RackHistory?
    ) throws(BundleError) {
        let series = loadSeries(folder: folder, record: record)
        do {
            try write(folder, "junit.xml", JUnitReport.xml(record))
            try OCPStream.write(record, series: series, harness: inputs.harnessVersion, to: "\(folder)/ocp.jsonl")
            try write(
                folder, "report.html", HTMLReport.html(record, series: series, signature: signature, history: history))
            try write(folder, "verify.sh", VerifyScript.text)
        } catch {
            throw BundleError(description: "cannot write the report files: \(error)")
        }
    }

    /// Hashes every file of the bundle and writes the (signed) attestation over them.
    @discardableResult
    public static func sign(
        folder: String, record: RunRecord, inputs: BundleInputs, signer: BundleSigner?,
        signedAt: Date = Date()
    ) throws(BundleError) -> DSSEEnvelope {
        let signature = signer.map {
            SignatureBlock(
                identity: $0.identity, keyID: SigningKeys.keyID($0.key.publicKey),
                signedAt: Timestamp.string(signedAt), meaning: $0.meaning)
        }
        return try sign(folder: folder, record: record, inputs: inputs, signer: signer, signature: signature)
    }

    static func sign(
        folder: String, record: RunRecord, inputs: BundleInputs, signer: BundleSigner?,
        signature: SignatureBlock?
    ) throws(BundleError) -> DSSEEnvelope {
        let statement = try statement(folder: folder, record: record, inputs: inputs, signature: signature)
        return try seal(folder: folder, statement: statement, signer: signer)
    }

    /// Signs a statement (or leaves it unsigned) and writes the envelope as the bundle's attestation.
    static func seal(folder: String, statement: [UInt8], signer: BundleSigner?) throws(BundleError) -> DSSEEnvelope {
        let envelope: DSSEEnvelope
        if let signer {
            do {
                envelope = try DSSEEnvelope.sign(payload: statement, type: DSSEEnvelope.inToto, key: signer.key)
            } catch {
                throw BundleError(description: "signing failed: \(error)")
            }
        } else {
            envelope = DSSEEnvelope(payloadType: DSSEEnvelope.inToto, payload: statement, signatures: [])
        }
        do {
            try write(folder, attestationFile, envelope.json)
        } catch {
            throw BundleError(description: "cannot write \(attestationFile): \(describeFileError(error))")
        }
        return envelope
    }

    struct SignatureBlock: Sendable {
        var identity: String
        var keyID: String
        var signedAt: String
        var meaning: String
    }

    static func write(_ folder: String, _ name: String, _ text: String) throws(RecordWriteError) {
        try writeFileAtomically(text.utf8, to: "\(folder)/\(name)")
    }

    /// Every file of the bundle that the attestation covers: all but the attestation and a later approval.
    public static func subjectFiles(in folder: String) throws(BundleError) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: folder) else {
            throw BundleError(description: "\(folder) is not a folder")
        }
        var files: [String] = []
        while let name = enumerator.nextObject() as? String {
            // lstat: a symbolic link, a FIFO or a device is never part of a bundle (its content is not the bundle's).
            var info = stat()
            guard lstat("\(folder)/\(name)", &info) == 0 else {
                throw BundleError(description: "cannot read \(folder)/\(name)")
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR: continue
            case S_IFREG: break
            default:
                throw BundleError(
                    description: "\(name) is not a regular file (a link or a device): not allowed in a bundle")
            }
            if name == attestationFile || name == approvalFile { continue }
            files.append(name)
        }
        return files.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    public static func sha256(file path: String) throws(BundleError) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw BundleError(description: "cannot read \(path)")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while true {
            let chunk: Data?
            do {
                chunk = try handle.read(upToCount: 1 << 20)
            } catch {
                throw BundleError(description: "cannot read \(path): \(describeFileError(error))")
            }
            guard let chunk, !chunk.isEmpty else { break }
            hasher.update(data: chunk)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    public static func sha256(bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    static func statement(
        folder: String, record: RunRecord, inputs: BundleInputs,
        signature: SignatureBlock?
    ) throws(BundleError) -> [UInt8] {
        let subjects = try subjects(in: folder)
        var configuration: [JSONValue] = [
            [
                "name": .string("procedure \(record.procedure.id) \(record.procedure.version)"),
                "uri": .string(record.procedure.file), "digest": ["sha256": .string(record.procedure.sha256)],
            ]
        ]
        if let file = inputs.configurationFile, let digest = inputs.configurationSHA256 {
            let kind = record.scenario == nil ? "station \(record.station)" : "scenario \(record.scenario ?? "")"
            configuration.append([
                "name": .string(kind), "uri": .string((file as NSString).lastPathComponent),
                "digest": ["sha256": .string(digest)],
            ])
        }
        configuration.append(harnessEntry(inputs))
        let graded = record.steps.filter { $0.verdict != .skipped }
        func names(_ verdicts: Set<Verdict>) -> [String] {
            graded.filter { verdicts.contains($0.verdict) }.map { "\($0.id) \($0.name)" }
        }
        var predicate = predicateCore(
            verdict: record.verdict, runID: record.runID, rackSerial: record.rackSerial, station: record.station,
            procedure: record.procedure.id, version: record.procedure.version, started: record.started,
            simulated: record.isSimulated, configuration: configuration, passed: names([.pass]),
            failed: names([.fail, .error, .aborted]))
        // Limits the run changed: an archive wants an approver's signature on a bundle that has any.
        predicate["deviations"] = .array(deviationEntries(record))
        // The limit set (a rack SKU's limits) the rack was judged by, by digest.
        if let set = record.limitSet {
            predicate["limitSet"] = [
                "name": .string(set.name), "file": .string(set.file), "sha256": .string(set.sha256),
                "values": .object(set.values.mapValues { .string($0) }),
            ]
        }
        // The instruments that measured the rack, as the signature covers them: identity and calibration.
        if let instruments = record.instruments, !instruments.isEmpty {
            predicate["instruments"] = .array(instruments.map(instrumentEntry))
        }
        if let signature { predicate["signer"] = signerEntry(signature) }
        let statement: JSONValue = [
            "_type": .string(statementType), "subject": .array(subjects),
            "predicateType": .string(predicateType), "predicate": .object(predicate),
        ]
        return statement.bytes
    }

    /// The test-result predicate's fields every bundle has, a run's or a suite's. `simulated`: a run on a simulated
    /// rack is never evidence about a real rack, whatever serial was typed in.
    static func predicateCore(
        verdict: Verdict, runID: String, rackSerial: String?, station: String, procedure: String, version: String,
        started: String, simulated: Bool, configuration: [JSONValue], passed: [String], failed: [String]
    ) -> [String: JSONValue] {
        [
            "result": .string(verdict == .pass ? "PASSED" : "FAILED"),
            "configuration": .array(configuration),
            "passedTests": .array(passed.map { .string($0) }),
            "failedTests": .array(failed.map { .string($0) }),
            "warnedTests": .array([]),
            "verdict": .string(verdict.rawValue),
            "runId": .string(runID),
            "rackSerial": rackSerial.map { .string($0) } ?? .null,
            "station": .string(station),
            "procedure": .string(procedure),
            "procedureVersion": .string(version),
            "started": .string(started),
            "simulated": .bool(simulated),
        ]
    }

    /// The harness build, as a configuration entry: its version and the SHA-256 of its executable.
    static func harnessEntry(_ inputs: BundleInputs) -> JSONValue {
        var harness: [String: JSONValue] = [
            "name": .string("acceptance \(inputs.harnessVersion)"), "uri": "acceptance",
        ]
        if let digest = inputs.harnessBinarySHA256 { harness["digest"] = ["sha256": .string(digest)] }
        return .object(harness)
    }

    /// A run's deviations as the predicate lists them (an archive wants an approval for any).
    static func deviationEntries(_ record: RunRecord) -> [JSONValue] {
        (record.deviations ?? []).map { deviation in
            [
                "parameter": .string(deviation.parameter), "procedureValue": .string(deviation.procedureValue),
                "value": .string(deviation.value), "by": .string(deviation.by),
                "reason": .string(deviation.reason),
            ]
        }
    }

    static func instrumentEntry(_ instrument: InstrumentRecord) -> JSONValue {
        var entry: [String: JSONValue] = [
            "name": .string(instrument.name), "manufacturer": .string(instrument.manufacturer),
            "model": .string(instrument.model), "serial": .string(instrument.serial),
            "firmware": .string(instrument.firmware), "connection": .string(instrument.connection),
            "simulated": .bool(instrument.simulated),
        ]
        if let due = instrument.calibrationDue { entry["calibrationDue"] = .string(due) }
        if let certificate = instrument.calibrationCertificate {
            entry["calibrationCertificate"] = .string(certificate)
        }
        if let problem = instrument.calibrationProblem { entry["uncalibrated"] = .string(problem) }
        return .object(entry)
    }

    static func signerEntry(_ signature: SignatureBlock) -> JSONValue {
        [
            "identity": .string(signature.identity), "keyid": .string(signature.keyID),
            "signedAt": .string(signature.signedAt), "meaning": .string(signature.meaning),
        ]
    }

    /// Every file of the bundle with its SHA-256, as in-toto subjects.
    static func subjects(in folder: String) throws(BundleError) -> [JSONValue] {
        var subjects: [JSONValue] = []
        for name in try subjectFiles(in: folder) {
            subjects.append([
                "name": .string(name), "digest": ["sha256": .string(try sha256(file: "\(folder)/\(name)"))],
            ])
        }
        return subjects
    }

    /// The series CSVs of the run, parsed (for the OCP stream and the plots).
    static func loadSeries(folder: String, record: RunRecord) -> [String: SeriesData] {
        var result: [String: SeriesData] = [:]
        for step in record.steps {
            guard let series = step.series,
                let bytes = try? readFile("\(folder)/\(series.file)", limit: 4 << 30)
            else { continue }
            result[step.id] = bytes.withUnsafeBufferPointer { SeriesData.parse(bytes: $0, record: series) }
        }
        return result
    }
}

/// A sampled series as numbers: times and one column per point.
struct SeriesData: Sendable {
    var points: [String]
    var units: [String]
    var times: [Double]
    var columns: [[Double]]

    static func parse(_ csv: String, record: SeriesRecord) -> SeriesData {
        var csv = csv
        return csv.withUTF8 { parse(bytes: $0, record: record) }
    }

    /// The CSV read in one pass over its bytes: each cell converted where it lies (no line or cell strings made),
    /// the header skipped, a line without a time skipped, a missing or unreadable value NaN.
    static func parse(bytes: UnsafeBufferPointer<UInt8>, record: SeriesRecord) -> SeriesData {
        let columns = record.points.count
        var data = SeriesData(
            points: record.points, units: record.units, times: [], columns: Array(repeating: [], count: columns))
        // Rows are about 20 bytes apiece and more: reserve once rather than grow.
        let estimate = bytes.count / max(12, 8 * (columns + 1))
        data.times.reserveCapacity(estimate)
        for index in data.columns.indices { data.columns[index].reserveCapacity(estimate) }
        var cells: [Double] = Array(repeating: .nan, count: columns + 1)
        var position = 0
        let end = bytes.count
        // Skip the header line.
        while position < end, bytes[position] != 10 { position += 1 }
        position += 1
        while position < end {
            var cell = 0
            var start = position
            for index in cells.indices { cells[index] = .nan }
            while position <= end {
                let byte = position < end ? bytes[position] : 10
                if byte == 44 || byte == 10 {
                    // A CRLF file's carriage return is not part of the last cell.
                    let cellEnd = byte == 10 && position > start && bytes[position - 1] == 13 ? position - 1 : position
                    if cell < cells.count, cellEnd > start {
                        cells[cell] = Self.number(bytes, from: start, to: cellEnd)
                    }
                    cell += 1
                    start = position + 1
                    if byte == 10 { break }
                }
                position += 1
            }
            position += 1
            guard cells[0].isFinite else { continue }
            data.times.append(cells[0])
            for index in 0..<columns { data.columns[index].append(cells[index + 1]) }
        }
        return data
    }

    /// The number in `bytes[from..<to]`, as `Double(String)` reads it (correctly rounded); NaN if it is not one.
    static func number(_ bytes: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Double {
        // Short fields (all of ours are) are copied to a terminated stack buffer for strtod's C-locale twin.
        let length = to - from
        guard length > 0, let base = bytes.baseAddress else { return .nan }
        guard length < 64 else {
            // A long cell (many digits): read it as text, as a line-by-line reader would.
            return Double(String(decoding: UnsafeBufferPointer(start: base + from, count: length), as: UTF8.self))
                ?? .nan
        }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: length + 1) { buffer -> Double in
            for offset in 0..<length { buffer[offset] = CChar(bitPattern: base[from + offset]) }
            buffer[length] = 0
            guard let start = buffer.baseAddress else { return .nan }
            let text = String(cString: start)
            return Double(text) ?? .nan
        }
    }
}
