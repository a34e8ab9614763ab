import AcceptanceCore
import Foundation
import Harness
import TestSupport
import Testing

@testable import Reports

let workspace = Workspace(procedures: "\(repositoryRoot)/Procedures", fixtures: "\(repositoryRoot)/Fixtures")

/// A station key pair and a keyring that trusts it (and an approver's).
struct Keys {
    let directory = temporaryDirectory()
    let stationKey: String
    let stationPublic: String
    let approverKey: String
    let keyring: String

    init(validUntil: String = "2099-01-01T00:00:00Z", revokedSince: String? = nil) throws {
        (stationKey, stationPublic, _) = try SigningKeys.generate(into: directory, name: "station")
        let approver = try SigningKeys.generate(into: directory, name: "qa")
        approverKey = approver.privatePath
        keyring = "\(directory)/keyring.yaml"
        try """
        keys:
          - name: line-1 station
            role: station
            public_key: station.pub.pem
            valid_from: 2026-01-01T00:00:00Z
            valid_until: \(validUntil)
        \(revokedSince.map { "    revoked_since: \($0)" } ?? "")
          - name: QA lead
            role: approver
            public_key: qa.pub.pem
        """.write(toFile: keyring, atomically: true, encoding: .utf8)
    }
}

/// Runs a procedure on the simulated rack and makes its bundle.
func bundle(
    _ procedure: String = "leak-test", scenario: String = "nominal", key: String?, rack: String? = nil,
    parameters: [String: String] = [:]
) async throws -> (RunRecord, String) {
    var request = RunRequest(procedure: procedure, workspace: workspace)
    request.scenario = scenario
    request.reportsDirectory = temporaryDirectory()
    request.signingKey = key
    request.parameters = parameters
    if let rack { request.inputs = ["rack_serial": rack] }
    let prepared = try await PreparedRun.prepare(request)
    let (record, outcome) = await prepared.runAndBundle(
        console: AutomaticOperator(), observer: SilentObserver(),
        stop: StopController())
    let folder = try #require(prepared.folder?.path)
    switch outcome {
    case .failed(let reason)?: Issue.record("bundle not made: \(reason)")
    case nil: Issue.record("no bundle")
    default: break
    }
    return (record, folder)
}

/// A trusted copy of verify.sh (not the bundle's own, which a tamperer could edit), run on a bundle.
func trustedVerify(_ folder: String, key: String) async throws -> (Int32, String) {
    let script = temporaryDirectory() + "/verify.sh"
    try VerifyScript.text.write(toFile: script, atomically: true, encoding: .utf8)
    return try await runProgram(try program("sh"), [script, key, folder])
}

@Suite("Signed report bundles")
struct BundleTests {
    @Test func aSignedLeakTestBundleVerifiesWithTheToolAndWithOpenSSL() async throws {
        let keys = try Keys()
        let (record, folder) = try await bundle(key: keys.stationKey)
        #expect(record.verdict == .pass)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        for name in [
            "attestation.dsse.json", "journal.jsonl", "junit.xml", "ocp.jsonl", "record.json", "report.html",
            "verify.sh",
        ] {
            #expect(files.contains(name), "\(name) missing from the bundle")
        }
        #expect(files.contains { $0.hasPrefix("series-") && $0.hasSuffix(".csv") })
        let result = BundleVerifier.verify(folder: folder, keyring: try Keyring.load(path: keys.keyring))
        #expect(result.verified, "\(result.failures)")
        #expect(result.runID == record.runID)
        // The script shipped in the bundle, with stock openssl and jq.
        let (status, output) = try await runProgram(
            try program("sh"), ["verify.sh", keys.stationPublic], directory: folder)
        #expect(status == 0, "\(output)")
        #expect(output.contains("VERIFIED"))
        // Measurements say how they were judged.
        let decay = try #require(record.steps.flatMap(\.measurements).first { $0.name == "Pressure decay over hold" })
        #expect(decay.comparator == "<=")
        #expect(decay.of == "cdu.loop_pressure")
        #expect(decay.statistic == "drop")
        #expect(
            record.steps.flatMap(\.measurements).first { $0.name == "Loop pressure at start of hold" }?.comparator
                == "between")
        // The record names the harness build and the release of the procedure.
        #expect(record.harness?.version == HarnessVersion.current)
        #expect(record.harness?.binarySHA256?.count == 64)
        let junit = try String(contentsOfFile: "\(folder)/junit.xml", encoding: .utf8)
        // The report QA files: limits as resolved for this run with units, not the procedure's expressions; when each
        // step began and how long it took; the harness and where each device was reached.
        let html = try String(contentsOfFile: "\(folder)/report.html", encoding: .utf8)
        #expect(html.contains("<td class=\"limits\">290…350 kPa</td>"))
        #expect(!html.contains("test_pressure - 10 kPa"))
        #expect(html.contains("<th>Started</th><th class=\"num\">Duration</th>"))
        #expect(html.contains("<tr><td>Harness</td><td>acceptance \(HarnessVersion.current)"))
        #expect(html.contains("<tr><td>Endpoint cdu</td>"))
        // A case per measurement, named by its step (classname) and its own name; the safe-state check its own.
        #expect(
            junit.contains("<testsuite name=\"leak-test 1.0.0 SIMULATED\" tests=\"28\" failures=\"0\" errors=\"0\""))
        #expect(junit.contains("<testcase classname=\"leak-test.Hold\" name=\"Pressure decay over hold\""))
        #expect(junit.contains("<testcase classname=\"leak-test.safety\" name=\"safe state\""))
    }

    @Test func everyKindOfTamperingIsRejectedByBothVerifiers() async throws {
        let keys = try Keys()
        let keyring = try Keyring.load(path: keys.keyring)
        let (_, folder) = try await bundle(key: keys.stationKey)
        let (_, other) = try await bundle(scenario: "loop-leak", key: keys.stationKey)
        func bothReject(_ what: String, mentioning word: String) async throws {
            let result = BundleVerifier.verify(folder: folder, keyring: keyring)
            #expect(!result.verified, "acceptance verify accepted: \(what)")
            #expect(result.failures.joined().contains(word), "\(what): \(result.failures)")
            let (status, output) = try await trustedVerify(folder, key: keys.stationPublic)
            #expect(status != 0, "verify.sh accepted: \(what)\n\(output)")
            #expect(output.contains("FAIL"))
        }
        // One byte flipped in each file in turn.
        for name in try ReportBundle.subjectFiles(in: folder) {
            let path = "\(folder)/\(name)"
            let original = try Data(contentsOf: URL(fileURLWithPath: path))
            var flipped = original
            flipped[flipped.count / 2] ^= 0x01
            try flipped.write(to: URL(fileURLWithPath: path))
            try await bothReject("a byte flipped in \(name)", mentioning: name)
            try original.write(to: URL(fileURLWithPath: path))
        }
        #expect(BundleVerifier.verify(folder: folder, keyring: keyring).verified, "restored")
        // A file added.
        try "later note".write(toFile: "\(folder)/notes.txt", atomically: true, encoding: .utf8)
        try await bothReject("a file added", mentioning: "notes.txt")
        try FileManager.default.removeItem(atPath: "\(folder)/notes.txt")
        // A file removed.
        let junit = try Data(contentsOf: URL(fileURLWithPath: "\(folder)/junit.xml"))
        try FileManager.default.removeItem(atPath: "\(folder)/junit.xml")
        try await bothReject("a file removed", mentioning: "junit.xml")
        try junit.write(to: URL(fileURLWithPath: "\(folder)/junit.xml"))
        // Another bundle's (genuine) signature swapped in.
        let own = try Data(contentsOf: URL(fileURLWithPath: "\(folder)/attestation.dsse.json"))
        try FileManager.default.removeItem(atPath: "\(folder)/attestation.dsse.json")
        try FileManager.default.copyItem(
            atPath: "\(other)/attestation.dsse.json", toPath: "\(folder)/attestation.dsse.json")
        try await bothReject("another bundle's attestation", mentioning: "record.json")
        try own.write(to: URL(fileURLWithPath: "\(folder)/attestation.dsse.json"))
        // The statement edited (PASSED turned into something else) breaks the signature.
        let envelope = try DSSEEnvelope.parse([UInt8](own), file: "attestation")
        var forged = envelope
        forged.payload = Array(
            String(decoding: envelope.payload, as: UTF8.self)
                .replacingOccurrences(of: "\"verdict\":\"PASS\"", with: "\"verdict\":\"FAIL\"").utf8)
        #expect(forged.payload != envelope.payload)
        try Data(forged.json.utf8).write(to: URL(fileURLWithPath: "\(folder)/attestation.dsse.json"))
        try await bothReject("an edited statement", mentioning: "signature")
        try own.write(to: URL(fileURLWithPath: "\(folder)/attestation.dsse.json"))
        #expect(BundleVerifier.verify(folder: folder, keyring: keyring).verified)
    }

    /// Case 9: the two verifiers once disagreed on a genuine signature with a second one beside it. One rule now,
    /// in both: exactly one signature, by a trusted station key. Every forged envelope here is refused by both, and
    /// the genuine one (also re-encoded as URL-safe base64, which DSSE allows) is accepted by both.
    @Test func bothVerifiersAgreeOnEveryForgedEnvelope() async throws {
        let keys = try Keys()
        let keyring = try Keyring.load(path: keys.keyring)
        let (_, folder) = try await bundle(key: keys.stationKey)
        let path = "\(folder)/attestation.dsse.json"
        let own = try Data(contentsOf: URL(fileURLWithPath: path))
        let genuine = try DSSEEnvelope.parse([UInt8](own), file: "attestation")
        let signature = try #require(genuine.signatures.first)
        func verdicts(_ what: String) async throws -> (tool: Bool, script: Bool) {
            let tool = BundleVerifier.verify(folder: folder, keyring: keyring).verified
            let (status, output) = try await trustedVerify(folder, key: keys.stationPublic)
            #expect(tool == (status == 0), "\(what): acceptance verify \(tool), verify.sh \(status)\n\(output)")
            return (tool, status == 0)
        }
        func write(_ envelope: DSSEEnvelope) throws {
            try? FileManager.default.removeItem(atPath: path)
            try Data(envelope.json.utf8).write(to: URL(fileURLWithPath: path))
        }
        let garbage = DSSEEnvelope.Signature(keyID: signature.keyID, signature: Array(repeating: 7, count: 64))
        let stranger = DSSEEnvelope.Signature(keyID: String(repeating: "ab", count: 32), signature: signature.signature)
        let forged: [(String, [DSSEEnvelope.Signature])] = [
            ("genuine plus garbage under the same keyid", [signature, garbage]),
            ("garbage then genuine", [garbage, signature]),
            ("genuine plus an unknown key's signature", [signature, stranger]),
            ("the genuine signature twice", [signature, signature]),
            ("garbage only", [garbage]),
            ("an unknown keyid only", [stranger]),
            (
                "a truncated signature",
                [DSSEEnvelope.Signature(keyID: signature.keyID, signature: Array(signature.signature.prefix(63)))]
            ),
            ("no signature", []),
        ]
        for (what, signatures) in forged {
            var envelope = genuine
            envelope.signatures = signatures
            try write(envelope)
            let (tool, script) = try await verdicts(what)
            #expect(!tool && !script, "\(what) was accepted")
        }
        // The attestation as a symbolic link to the genuine file, and as a folder: refused by both, with what it is.
        let elsewhere = temporaryDirectory() + "/attestation.dsse.json"
        try own.write(to: URL(fileURLWithPath: elsewhere))
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: elsewhere)
        #expect(try await verdicts("a symbolic link") == (false, false))
        #expect(
            BundleVerifier.verify(folder: folder, keyring: keyring).failures.first?.contains("symbolic link") == true)
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        #expect(try await verdicts("a folder") == (false, false))
        #expect(BundleVerifier.verify(folder: folder, keyring: keyring).failures.first?.contains("a folder") == true)
        try FileManager.default.removeItem(atPath: path)
        // URL-safe base64 without padding: the same envelope, accepted by both.
        var text = String(decoding: own, as: UTF8.self)
        let payload = Data(genuine.payload).base64EncodedString()
        let urlSafe = payload.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        text = text.replacingOccurrences(of: payload, with: urlSafe)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        #expect(try await verdicts("URL-safe base64") == (true, true))
        try own.write(to: URL(fileURLWithPath: path))
        #expect(try await verdicts("the genuine envelope") == (true, true))
    }

    /// Case 10: `"simulated": "true"` (a string) counted as a real rack in `archive add`.
    @Test func aSimulatedFlagThatIsNotABooleanIsRefused() async throws {
        let keys = try Keys()
        let keyring = try Keyring.load(path: keys.keyring)
        let (_, folder) = try await bundle(key: keys.stationKey)
        let path = "\(folder)/attestation.dsse.json"
        let genuine = try DSSEEnvelope.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), file: "a")
        let text = String(decoding: genuine.payload, as: UTF8.self)
        #expect(text.contains("\"simulated\":true"))
        let key = try SigningKeys.loadPrivate(keys.stationKey)
        let resigned = try DSSEEnvelope.sign(
            payload: Array(text.replacingOccurrences(of: "\"simulated\":true", with: "\"simulated\":\"true\"").utf8),
            type: DSSEEnvelope.inToto, key: key)
        try Data(resigned.json.utf8).write(to: URL(fileURLWithPath: path))
        let result = BundleVerifier.verify(folder: folder, keyring: keyring)
        #expect(!result.verified)
        #expect(result.simulated)
        #expect(result.failures.contains { $0.contains("predicate.simulated is \"true\", not true or false") })
        let archive = try FolderArchive(directory: temporaryDirectory())
        await #expect(throws: ArchiveError.self) { try await archive.add(bundle: folder, keyring: keyring) }
    }

    /// Two `archive add`s at once (two stations, two shells) used to fail one with "database is locked".
    @Test func simultaneousAddsToOneArchiveBothSucceed() async throws {
        let keys = try Keys()
        let keyringPath = keys.keyring
        var folders: [String] = []
        for serial in ["NVL72-A-000001", "NVL72-B-000002", "NVL72-C-000003", "NVL72-D-000004"] {
            folders.append(try await bundle(key: keys.stationKey, rack: serial).1)
        }
        let directory = temporaryDirectory()
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for folder in folders {
                group.addTask {
                    // Each its own connection, as separate processes would have.
                    do {
                        let archive = try FolderArchive(directory: directory)
                        let keyring = try Keyring.load(path: keyringPath)
                        _ = try await archive.add(bundle: folder, keyring: keyring, allowSimulated: true)
                        return true
                    } catch {
                        Issue.record("\(error)")
                        return false
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes == [true, true, true, true])
        #expect(try await FolderArchive(directory: directory).list(.init()).count == 4)
    }

    @Test func keysAreCheckedAgainstTheKeyringAndItsDates() async throws {
        let expired = try Keys(validUntil: "2026-02-01T00:00:00Z")
        let (_, folder) = try await bundle(key: expired.stationKey)
        let result = BundleVerifier.verify(folder: folder, keyring: try Keyring.load(path: expired.keyring))
        #expect(!result.verified)
        #expect(result.failures.contains { $0.contains("expired at 2026-02-01") })
        let revoked = try Keys(revokedSince: "2026-03-01T00:00:00Z")
        let (_, revokedFolder) = try await bundle(key: revoked.stationKey)
        #expect(
            BundleVerifier.verify(folder: revokedFolder, keyring: try Keyring.load(path: revoked.keyring))
                .failures.contains { $0.contains("revoked") })
        let stranger = try Keys()
        #expect(
            BundleVerifier.verify(folder: revokedFolder, keyring: try Keyring.load(path: stranger.keyring))
                .failures.contains { $0.contains("is not in the keyring") })
    }

    @Test func aStationWithoutAKeyWritesAnUnsignedBundleThatNeverVerifies() async throws {
        let (record, folder) = try await bundle(key: nil)
        #expect(record.warnings?.contains { $0.hasPrefix("UNSIGNED") } == true)
        let keys = try Keys()
        let result = BundleVerifier.verify(folder: folder, keyring: try Keyring.load(path: keys.keyring))
        #expect(result.failures.contains { $0.hasPrefix("UNSIGNED") })
        let html = try String(contentsOfFile: "\(folder)/report.html", encoding: .utf8)
        #expect(html.contains("UNSIGNED"))
    }

    @Test func aPrivateKeyOthersCanReadIsRefusedBeforeTheRun() async throws {
        let keys = try Keys()
        chmod(keys.stationKey, 0o644)
        var request = RunRequest(procedure: "leak-test", workspace: workspace)
        request.signingKey = keys.stationKey
        request.reportsDirectory = temporaryDirectory()
        do {
            _ = try await PreparedRun.prepare(request)
            Issue.record("a world-readable key was used")
        } catch {
            #expect(error.description.contains("readable by group or others"))
        }
        var info = stat()
        stat(keys.stationKey, &info)
        chmod(keys.stationKey, 0o600)
        let generated = try Keys()
        stat(generated.stationKey, &info)
        #expect(info.st_mode & 0o777 == 0o600, "keys generate writes the private key 0600")
        // OpenSSL reads both files and agrees on the keyid.
        let (status, der) = try await runProgram(
            try program("openssl"),
            [
                "pkey", "-pubin", "-in", generated.stationPublic,
                "-outform", "DER", "-out", "\(generated.directory)/spki.der",
            ])
        #expect(status == 0, "\(der)")
        let spki = try Data(contentsOf: URL(fileURLWithPath: "\(generated.directory)/spki.der"))
        #expect(
            SigningKeys.keyID(try SigningKeys.loadPublic(generated.stationPublic))
                == (try ReportBundle.sha256(file: "\(generated.directory)/spki.der")))
        #expect(spki.count == 44)
        let (checked, _) = try await runProgram(
            try program("openssl"), ["pkey", "-in", generated.stationKey, "-noout"])
        #expect(checked == 0, "OpenSSL reads the PKCS#8 private key")
    }

    @Test func anApprovalIsSignedOverTheAttestationAndChecked() async throws {
        let keys = try Keys()
        let keyring = try Keyring.load(path: keys.keyring)
        let (_, folder) = try await bundle(key: keys.stationKey)
        try BundleVerifier.approve(
            folder: folder, key: try SigningKeys.loadPrivate(keys.approverKey), approver: "J. Smith",
            meaning: "reviewed and approved")
        let result = BundleVerifier.verify(folder: folder, keyring: keyring)
        #expect(result.verified, "\(result.failures)")
        #expect(
            result.checks.contains {
                $0.passed && $0.text.contains("reviewed and approved") && $0.text.contains("QA lead")
            })
        #expect(throws: ReportBundle.BundleError.self) {
            try BundleVerifier.approve(
                folder: folder, key: try SigningKeys.loadPrivate(keys.approverKey), approver: "x", meaning: "y")
        }
        // A station key cannot approve, not even the bundle it signed.
        let (_, second) = try await bundle(key: keys.stationKey)
        try BundleVerifier.approve(
            folder: second, key: try SigningKeys.loadPrivate(keys.stationKey), approver: "station",
            meaning: "self-approved")
        #expect(
            BundleVerifier.verify(folder: second, keyring: keyring).failures.contains {
                $0.contains("only approver keys approve")
            })
        // A symbolic link in a bundle is never accepted, even to a file with the attested content.
        let (_, linked) = try await bundle(key: keys.stationKey)
        let junit = "\(linked)/junit.xml"
        try FileManager.default.moveItem(atPath: junit, toPath: "\(linked)/../moved-junit.xml")
        try FileManager.default.createSymbolicLink(atPath: junit, withDestinationPath: "\(linked)/../moved-junit.xml")
        #expect(
            BundleVerifier.verify(folder: linked, keyring: keyring).failures.contains {
                $0.contains("not a regular file")
            })
        // verify.sh still verifies the station's signature with the approval beside it.
        let (status, output) = try await runProgram(
            try program("sh"), ["verify.sh", keys.stationPublic], directory: folder)
        #expect(status == 0, "\(output)")
    }
}

@Suite("Report plots")
struct ReportPlotTests {
    @Test("Axis ticks are round numbers at an even step (1, 2, 2.5 or 5 × 10ⁿ)")
    func roundTicks() {
        for (low, high) in [(287.416, 318.9), (0.0, 600.0), (-0.731, 0.244), (49.81, 50.02), (1e-3, 7.3e-3)] {
            let ticks = HTMLReport.niceTicks(from: low, to: high)
            #expect(ticks.count >= 3 && ticks.count <= 7, "\(low)…\(high): \(ticks)")
            #expect(ticks.allSatisfy { $0.0 >= low && $0.0 <= high })
            let steps = zip(ticks.dropFirst(), ticks).map { $0.0 - $1.0 }
            let step = steps.first ?? 0
            #expect(steps.allSatisfy { abs($0 - step) < step * 1e-6 })
            let mantissa = step / pow(10, log10(step).rounded(.down))
            #expect([1, 2, 2.5, 5].contains { abs(mantissa - $0) < 1e-6 }, "step \(step)")
            // Labels say the round number, no more digits than the step has.
            #expect(ticks.allSatisfy { abs((Double($0.1) ?? .nan) - $0.0) < step * 1e-6 }, "\(ticks)")
        }
        #expect(HTMLReport.niceTicks(from: 287.416, to: 318.9).map(\.1) == ["290", "300", "310"])
        #expect(HTMLReport.niceTicks(from: 49.81, to: 50.02).map(\.1) == ["49.85", "49.90", "49.95", "50.00"])
    }
}
