import AcceptanceCore
import Crypto
import Foundation

/// A DSSE envelope (https://github.com/secure-systems-lab/dsse): a payload, its type, and signatures over the
/// pre-authentication encoding of both. Signatures are made and checked over the exact payload bytes.
public struct DSSEEnvelope: Sendable {
    public struct Signature: Sendable, Hashable {
        public var keyID: String
        public var signature: [UInt8]
    }

    public var payloadType: String
    public var payload: [UInt8]
    public var signatures: [Signature]

    public static let inToto = "application/vnd.in-toto+json"

    /// `DSSEv1 <len(type)> <type> <len(body)> <body>`, lengths in ASCII decimal bytes.
    public static func pae(type: String, body: [UInt8]) -> [UInt8] {
        let typeBytes = Array(type.utf8)
        return Array("DSSEv1 \(typeBytes.count) ".utf8) + typeBytes + Array(" \(body.count) ".utf8) + body
    }

    public var pae: [UInt8] { Self.pae(type: payloadType, body: payload) }

    public static func sign(payload: [UInt8], type: String, key: Curve25519.Signing.PrivateKey) throws -> DSSEEnvelope {
        let signature = try key.signature(for: pae(type: type, body: payload))
        return DSSEEnvelope(
            payloadType: type, payload: payload,
            signatures: [Signature(keyID: SigningKeys.keyID(key.publicKey), signature: Array(signature))])
    }

    /// True if a signature by `key` (matched by keyid) is valid over this envelope's PAE.
    public func isSigned(by key: Curve25519.Signing.PublicKey) -> Bool {
        let id = SigningKeys.keyID(key)
        return signatures.contains { $0.keyID == id && key.isValidSignature($0.signature, for: pae) }
    }

    /// The envelope as JSON (keys in a fixed order, one line and a newline).
    public var json: String {
        let signatures = signatures.map { signature -> JSONValue in
            ["keyid": .string(signature.keyID), "sig": .string(Data(signature.signature).base64EncodedString())]
        }
        let object: JSONValue = [
            "payloadType": .string(payloadType), "payload": .string(Data(payload).base64EncodedString()),
            "signatures": .array(signatures),
        ]
        return object.serialized + "\n"
    }

    public struct FormatError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// DSSE allows standard or URL-safe base64, padded or not (as verify.sh reads it).
    static func decodeBase64(_ text: String) -> Data? {
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while standard.utf8.count % 4 != 0 { standard += "=" }
        return Data(base64Encoded: standard)
    }

    public static func parse(_ bytes: [UInt8], file: String) throws(FormatError) -> DSSEEnvelope {
        let json: JSONValue
        do {
            json = try JSONValue.parse(bytes)
        } catch {
            throw FormatError(description: "\(file) is not JSON: \(error.message)")
        }
        guard let type = json["payloadType"]?.string, let encoded = json["payload"]?.string,
            let payload = decodeBase64(encoded), let list = json["signatures"]?.array
        else {
            throw FormatError(description: "\(file) is not a DSSE envelope (payloadType, payload, signatures)")
        }
        var signatures: [Signature] = []
        for item in list {
            guard let sig = item["sig"]?.string, let bytes = decodeBase64(sig) else {
                throw FormatError(description: "\(file): a signature without a base64 'sig'")
            }
            signatures.append(Signature(keyID: item["keyid"]?.string ?? "", signature: [UInt8](bytes)))
        }
        return DSSEEnvelope(payloadType: type, payload: [UInt8](payload), signatures: signatures)
    }
}
