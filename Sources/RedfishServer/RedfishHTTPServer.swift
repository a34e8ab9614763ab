import AcceptanceCore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import RedfishCore
import SwiftASN1
import Synchronization
import X509

/// A certificate made at start for the simulated BMCs, so HTTPS (and pinning) works on loopback without files.
public struct GeneratedCertificate: Sendable {
    public let certificateDER: [UInt8]
    public let privateKeyPEM: String

    /// SHA-256 of the certificate's DER bytes, lower-case hex: what a station pins.
    public var sha256: String { SHA256.hash(data: certificateDER).map { String(format: "%02x", $0) }.joined() }

    public var certificatePEM: String {
        let base64 = Data(certificateDER).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN CERTIFICATE-----\n\(base64)\n-----END CERTIFICATE-----\n"
    }

    public static func selfSigned(commonName: String = "acceptance simulated BMC") throws -> GeneratedCertificate {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName(commonName) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(30 * 86_400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([
                    .dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                ])
            },
            issuerPrivateKey: .init(key))
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return GeneratedCertificate(certificateDER: serializer.serializedBytes, privateKeyPEM: key.pemRepresentation)
    }

    func tlsConfiguration() throws -> TLSConfiguration {
        let certificate = try NIOSSLCertificate(bytes: certificateDER, format: .der)
        let key = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(certificate)],
            privateKey: .privateKey(key))
        // The key exchanges BMCs offer today. Not the post-quantum hybrid a current client proposes first: its key
        // share costs both ends of every handshake (a simulated rack serves 35 on one machine) and no BMC has it yet.
        configuration.curves = [.x25519, .secp256r1]
        return configuration
    }
}

/// Serves `RedfishService`s over HTTP or HTTPS on loopback with Hummingbird: one listener per device, each on its own
/// port, as a rack's BMCs are separate hosts. A service that is silent gets a port that refuses connections.
public final class RedfishHTTPServer: Sendable {
    public struct Listener: Sendable {
        public var device: String
        public var port: Int
        public var url: String
    }

    public let listeners: [Listener]
    public let certificate: GeneratedCertificate?
    private let tasks: Mutex<[Task<Void, Never>]>

    public enum StartError: Error, Sendable, CustomStringConvertible {
        case certificate(String)
        case bind(device: String, port: Int, reason: String)

        public var description: String {
            switch self {
            case let .certificate(reason): "cannot make the simulator's TLS certificate: \(reason)"
            case let .bind(device, port, reason): "cannot serve \(device) on 127.0.0.1:\(port): \(reason)"
            }
        }
    }

    /// Starts a listener per service. `firstPort` 0 picks free ports; otherwise devices get consecutive ports in
    /// name order from it.
    public static func start(
        services: [String: any RedfishService], silent: Set<String> = [], tls: Bool,
        host: String = "127.0.0.1", firstPort: Int = 0
    ) async throws(StartError) -> RedfishHTTPServer {
        var certificate: GeneratedCertificate?
        var tlsConfiguration: TLSConfiguration?
        if tls {
            do {
                let generated = try GeneratedCertificate.selfSigned()
                certificate = generated
                tlsConfiguration = try generated.tlsConfiguration()
            } catch {
                throw .certificate("\(error)")
            }
        }
        var listeners: [Listener] = []
        var tasks: [Task<Void, Never>] = []
        var logger = Logger(label: "acceptance.redfish-simulator")
        logger.logLevel = .critical
        for (index, device) in services.keys.sorted().enumerated() {
            guard let service = services[device] else { continue }
            let wanted = firstPort == 0 ? 0 : firstPort + index
            let scheme = tls ? "https" : "http"
            if silent.contains(device) {
                let port = wanted == 0 ? (freePort() ?? 1) : wanted
                listeners.append(Listener(device: device, port: port, url: "\(scheme)://\(host):\(port)"))
                continue
            }
            let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
            let responder = ServiceResponder(service: service)
            let server: HTTPServerBuilder
            do {
                server = try tlsConfiguration.map { try .tls(.http1(), tlsConfiguration: $0) } ?? .http1()
            } catch {
                throw .certificate("\(error)")
            }
            let application = Application(
                responder: responder, server: server,
                configuration: .init(address: .hostname(host, port: wanted), serverName: "acceptance-simulated-bmc"),
                onServerRunning: { channel in
                    continuation.yield(channel.localAddress?.port ?? -1)
                    continuation.finish()
                },
                logger: logger)
            let task = Task {
                do {
                    try await application.run()
                } catch {
                    continuation.yield(-1)
                }
                continuation.finish()
            }
            var iterator = stream.makeAsyncIterator()
            let port = await iterator.next() ?? -1
            guard port > 0 else {
                // Every listener started so far is stopped and awaited before the failure is reported.
                for started in tasks + [task] { started.cancel() }
                for started in tasks + [task] { await started.value }
                throw .bind(device: device, port: wanted, reason: "address in use or not allowed")
            }
            tasks.append(task)
            listeners.append(Listener(device: device, port: port, url: "\(scheme)://\(host):\(port)"))
        }
        return RedfishHTTPServer(listeners: listeners, certificate: certificate, tasks: tasks)
    }

    init(listeners: [Listener], certificate: GeneratedCertificate?, tasks: [Task<Void, Never>]) {
        self.listeners = listeners
        self.certificate = certificate
        self.tasks = Mutex(tasks)
    }

    public func url(of device: String) -> String? { listeners.first { $0.device == device }?.url }

    /// Asks every listener to stop (graceful shutdown of each application) without waiting; `shutdown()` waits.
    public func stop() {
        for task in takeTasks() { task.cancel() }
    }

    /// Stops every listener and returns when each has shut down and closed its port.
    public func shutdown() async {
        let running = takeTasks()
        for task in running { task.cancel() }
        for task in running { await task.value }
    }

    private func takeTasks() -> [Task<Void, Never>] {
        tasks.withLock { tasks in
            defer { tasks.removeAll() }
            return tasks
        }
    }

    /// A port nothing listens on (bound, then released), for a silent BMC.
    static func freePort() -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { return nil }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Hands each HTTP request to the service and its answer back, unless the service has a wire fault for it.
struct ServiceResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let service: any RedfishService
    /// Real time, for holding a request longer than the client waits (a hung BMC).
    var holdClock = ContinuousClock()

    /// Thrown part way through an answer, so the connection closes with the answer cut short.
    struct Dropped: Error {}

    func respond(to request: Request, context: BasicRequestContext) async throws -> Response {
        switch service.takeWireFault() {
        case let .hold(duration)?:
            try? await holdClock.sleep(for: duration)
        case .drop?:
            // Headers promise a body; a few bytes of it go out and the connection closes.
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: ResponseBody(contentLength: 4096) { writer in
                    try await writer.write(ByteBuffer(string: #"{"@odata.id": "/redfish/v1/Sys"#))
                    throw Dropped()
                })
        case nil:
            break
        }
        let body = try await request.body.collect(upTo: 1 << 20)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let method = RedfishMethod(rawValue: request.method.rawValue) ?? .get
        guard RedfishMethod(rawValue: request.method.rawValue) != nil else {
            return Response(status: .methodNotAllowed)
        }
        let answer = await service.respond(
            to: RedfishRequest(
                method: method, path: request.uri.description,
                headers: headers, body: Array(buffer: body)))
        guard let answer else {
            // Unreachable now: end the connection without an answer.
            throw HTTPError(.serviceUnavailable)
        }
        var fields = HTTPFields()
        for (name, value) in answer.headers.sorted(by: { $0.key < $1.key }) {
            if let field = HTTPField.Name(name) { fields[field] = value }
        }
        return Response(
            status: .init(code: answer.status), headers: fields,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
    }
}
