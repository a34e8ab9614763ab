import AcceptanceCore
import Crypto
import Foundation
import ModbusCore
import RedfishCore
import Reports
import Simulation

/// The entry points the fuzzers drive (issue 10): each takes arbitrary bytes, must never crash or hang, and returns
/// false only when an invariant of its own is broken (a value that does not survive a round trip). The
/// `acceptance-fuzz` executable runs them under libFuzzer; the test suite replays the seed corpus
/// (`Tests/FuzzCorpus/<target>/`) through them on every CI run.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// Every YAML loader: procedure (checked against a small rack), device and rack profiles, scenario, keyring,
    /// firmware manifest.
    case yaml
    /// Expression parsing, type checking and evaluation.
    case expression
    /// A Modbus TCP reply checked against a request (first bytes choose the request).
    case modbusTCP = "modbus-tcp"
    /// A Modbus RTU reply, likewise.
    case modbusRTU = "modbus-rtu"
    /// JSON from a BMC: parsing, pointers, extended error messages, and a serialise/parse round trip.
    case redfishJSON = "redfish-json"
    /// Bundle verification: the bytes are the bundle's attestation.dsse.json.
    case bundle

    /// Runs one input; false if an invariant broke (the fuzzer then reports it as a crash).
    public func run(_ data: [UInt8]) -> Bool {
        switch self {
        case .yaml: return Self.yaml(data)
        case .expression: return Self.expression(data)
        case .modbusTCP: return Self.modbus(data, rtu: false)
        case .modbusRTU: return Self.modbus(data, rtu: true)
        case .redfishJSON: return Self.redfishJSON(data)
        case .bundle: return Self.bundle(data)
        }
    }

    // MARK: Targets

    static func yaml(_ data: [UInt8]) -> Bool {
        let folder = Workspace.shared.folder
        let path = "\(folder)/input.yaml"
        guard FileManager.default.createFile(atPath: path, contents: Data(data)) else { return true }
        let protocols = DeviceProtocols([ModbusProfileSyntax(), RedfishProfileSyntax()])
        _ = ProcedureLoader(fixtures: folder, protocols: protocols).check(path: path)
        _ = try? DeviceProfile.load(path: path, protocols: protocols)
        _ = try? RackProfile.load(path: path)
        _ = try? Scenario.load(path: path)
        _ = try? Keyring.load(path: path)
        _ = try? FirmwareManifest.load(path: path)
        return true
    }

    static func expression(_ data: [UInt8]) -> Bool {
        let text = String(decoding: data, as: UTF8.self)
        guard let expression = try? Expression.parse(text) else { return true }
        // Names ending in `_kpa` are pressures, `_flag` booleans, `_text` text; anything else a plain number.
        let (bound, _, errors) = expression.bind { name in
            if name.hasSuffix("_kpa") { return .quantity(.pressure) }
            if name.hasSuffix("_flag") { return .bool }
            if name.hasSuffix("_text") { return .text(choices: nil) }
            return .number
        }
        guard errors.isEmpty else { return true }
        var values: [String: Value] = [:]
        for name in bound.references {
            if name.hasSuffix("_kpa") {
                values[name] = .quantity(Quantity(300, .kilopascal))
            } else if name.hasSuffix("_flag") {
                values[name] = .bool(true)
            } else if name.hasSuffix("_text") {
                values[name] = .text("x")
            } else {
                values[name] = .number(1)
            }
        }
        _ = try? bound.evaluate(values)
        return true
    }

    static func modbus(_ data: [UInt8], rtu: Bool) -> Bool {
        guard data.count >= 5 else { return true }
        let unit = data[0]
        let count = Int(data[1] % 8) + 1
        let request: ModbusRequest?
        switch data[2] % 6 {
        case 0: request = try? ModbusRequest.read(.holdingRegister, address: 7, count: count)
        case 1: request = try? ModbusRequest.read(.inputRegister, address: 0, count: count)
        case 2: request = try? ModbusRequest.read(.coil, address: 3, count: count * 3)
        case 3: request = try? ModbusRequest.read(.discreteInput, address: 9, count: count)
        case 4:
            request = try? ModbusRequest.write(.holdingRegister, address: 5, values: Array(repeating: 1, count: count))
        default: request = try? ModbusRequest.write(.coil, address: 2, values: [1])
        }
        guard let request else { return false }
        let frame = Array(data[5...])
        let framing: ModbusFraming = rtu ? .rtu : .tcp(transaction: UInt16(data[3]) << 8 | UInt16(data[4]))
        guard let reply = try? ModbusReply.parse(frame, framing: framing, unit: unit, request: request) else {
            return true
        }
        // What is accepted is exactly what was asked for.
        switch reply {
        case let .values(values): return values.count == request.count && request.function.rawValue <= 4
        case .written: return request.function.rawValue > 4
        case .exception: return true
        }
    }

    static func redfishJSON(_ data: [UInt8]) -> Bool {
        _ = RedfishError.extendedMessage(in: data)
        guard let value = try? JSONValue.parse(data) else { return true }
        for pointer in ["/Members/0/@odata.id", "/Status/Health", "/Actions/#ComputerSystem.Reset/target", ""] {
            _ = JSONPointer(pointer).flatMap { value.value(at: $0) }
        }
        if case let .text(text) = DeviceBus.bounded(.text(value["SerialNumber"]?.string ?? "")) {
            if text.unicodeScalars.contains(where: String.needsEscape) { return false }
        }
        // What we write we read back unchanged.
        guard let again = try? JSONValue.parse(value.bytes) else { return false }
        return again == value
    }

    static func bundle(_ data: [UInt8]) -> Bool {
        let folder = Workspace.shared.bundle
        let path = "\(folder)/\(ReportBundle.attestationFile)"
        guard FileManager.default.createFile(atPath: path, contents: Data(data)) else { return true }
        _ = try? DSSEEnvelope.parse(data, file: ReportBundle.attestationFile)
        let result = BundleVerifier.verify(folder: folder, keyring: nil, key: Workspace.key.publicKey)
        // Only the genuine statement over the bundle's one file, signed by the key, may verify.
        if result.verified, result.statementSHA256 != Workspace.shared.genuineStatementSHA256 { return false }
        return true
    }

    // MARK: Seeds

    /// A valid attestation for the fuzzing bundle (signed by the fuzz key), for the bundle target's seed corpus.
    public static func genuineAttestation() -> [UInt8] { Workspace.shared.genuineEnvelope }
}

/// Scratch files the targets use: a small rack for procedures, and a one-file bundle.
struct Workspace: Sendable {
    static let shared = Workspace()
    /// A fixed key (the fuzzer is deterministic): never a station's.
    static var key: Curve25519.Signing.PrivateKey {
        // A constant 32-byte seed is always a valid Ed25519 private key.
        (try? Curve25519.Signing.PrivateKey(rawRepresentation: Array(repeating: UInt8(7), count: 32)))
            ?? Curve25519.Signing.PrivateKey()
    }

    let folder: String
    let bundle: String
    let genuineEnvelope: [UInt8]
    let genuineStatementSHA256: String

    init() {
        folder = NSTemporaryDirectory() + "acceptance-fuzz-\(getpid())"
        bundle = folder + "/bundle"
        for sub in ["racks", "devices", "bundle"] {
            try? FileManager.default.createDirectory(atPath: "\(folder)/\(sub)", withIntermediateDirectories: true)
        }
        try? """
        id: test-rack
        title: Test rack
        devices:
          dev: {model: test-device}
        """.write(toFile: "\(folder)/racks/test-rack.yaml", atomically: true, encoding: .utf8)
        try? """
        model: test-device
        points:
          pressure: {table: holding-register, address: 0, type: int16, scale: 0.1, unit: kPa, access: read-write}
          valve: {table: coil, address: 0, access: read-write, states: {0: closed, 1: open}}
        """.write(toFile: "\(folder)/devices/test-device.yaml", atomically: true, encoding: .utf8)
        let record = Array(#"{"verdict":"PASS"}"#.utf8)
        try? Data(record).write(to: URL(fileURLWithPath: "\(bundle)/record.json"))
        let digest = SHA256.hash(data: record).map { String(format: "%02x", $0) }.joined()
        let statement: JSONValue = [
            "_type": "https://in-toto.io/Statement/v1",
            "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
            "subject": [["name": "record.json", "digest": ["sha256": .string(digest)]]],
            "predicate": ["runId": "fuzz", "verdict": "PASS", "simulated": true],
        ]
        let payload = statement.bytes
        genuineStatementSHA256 = SHA256.hash(data: payload).map { String(format: "%02x", $0) }.joined()
        genuineEnvelope =
            (try? DSSEEnvelope.sign(payload: payload, type: DSSEEnvelope.inToto, key: Self.key)).map {
                Array($0.json.utf8)
            } ?? []
    }
}
