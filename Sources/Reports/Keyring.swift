import AcceptanceCore
import Crypto
import Foundation
import Yams

/// Trusted public keys, with who holds each and when it may sign: `keyring.yaml`.
///
/// ```yaml
/// keys:
///   - name: line-1-bay-4
///     role: station                       # or approver
///     public_key: line-1-bay-4.pub.pem    # relative to this file, or the PEM itself
///     valid_from: 2026-01-01T00:00:00Z
///     valid_until: 2028-01-01T00:00:00Z
///     revoked_since: 2026-11-01T00:00:00Z # optional: signatures from then on are not trusted
/// ```
public struct Keyring {
    public struct Entry {
        public var name: String
        public var role: String
        public var key: Curve25519.Signing.PublicKey
        public var keyID: String
        public var validFrom: Date?
        public var validUntil: Date?
        public var revokedSince: Date?
        public var location: SourceLocation?

        public init(
            name: String, role: String, key: Curve25519.Signing.PublicKey, validFrom: Date? = nil,
            validUntil: Date? = nil, revokedSince: Date? = nil, location: SourceLocation? = nil
        ) {
            self.name = name
            self.role = role
            self.key = key
            keyID = SigningKeys.keyID(key)
            self.validFrom = validFrom
            self.validUntil = validUntil
            self.revokedSince = revokedSince
            self.location = location
        }

        /// Why the key could not sign at `date`, or nil if it could.
        public func problem(at date: Date) -> String? {
            if let validFrom, date < validFrom {
                return "key '\(name)' is valid only from \(Timestamp.string(validFrom))"
            }
            if let validUntil, date >= validUntil { return "key '\(name)' expired at \(Timestamp.string(validUntil))" }
            if let revokedSince, date >= revokedSince {
                return "key '\(name)' was revoked at \(Timestamp.string(revokedSince))"
            }
            return nil
        }
    }

    public var entries: [Entry]
    public var file: String

    public init(entries: [Entry], file: String) {
        self.entries = entries
        self.file = file
    }

    public func entry(keyID: String) -> Entry? { entries.first { $0.keyID == keyID } }

    public static func load(path: String) throws(DiagnosticsError) -> Keyring {
        let (sink, source) = YAMLSource.open(path: path)
        var reader = YAMLReader(sink: sink)
        var keyring = Keyring(entries: [], file: path)
        let directory = (path as NSString).deletingLastPathComponent
        if let root = source?.treeForChecking, let entries = reader.mapping(root, "keyring") {
            reader.rejectUnknownKeys(entries, allowed: ["keys"], in: "keyring")
            for item in entries.first(where: { $0.key == "keys" }).flatMap({ reader.sequence($0.value, "keys") }) ?? []
            {
                guard let fields = reader.mapping(item, "a key") else { continue }
                reader.rejectUnknownKeys(
                    fields, allowed: ["name", "role", "public_key", "valid_from", "valid_until", "revoked_since"],
                    in: "a key")
                func field(_ key: String) -> Node? { fields.first { $0.key == key }?.value }
                func date(_ key: String) -> Date? {
                    guard let node = field(key), let text = reader.scalar(node, key), !text.isEmpty, text != "null"
                    else { return nil }
                    guard let date = Timestamp.date(text) else {
                        reader.error("\(key) must be a UTC time such as 2026-01-01T00:00:00Z", at: node)
                        return nil
                    }
                    return date
                }
                guard let name = field("name").flatMap({ reader.scalar($0, "name") }),
                    let keyNode = field("public_key"), let keyText = reader.scalar(keyNode, "public_key")
                else {
                    reader.error("a key needs 'name' and 'public_key' (a PEM file or the PEM itself)", at: item)
                    continue
                }
                let pem: String
                if keyText.contains("-----BEGIN") {
                    pem = keyText
                } else {
                    // Relative to the keyring's folder (`keyring.yaml` given bare: the current one, not "/").
                    let file = keyText.hasPrefix("/") || directory.isEmpty ? keyText : "\(directory)/\(keyText)"
                    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                        reader.error("cannot read public key file \(file)", at: keyNode)
                        continue
                    }
                    pem = text
                }
                let key: Curve25519.Signing.PublicKey
                do {
                    key = try SigningKeys.parsePublic(pem, source: keyText)
                } catch {
                    reader.error(error.description, at: keyNode)
                    continue
                }
                let role = field("role").flatMap { reader.scalar($0, "role") } ?? "station"
                if !["station", "approver"].contains(role), let node = field("role") {
                    reader.error("role is station or approver", at: node)
                }
                keyring.entries.append(
                    Entry(
                        name: name, role: role, key: key,
                        validFrom: date("valid_from"), validUntil: date("valid_until"),
                        revokedSince: date("revoked_since"), location: reader.location(of: item)))
            }
        }
        if reader.sink.hasErrors || source?.root == nil { throw DiagnosticsError(reader.sink.diagnostics) }
        return keyring
    }
}
