import AcceptanceCore
import Crypto
import Foundation

/// What `acceptance verify` found: each check with its outcome, in order.
public struct BundleVerification: Sendable {
    public struct Check: Sendable {
        public var passed: Bool
        public var text: String
    }

    public var checks: [Check] = []
    public var runID: String?
    public var rackSerial: String?
    public var verdict: String?
    public var procedure: String?
    public var procedureVersion: String?
    public var started: String?
    public var simulated = false
    /// Limits the run changed, as the signed predicate lists them (`parameter from → to`).
    public var deviations: [String] = []
    /// An approval that verified.
    public var approved = false
    /// Who approved the bundle, when and meaning what: each approval that verified.
    public var approvals: [Approval] = []

    public struct Approval: Sendable, Hashable {
        public var approver: String
        public var role: String
        public var meaning: String
        public var approvedAt: String
    }
    /// SHA-256 of the signed statement: the bundle's identity, whatever the envelope's formatting.
    public var statementSHA256: String?
    public var signerName: String?

    public var verified: Bool { !checks.isEmpty && checks.allSatisfy(\.passed) }
    public var failures: [String] { checks.filter { !$0.passed }.map(\.text) }

    mutating func pass(_ text: String) { checks.append(Check(passed: true, text: text)) }
    mutating func fail(_ text: String) { checks.append(Check(passed: false, text: text)) }
}

/// Checks a bundle: the signature over the exact payload, the signer's key against a keyring (or a key given) and
/// its validity at signing time, every subject's digest, that no file was added or removed, and any approval.
public enum BundleVerifier {
    public static func verify(
        folder: String, keyring: Keyring?, key: Curve25519.Signing.PublicKey? = nil
    ) -> BundleVerification {
        var result = BundleVerification()
        let attestationPath = "\(folder)/\(ReportBundle.attestationFile)"
        // Not followed or opened unless it is a plain file (a FIFO would block the read forever).
        if let type = (try? FileManager.default.attributesOfItem(atPath: attestationPath))?[.type]
            as? FileAttributeType,
            type != .typeRegular
        {
            let kind =
                switch type {
                case .typeSymbolicLink: "a symbolic link"
                case .typeDirectory: "a folder"
                default: "a FIFO, socket or device"
                }
            result.fail("\(ReportBundle.attestationFile) in \(folder) is \(kind), not a file: refused")
            return result
        }
        guard let bytes = try? readFile(attestationPath, limit: 64 << 20) else {
            result.fail("no \(ReportBundle.attestationFile) in \(folder): not a report bundle")
            return result
        }
        let envelope: DSSEEnvelope
        do {
            envelope = try DSSEEnvelope.parse([UInt8](bytes), file: ReportBundle.attestationFile)
        } catch {
            result.fail(error.description)
            return result
        }
        guard envelope.payloadType == DSSEEnvelope.inToto else {
            result.fail("payloadType is '\(envelope.payloadType)', not \(DSSEEnvelope.inToto)")
            return result
        }
        guard let statement = try? JSONValue.parse(envelope.payload),
            statement["_type"]?.string == ReportBundle.statementType,
            statement["predicateType"]?.string == ReportBundle.predicateType,
            let subjects = statement["subject"]?.array
        else {
            result.fail("the payload is not an in-toto Statement v1 with the test-result predicate")
            return result
        }
        let predicate = statement["predicate"]
        result.runID = predicate?["runId"]?.string
        result.rackSerial = predicate?["rackSerial"]?.string
        result.verdict = predicate?["verdict"]?.string
        result.procedure = predicate?["procedure"]?.string
        result.procedureVersion = predicate?["procedureVersion"]?.string
        result.started = predicate?["started"]?.string
        // Strictly a JSON boolean: `"simulated": "true"` (a string) once counted as a real rack.
        switch predicate?["simulated"] {
        case nil: result.simulated = false
        case let value?:
            if let flag = value.bool {
                result.simulated = flag
            } else {
                result.simulated = true
                result.fail("predicate.simulated is \(value.serialized), not true or false: refused")
            }
        }
        result.deviations = (predicate?["deviations"]?.array ?? []).map { deviation in
            "\(deviation["parameter"]?.string ?? "?") \(deviation["procedureValue"]?.string ?? "?") → "
                + "\(deviation["value"]?.string ?? "?")"
        }
        result.statementSHA256 = SHA256.hash(data: envelope.payload).map { String(format: "%02x", $0) }.joined()

        // 1. Signature, signer, key validity.
        let signedAt = predicate?["signer"]?["signedAt"]?.string.flatMap(Timestamp.date)
        if envelope.signatures.isEmpty {
            result.fail(
                "UNSIGNED: the bundle carries no signature (the station had no key); nothing proves who made it")
        } else if envelope.signatures.count > 1 {
            // One rule in both verifiers (verify.sh applies it too): exactly one signature, by a trusted station key.
            // A second signature, even garbage beside a genuine one, is not something a station writes.
            let ids = envelope.signatures.map { String($0.keyID.prefix(16)) + "…" }.joined(separator: ", ")
            result.fail(
                "signatures: the envelope carries \(envelope.signatures.count) (keyids \(ids)); a bundle has exactly "
                    + "one, by its station's key")
        } else if let keyring {
            let known = envelope.signatures.compactMap { signature in keyring.entry(keyID: signature.keyID) }
            if let entry = known.first, entry.role != "station" {
                result.fail("signer: key '\(entry.name)' is an \(entry.role) key; bundles are signed by station keys")
            } else if let entry = known.first {
                if envelope.isSigned(by: entry.key) {
                    result.signerName = entry.name
                    result.pass(
                        "signature: Ed25519 over the DSSE PAE of the \(envelope.payload.count)-byte statement, by key "
                            + "'\(entry.name)' (\(entry.role), keyid \(entry.keyID.prefix(16))…) from \(keyring.file)")
                    if let signedAt {
                        if let problem = entry.problem(at: signedAt) {
                            result.fail("key validity: signed at \(Timestamp.string(signedAt)), but \(problem)")
                        } else {
                            result.pass(
                                "key validity: '\(entry.name)' was valid when it signed, at \(Timestamp.string(signedAt))"
                            )
                        }
                    } else {
                        result.fail("key validity: the statement does not say when it was signed")
                    }
                } else {
                    result.fail(
                        "signature: does not verify with key '\(entry.name)' (the statement or the signature was altered)"
                    )
                }
            } else {
                let ids = envelope.signatures.map { String($0.keyID.prefix(16)) + "…" }.joined(separator: ", ")
                result.fail("signer: keyid \(ids) is not in the keyring \(keyring.file)")
            }
        } else if let key {
            if envelope.isSigned(by: key) {
                result.pass(
                    "signature: Ed25519 over the DSSE PAE by keyid \(SigningKeys.keyID(key).prefix(16))… (the key given; "
                        + "no keyring, so validity dates are not checked)")
            } else {
                result.fail("signature: not made by the key given (keyid \(SigningKeys.keyID(key).prefix(16))…)")
            }
        } else {
            result.fail("no trusted key: pass --keyring FILE (or --key PUBLIC.pem) to check who signed")
        }

        // 2. The files are exactly the subjects, byte for byte.
        // Names are compared byte for byte (as verify.sh does): canonically equivalent Unicode is not the same file.
        var attested: [Data: String] = [:]
        var repeated: [String] = []
        for subject in subjects {
            guard let name = subject["name"]?.string, let digest = subject["digest"]?["sha256"]?.string else {
                result.fail("a subject without a name or a sha256 digest")
                return result
            }
            if attested[Data(name.utf8)] != nil { repeated.append(name) }
            attested[Data(name.utf8)] = digest
        }
        if !repeated.isEmpty { result.fail("subjects named twice: \(repeated.joined(separator: ", "))") }
        let present: [String]
        do {
            present = try ReportBundle.subjectFiles(in: folder)
        } catch {
            result.fail(error.description)
            return result
        }
        let presentKeys = Set(present.map { Data($0.utf8) })
        let added = present.filter { attested[Data($0.utf8)] == nil }
        let missing = attested.keys.filter { !presentKeys.contains($0) }.map { String(decoding: $0, as: UTF8.self) }
            .sorted()
        if added.isEmpty, missing.isEmpty {
            result.pass(
                "file set: the \(present.count) files are exactly the attested subjects, nothing added or removed")
        } else {
            if !added.isEmpty {
                result.fail("file set: not covered by the attestation (added): \(added.joined(separator: ", "))")
            }
            if !missing.isEmpty {
                result.fail("file set: attested but missing (removed): \(missing.joined(separator: ", "))")
            }
        }
        var mismatched: [String] = []
        for name in present where attested[Data(name.utf8)] != nil {
            let digest = (try? ReportBundle.sha256(file: "\(folder)/\(name)")) ?? "unreadable"
            if digest != attested[Data(name.utf8)] { mismatched.append(name) }
        }
        if mismatched.isEmpty {
            result.pass("digests: the SHA-256 of every attested file matches")
        } else {
            result.fail("digests: changed since signing: \(mismatched.joined(separator: ", "))")
        }

        // 3. An approval, if any: signed by a trusted key, over this attestation's digest.
        if FileManager.default.fileExists(atPath: "\(folder)/\(ReportBundle.approvalFile)") {
            checkApproval(folder: folder, keyring: keyring, into: &result)
        }
        return result
    }

    static func checkApproval(folder: String, keyring: Keyring?, into result: inout BundleVerification) {
        guard let bytes = try? readFile("\(folder)/\(ReportBundle.approvalFile)", limit: 1 << 20),
            let envelope = try? DSSEEnvelope.parse([UInt8](bytes), file: ReportBundle.approvalFile),
            envelope.payloadType == DSSEEnvelope.inToto,
            let statement = try? JSONValue.parse(envelope.payload),
            statement["_type"]?.string == ReportBundle.statementType,
            statement["predicateType"]?.string == approvalPredicateType,
            let subjects = statement["subject"]?.array, subjects.count == 1, let subject = subjects.first
        else {
            result.fail(
                "approval: \(ReportBundle.approvalFile) is not an approval (a DSSE envelope over an in-toto "
                    + "statement of type \(approvalPredicateType) with one subject)")
            return
        }
        let attestationDigest = (try? ReportBundle.sha256(file: "\(folder)/\(ReportBundle.attestationFile)")) ?? ""
        guard subject["name"]?.string == ReportBundle.attestationFile,
            subject["digest"]?["sha256"]?.string == attestationDigest
        else {
            result.fail("approval: it approves another attestation, not this bundle's")
            return
        }
        let approver = statement["predicate"]?["approver"]
        let meaning = approver?["meaning"]?.string ?? "?"
        guard let keyring else {
            result.fail("approval: present (\"\(meaning)\"), but without a keyring its signature cannot be checked")
            return
        }
        guard let entry = envelope.signatures.compactMap({ keyring.entry(keyID: $0.keyID) }).first else {
            result.fail("approval: signed by a key that is not in the keyring")
            return
        }
        guard entry.role == "approver" else {
            result.fail("approval: signed by '\(entry.name)', a \(entry.role) key; only approver keys approve")
            return
        }
        guard envelope.isSigned(by: entry.key) else {
            result.fail("approval: the signature does not verify with '\(entry.name)'")
            return
        }
        guard let at = approver?["approvedAt"]?.string.flatMap(Timestamp.date) else {
            result.fail("approval: it does not say when it was made")
            return
        }
        if let problem = entry.problem(at: at) {
            result.fail("approval: approved at \(Timestamp.string(at)), but \(problem)")
            return
        }
        result.approved = true
        result.approvals.append(
            .init(
                approver: entry.name, role: entry.role, meaning: meaning,
                approvedAt: approver?["approvedAt"]?.string ?? "?"))
        result.pass(
            "approval: '\(entry.name)' (\(entry.role)) approved this attestation: \"\(meaning)\" "
                + "at \(approver?["approvedAt"]?.string ?? "?")")
    }

    public static let approvalPredicateType = "https://acceptance.example/approval/v1"

    /// Adds `approval.dsse.json`: a statement over the attestation's digest, signed by the approver.
    /// With `keyring`, the bundle must verify first, and the approval signs the digest of the very attestation
    /// bytes that were verified.
    public static func approve(
        folder: String, key: Curve25519.Signing.PrivateKey, approver: String, meaning: String,
        keyring: Keyring? = nil, at date: Date = Date()
    ) throws(ReportBundle.BundleError) {
        let path = "\(folder)/\(ReportBundle.approvalFile)"
        guard !FileManager.default.fileExists(atPath: path) else {
            throw ReportBundle.BundleError(description: "\(path) exists; an approval is never replaced")
        }
        let digest = try ReportBundle.sha256(file: "\(folder)/\(ReportBundle.attestationFile)")
        if let keyring {
            let verification = verify(folder: folder, keyring: keyring)
            guard verification.verified else {
                throw ReportBundle.BundleError(
                    description: "the bundle does not verify: " + verification.failures.joined(separator: "; "))
            }
            guard (try ReportBundle.sha256(file: "\(folder)/\(ReportBundle.attestationFile)")) == digest else {
                throw ReportBundle.BundleError(description: "the attestation changed while it was being verified")
            }
        }
        let statement: JSONValue = [
            "_type": .string(ReportBundle.statementType),
            "subject": [["name": .string(ReportBundle.attestationFile), "digest": ["sha256": .string(digest)]]],
            "predicateType": .string(approvalPredicateType),
            "predicate": [
                "approver": [
                    "identity": .string(approver), "meaning": .string(meaning),
                    "approvedAt": .string(Timestamp.string(date)),
                    "keyid": .string(SigningKeys.keyID(key.publicKey)),
                ]
            ],
        ]
        let envelope: DSSEEnvelope
        do {
            envelope = try DSSEEnvelope.sign(payload: statement.bytes, type: DSSEEnvelope.inToto, key: key)
        } catch {
            throw ReportBundle.BundleError(description: "signing the approval failed: \(error)")
        }
        do {
            try Data(envelope.json.utf8).write(to: URL(fileURLWithPath: path), options: .withoutOverwriting)
        } catch {
            throw ReportBundle.BundleError(description: "cannot write \(path): \(describeFileError(error))")
        }
    }
}

extension BundleVerification {
    /// The bundle's `report.html` as a reader should see it today: the signed page, with a section added at the end
    /// (and marked as not part of it) that says what `verify` found and who approved the run, when and meaning what,
    /// from `approval.dsse.json`. The signed file itself is never changed: an approval comes after the signature.
    public func renderedReport(folder: String, at date: Date = Date()) throws(ReportBundle.BundleError) -> String {
        let page: String
        do {
            page = String(decoding: try readFile("\(folder)/report.html", limit: 256 << 20), as: UTF8.self)
        } catch {
            throw ReportBundle.BundleError(description: "cannot read \(folder)/report.html: \(error)")
        }
        let e = HTMLReport.e
        var section = """
            <section class="verification" id="verification">
            <h2>Verification and approvals</h2>
            <p class="member">Added by <code>acceptance verify</code> at \(e(Timestamp.string(date))) from the bundle's \
            <code>attestation.dsse.json</code> and <code>approval.dsse.json</code>: not part of the signed report above.</p>
            <div class="verdict \(verified ? "PASS" : "FAIL")" id="verified">\(verified ? "VERIFIED" : "NOT VERIFIED")\
            <small>\(e(verified ? "Every file is the one the station signed." : failures.joined(separator: "; ")))</small></div>
            <table>

            """
        for check in checks {
            section +=
                "<tr><td class=\"\(check.passed ? "PASS" : "FAIL")\">\(check.passed ? "ok" : "FAIL")</td>"
                + "<td>\(e(check.text))</td></tr>\n"
        }
        section += "</table>\n<h2>Approvals</h2>\n"
        if approvals.isEmpty {
            section += "<p id=\"approvals\">No approval has been added to this bundle.</p>\n"
        } else {
            section +=
                "<table id=\"approvals\">\n<tr><th>Approved by</th><th>Role</th><th>At</th><th>Meaning</th></tr>\n"
            for approval in approvals {
                section +=
                    "<tr><td>\(e(approval.approver))</td><td>\(e(approval.role))</td><td>\(e(approval.approvedAt))</td>"
                    + "<td>\(e(approval.meaning))</td></tr>\n"
            }
            section += "</table>\n"
        }
        section += "</section>\n"
        guard let end = page.range(of: "</body>", options: .backwards) else { return page + section }
        return page.replacingCharacters(in: end.lowerBound..<end.lowerBound, with: section)
    }
}
