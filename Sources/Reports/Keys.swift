import AcceptanceCore
import Crypto
import Foundation

/// An Ed25519 key pair as files: PKCS#8 PEM for the private key (what `openssl genpkey -algorithm ed25519` writes)
/// and SubjectPublicKeyInfo PEM for the public key, so stock OpenSSL reads both.
public enum SigningKeys {
    public enum KeyError: Error, Sendable, CustomStringConvertible {
        case unreadable(String, String)
        case notEd25519(String, String)
        case tooOpen(String, mode: UInt16)
        case exists(String)

        public var description: String {
            switch self {
            case let .unreadable(path, reason): "\(path): cannot read the key: \(reason)"
            case let .notEd25519(path, reason): "\(path): not an Ed25519 key in PEM (\(reason))"
            case let .tooOpen(path, mode):
                "\(path): the private key is readable by group or others (mode \(String(mode, radix: 8))); "
                    + "refusing to use it: chmod 600 \(path)"
            case let .exists(path): "\(path) exists; keys are never overwritten"
            }
        }
    }

    static let pkcs8Prefix: [UInt8] = [
        0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]
    static let spkiPrefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]

    /// SubjectPublicKeyInfo DER of an Ed25519 public key.
    public static func spki(_ key: Curve25519.Signing.PublicKey) -> [UInt8] {
        spkiPrefix + Array(key.rawRepresentation)
    }

    /// `keyid`: SHA-256 of the public key's SPKI DER, lower-case hex (what `openssl pkey -pubin -outform DER | sha256sum`
    /// prints).
    public static func keyID(_ key: Curve25519.Signing.PublicKey) -> String {
        SHA256.hash(data: spki(key)).map { String(format: "%02x", $0) }.joined()
    }

    public static func privatePEM(_ key: Curve25519.Signing.PrivateKey) -> String {
        pem(pkcs8Prefix + Array(key.rawRepresentation), label: "PRIVATE KEY")
    }

    public static func publicPEM(_ key: Curve25519.Signing.PublicKey) -> String {
        pem(spki(key), label: "PUBLIC KEY")
    }

    static func pem(_ der: [UInt8], label: String) -> String {
        let body = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(label)-----\n\(body)\n-----END \(label)-----\n"
    }

    static func der(fromPEM text: String, label: String) -> [UInt8]? {
        guard let start = text.range(of: "-----BEGIN \(label)-----"),
            let end = text.range(of: "-----END \(label)-----", range: start.upperBound..<text.endIndex)
        else { return nil }
        let body = text[start.upperBound..<end.lowerBound].filter { !$0.isWhitespace }
        return Data(base64Encoded: String(body)).map { [UInt8]($0) }
    }

    /// Reads a private key, refusing one that group or others can read.
    public static func loadPrivate(_ path: String) throws(KeyError) -> Curve25519.Signing.PrivateKey {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .unreadable(path, String(cString: strerror(errno))) }
        let mode = UInt16(info.st_mode & 0o777)
        guard mode & 0o077 == 0 else { throw .tooOpen(path, mode: mode) }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .unreadable(path, "not text") }
        guard let der = der(fromPEM: text, label: "PRIVATE KEY") else {
            throw .notEd25519(path, "no PRIVATE KEY block")
        }
        // PKCS#8 v1 (OpenSSL's form), or v2 with the public key appended.
        guard der.count >= 48, Array(der[2..<16]) == Array(pkcs8Prefix[2..<16]) || isV2(der) else {
            throw .notEd25519(path, "not a PKCS#8 Ed25519 key")
        }
        do {
            return try Curve25519.Signing.PrivateKey(rawRepresentation: der[16..<48])
        } catch {
            throw .notEd25519(path, "\(error)")
        }
    }

    static func isV2(_ der: [UInt8]) -> Bool {
        der.count >= 48 && der[0] == 0x30 && Array(der[2..<5]) == [0x02, 0x01, 0x01]
            && Array(der[5..<16]) == Array(pkcs8Prefix[5..<16])
    }

    public static func loadPublic(_ path: String) throws(KeyError) -> Curve25519.Signing.PublicKey {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw .unreadable(path, "no such file or not text")
        }
        return try parsePublic(text, source: path)
    }

    public static func parsePublic(_ text: String, source: String) throws(KeyError) -> Curve25519.Signing.PublicKey {
        guard let der = der(fromPEM: text, label: "PUBLIC KEY") else {
            throw .notEd25519(source, "no PUBLIC KEY block")
        }
        guard der.count == 44, Array(der[0..<12]) == spkiPrefix else {
            throw .notEd25519(source, "not an Ed25519 SubjectPublicKeyInfo")
        }
        do {
            return try Curve25519.Signing.PublicKey(rawRepresentation: der[12..<44])
        } catch {
            throw .notEd25519(source, "\(error)")
        }
    }

    /// Writes a new key pair into `directory` (`<name>.key.pem` mode 0600, `<name>.pub.pem`); never overwrites.
    public static func generate(
        into directory: String, name: String
    ) throws(KeyError) -> (privatePath: String, publicPath: String, keyID: String) {
        let key = Curve25519.Signing.PrivateKey()
        let privatePath = "\(directory)/\(name).key.pem"
        let publicPath = "\(directory)/\(name).pub.pem"
        for path in [privatePath, publicPath] where FileManager.default.fileExists(atPath: path) { throw .exists(path) }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .unreadable(directory, describeFileError(error))
        }
        // Created 0600 from the start: the secret is never on disk with wider permissions.
        let fd = open(privatePath, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw .unreadable(privatePath, String(cString: strerror(errno))) }
        let bytes = Array(privatePEM(key).utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
        close(fd)
        guard written == bytes.count else { throw .unreadable(privatePath, "short write") }
        guard
            FileManager.default.createFile(
                atPath: publicPath, contents: Data(publicPEM(key.publicKey).utf8),
                attributes: [.posixPermissions: 0o644])
        else {
            throw .unreadable(publicPath, "cannot write")
        }
        return (privatePath, publicPath, keyID(key.publicKey))
    }
}

/// For callers that do not import Crypto themselves (the CLI).
public typealias Curve25519SigningPublicKey = Curve25519.Signing.PublicKey
