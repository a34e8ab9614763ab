import AcceptanceCore
import ArgumentParser
import Foundation
import Harness
import Reports

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make and identify Ed25519 signing keys.",
        subcommands: [Generate.self, Fingerprint.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new key pair: NAME.key.pem (PKCS#8, mode 0600) and NAME.pub.pem. Never overwrites.")

        @Option(help: "Folder for the key files.")
        var out: String

        @Option(help: "File name stem (default: station).")
        var name = "station"

        func run() throws {
            do {
                let (privatePath, publicPath, keyID) = try SigningKeys.generate(into: out, name: name)
                ConsoleOutput.standardOutput.write(
                    """
                    private key  \(privatePath)  (mode 0600: keep it on the station, name it as signing_key)
                    public key   \(publicPath)  (give it to QA for the keyring)
                    keyid        \(keyID)

                    """)
            } catch {
                throw ValidationError(error.description)
            }
        }
    }

    struct Fingerprint: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Print a key's keyid: the SHA-256 of its public key's SubjectPublicKeyInfo DER (as in the bundles).")

        @Argument(help: "A public key PEM, or a private key PEM (mode 0600).")
        var file: String

        func run() throws {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            do {
                let key =
                    text.contains("PRIVATE KEY")
                    ? try SigningKeys.loadPrivate(file).publicKey
                    : try SigningKeys.loadPublic(file)
                ConsoleOutput.standardOutput.write("\(SigningKeys.keyID(key))  \(file)\n")
            } catch {
                throw ValidationError(error.description)
            }
        }
    }
}

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract:
            "Verify a report bundle: signature, signer in the keyring and valid then, every digest, no file added or removed.",
        discussion: "Exit 0 when every check passes, 1 when any fails (each failure is named).")

    @Argument(help: "The bundle folder (a run folder under reports/).")
    var bundle: String

    @Option(help: "Keyring of trusted keys (YAML).")
    var keyring: String?

    @Option(help: "A public key PEM to trust instead of a keyring (validity dates are then not checked).")
    var key: String?

    @Option(
        help: ArgumentHelp(
            "Write the bundle's report with what verify found and every approval added at the end (the signed file is not changed).",
            valueName: "file.html"))
    var report: String?

    @Flag(help: "Print one JSON document (schema: acceptance schema verify); the exit code still says.")
    var json = false

    func run() throws {
        var ring: Keyring?
        if let keyring {
            do {
                ring = try Keyring.load(path: keyring)
            } catch {
                throw ValidationError(error.description)
            }
        }
        var publicKey: Curve25519SigningPublicKey?
        if let key {
            do {
                publicKey = try SigningKeys.loadPublic(key)
            } catch {
                throw ValidationError(error.description)
            }
        }
        let result = BundleVerifier.verify(folder: bundle, keyring: ring, key: publicKey)
        if json {
            writeJSON(result)
        } else {
            write(result)
        }
        if let report {
            do {
                try writeFileAtomically(try result.renderedReport(folder: bundle).utf8, to: report)
                if !json { ConsoleOutput.standardOutput.write("report with verification and approvals: \(report)\n") }
            } catch let error as ReportBundle.BundleError {
                ConsoleOutput.standardError.write("error: \(error)\n")
                throw ExitCode(2)
            } catch {
                ConsoleOutput.standardError.write("error: cannot write \(report): \(describeFileError(error))\n")
                throw ExitCode(2)
            }
        }
        if !result.verified { throw ExitCode(1) }
    }

    func writeJSON(_ result: BundleVerification) {
        var document: [String: JSONValue] = [
            "bundle": .string(bundle), "verified": .bool(result.verified), "simulated": .bool(result.simulated),
            "deviations": .array(result.deviations.map { .string($0) }),
            "approvals": .array(
                result.approvals.map { approval in
                    [
                        "approver": .string(approval.approver), "role": .string(approval.role),
                        "meaning": .string(approval.meaning), "approved_at": .string(approval.approvedAt),
                    ]
                }),
            "checks": .array(result.checks.map { ["passed": .bool($0.passed), "text": .string($0.text)] }),
        ]
        let optional: [(String, String?)] = [
            ("run_id", result.runID), ("rack_serial", result.rackSerial), ("verdict", result.verdict),
            ("procedure", result.procedure), ("procedure_version", result.procedureVersion),
            ("started", result.started), ("signer", result.signerName), ("statement_sha256", result.statementSHA256),
        ]
        for (name, value) in optional { document[name] = JSONOutput.optional(value) }
        JSONOutput.write("verify", document)
    }

    func write(_ result: BundleVerification) {
        var text = "Bundle \(bundle)\n"
        if let run = result.runID {
            text += "  run \(run), rack \(result.rackSerial ?? "(no serial)"), verdict \(result.verdict ?? "?")\n"
        }
        for check in result.checks { text += "  \(check.passed ? "ok  " : "FAIL") \(check.text)\n" }
        text += result.verified ? "VERIFIED\n" : "NOT VERIFIED: \(result.failures.count) check(s) failed\n"
        (result.verified ? ConsoleOutput.standardOutput : ConsoleOutput.standardError).write(text)
    }
}

struct ApproveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Add approval.dsse.json to a bundle: the approver's signature over its attestation's digest.")

    @Argument(help: "The bundle folder.")
    var bundle: String

    @Option(help: "The approver's private key (PKCS#8 PEM, mode 0600).")
    var key: String

    @Option(help: "What the approval means, in words (\"reviewed and approved\").")
    var meaning: String

    @Option(help: "Who approves (default: $USER).")
    var approver: String?

    @Option(help: "Keyring the bundle must verify against before it is approved.")
    var keyring: String

    func run() throws {
        let ring: Keyring
        do {
            ring = try Keyring.load(path: keyring)
        } catch {
            throw ValidationError(error.description)
        }
        do {
            let privateKey = try SigningKeys.loadPrivate(key)
            try BundleVerifier.approve(
                folder: bundle, key: privateKey,
                approver: approver ?? ProcessInfo.processInfo.environment["USER"] ?? "unknown",
                meaning: meaning, keyring: ring)
            ConsoleOutput.standardOutput.write(
                "approved: \(bundle)/\(ReportBundle.approvalFile) "
                    + "(keyid \(SigningKeys.keyID(privateKey.publicKey).prefix(16))…)\n")
        } catch let error as SigningKeys.KeyError {
            throw ValidationError(error.description)
        } catch {
            ConsoleOutput.standardError.write("not approved: \(error)\n")
            throw ExitCode(1)
        }
    }
}
