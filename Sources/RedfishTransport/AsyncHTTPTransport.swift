import AcceptanceCore
import AsyncHTTPClient
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import RedfishCore

/// One `HTTPClient` for every BMC of a run, with a scoped lifetime: `withClient` shuts it down when the body ends,
/// however it ends. Timeouts are per request, from each endpoint's configuration.
public enum RedfishHTTP {
    /// Runs `body` with an HTTP client on an event loop of its own, then shuts the client down and the loop with it,
    /// returning only when every connection the client made is closed. (AsyncHTTPClient's own shutdown starts
    /// closing idle TLS connections and returns before their sockets are gone; the loop's shutdown closes them.)
    public static func withClient<T: Sendable>(
        _ body: (HTTPClient) async -> T
    ) async -> T {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = makeClient(eventLoopGroup: group)
        let result = await body(client)
        try? await client.shutdown()
        try? await group.shutdownGracefully()
        return result
    }

    /// A client whose owner must call `shutdown()` (tests that drive the client by hand). Runs on the shared event
    /// loops unless given a group of its own.
    public static func makeClient(
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    )
        -> HTTPClient
    {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        configuration.httpVersion = .http1Only
        // BMCs answer few requests at a time; more connections than this only queue on the BMC.
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 4)
        // A refused port fails at once; the client's own retry policy (on the run's clock) decides what happens next.
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration)
    }
}

/// Redfish over HTTP(S) through a shared `HTTPClient`, trusting the BMC as its endpoint says.
public final class AsyncHTTPTransport: RedfishHTTPTransport {
    public let endpoint: RedfishEndpoint
    let client: HTTPClient
    private let tls: TLSConfiguration?

    public var baseURL: String { endpoint.baseURL }

    public init(endpoint: RedfishEndpoint, client: HTTPClient) throws(RedfishTransportFailure) {
        self.endpoint = endpoint
        self.client = client
        guard endpoint.isHTTPS else {
            tls = nil
            return
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        switch endpoint.trust {
        case .system: break
        case let .caFile(path):
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path))
            } catch {
                throw RedfishTransportFailure(.tls("cannot read the CA file \(path): \(error)"))
            }
        case .pinned:
            // Set in `prepare()`, once the presented certificate has matched the pin.
            tls.certificateVerification = .fullVerification
        case .insecure:
            tls.certificateVerification = .none
        }
        self.tls = tls
    }

    private let pinnedTLS = PinnedConfiguration()

    /// For a pinned endpoint: fetches the certificate the BMC presents, compares its SHA-256 with the pin, and from
    /// then on trusts exactly that certificate (so a different one on a later connection fails the handshake).
    public func prepare() async throws(RedfishTransportFailure) {
        guard case let .pinned(expected) = endpoint.trust, endpoint.isHTTPS else { return }
        if pinnedTLS.configuration != nil { return }
        guard let (host, port) = endpoint.hostAndPort else {
            throw RedfishTransportFailure(.connection("no host in \(endpoint.baseURL)"))
        }
        let certificate = try await CertificateProbe.presentedCertificate(
            host: host, port: port, timeout: endpoint.connectTimeout, on: client.eventLoopGroup.next())
        let presented: String
        do {
            presented = SHA256.hash(data: try certificate.toDERBytes()).map { String(format: "%02x", $0) }.joined()
        } catch {
            throw RedfishTransportFailure(.tls("cannot encode the presented certificate: \(error)"))
        }
        let wanted = RedfishEndpoint.normalisedFingerprint(expected)
        guard presented == wanted else {
            throw RedfishTransportFailure(.pinMismatch(expected: wanted, presented: presented))
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates([certificate])
        // The pin is the identity: the host name in the certificate is not what is trusted.
        tls.certificateVerification = .noHostnameVerification
        pinnedTLS.configuration = tls
    }

    public func send(
        _ request: RedfishRequest, timeout: Duration
    ) async throws(RedfishTransportFailure) -> RedfishResponse {
        var http = HTTPClientRequest(url: endpoint.baseURL + request.path)
        http.method = HTTPMethod(rawValue: request.method.rawValue)
        for (name, value) in request.headers { http.headers.add(name: name, value: value) }
        if !request.body.isEmpty { http.body = .bytes(ByteBuffer(bytes: request.body)) }
        if case .pinned = endpoint.trust {
            guard let pinned = pinnedTLS.configuration else {
                throw RedfishTransportFailure(.tls("the pinned certificate was not checked before the first request"))
            }
            http.tlsConfiguration = pinned
        } else {
            http.tlsConfiguration = tls
        }
        // One total deadline for the whole exchange: connecting, the TLS handshake, the headers *and* the body.
        // AsyncHTTPClient's own deadline ends when the headers arrive; a BMC that then sends one body byte every 2 s
        // would hold the request forever. A timer on the client's event loop cancels the exchange at the deadline.
        let nanoseconds = Int64(min(timeout.seconds, 3600) * 1e9)
        let deadline = NIODeadline.now() + .nanoseconds(nanoseconds)
        let client = self.client
        let exchange = Task { () async throws -> RedfishResponse in
            let response = try await client.execute(http, deadline: deadline)
            let body = try await response.body.collect(upTo: Self.maximumBody)
            var headers: [String: String] = [:]
            for header in response.headers { headers[header.name.lowercased()] = header.value }
            return RedfishResponse(status: Int(response.status.code), headers: headers, body: Array(buffer: body))
        }
        let expired = NIOLockedValueBox(false)
        let timer = client.eventLoopGroup.next().scheduleTask(deadline: deadline) {
            expired.withLockedValue { $0 = true }
            exchange.cancel()
        }
        defer { timer.cancel() }
        let result = await withTaskCancellationHandler {
            await exchange.result
        } onCancel: {
            exchange.cancel()
        }
        switch result {
        case let .success(response): return response
        case let .failure(error):
            if expired.withLockedValue({ $0 }) {
                throw RedfishTransportFailure(.timeout)
            }
            throw RedfishTransportFailure(Self.classify(error), neverSent: Self.neverSent(error))
        }
    }

    /// The largest answer read from a BMC (a whole collection expanded fits in far less).
    static let maximumBody = 16 * 1024 * 1024

    /// Errors that happen before a request can have been sent: connecting, resolving, the TLS handshake.
    static func neverSent(_ error: any Error) -> Bool {
        if error is NIOConnectionError || error is NIOSSLError || error is BoringSSLError { return true }
        if let client = error as? HTTPClientError {
            return client == .connectTimeout || client == .tlsHandshakeTimeout
                || client == .getConnectionFromPoolTimeout
        }
        if let io = error as? IOError {
            return io.errnoCode == ECONNREFUSED || io.errnoCode == EHOSTUNREACH || io.errnoCode == ENETUNREACH
        }
        return false
    }

    static func classify(_ error: any Error) -> RedfishError.Kind {
        if error is CancellationError { return .cancelled }
        if let client = error as? HTTPClientError {
            switch client {
            case .deadlineExceeded, .readTimeout, .writeTimeout, .connectTimeout, .tlsHandshakeTimeout: return .timeout
            case .cancelled: return .cancelled
            case .remoteConnectionClosed: return .connection("the BMC closed the connection")
            default: return .connection("\(client)")
            }
        }
        // The answer cut off part way (the BMC rebooted, a switch dropped the connection): a lost connection, which
        // a GET may retry, not a malformed answer.
        if let parser = error as? HTTPParserError, parser == .invalidEOFState {
            return .connection("the BMC closed the connection part way through its answer")
        }
        if let ssl = error as? NIOSSLError {
            return .tls("\(ssl)")
        }
        if let ssl = error as? BoringSSLError {
            return .tls("\(ssl)")
        }
        if let connect = error as? NIOConnectionError {
            let reasons = connect.connectionErrors.map { "\($0.error)" }
            return .connection(reasons.first ?? "\(connect)")
        }
        if let io = error as? IOError {
            return .connection("\(String(cString: strerror(io.errnoCode))) (errno \(io.errnoCode))")
        }
        if error is NIOTooManyBytesError {
            return .invalidResponse("the answer is larger than \(maximumBody / 1024 / 1024) MB; refused")
        }
        let text = "\(error)"
        if text.contains("refused") { return .connection("connection refused") }
        // Anything else (a body too large, a malformed answer) is not a lost connection: not retried.
        return .invalidResponse(text)
    }
}

/// The TLS configuration of a pinned endpoint, set once the pin has matched.
final class PinnedConfiguration: Sendable {
    // Written once by prepare() before any request; read by requests afterwards.
    private let stored = NIOLockedValueBox<TLSConfiguration?>(nil)

    var configuration: TLSConfiguration? {
        get { stored.withLockedValue { $0 } }
        set { stored.withLockedValue { $0 = newValue } }
    }
}

/// Opens a TLS connection only to see the certificate a server presents, then closes it.
enum CertificateProbe {
    static func presentedCertificate(
        host: String, port: Int, timeout: Duration, on loop: any EventLoop
    ) async throws(RedfishTransportFailure)
        -> NIOSSLCertificate
    {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw RedfishTransportFailure(.tls("\(error)"))
        }
        let result = OnceCompleted(promise: loop.makePromise(of: NIOSSLCertificate?.self))
        let amount = TimeAmount.nanoseconds(Int64(timeout.seconds * 1e9))
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(amount)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(context: context, serverHostname: nil) {
                        certificates, verified in
                        result.complete(certificates.first)
                        verified.succeed(.certificateVerified)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let certificate: NIOSSLCertificate?
        do {
            let channel = try await bootstrap.connect(host: host, port: port).get()
            // The handshake calls back with the chain; a closed channel or the timeout ends the wait without one.
            channel.closeFuture.whenComplete { _ in result.complete(nil) }
            let timer = loop.scheduleTask(in: amount) { result.complete(nil) }
            certificate = try await result.promise.futureResult.get()
            timer.cancel()
            // Closed and gone before the probe returns: the close future alone can complete before the socket is.
            channel.close(promise: nil)
            try? await channel.closeFuture.get()
        } catch {
            // Every promise is completed, whatever happened (NIO traps on a leaked one).
            result.complete(nil)
            throw RedfishTransportFailure(AsyncHTTPTransport.classify(error))
        }
        guard let certificate else {
            throw RedfishTransportFailure(.tls("no certificate presented by \(host):\(port) within the timeout"))
        }
        return certificate
    }
}

/// A promise completed by whichever event comes first; later completions are ignored.
final class OnceCompleted: Sendable {
    let promise: EventLoopPromise<NIOSSLCertificate?>
    private let done = NIOLockedValueBox(false)

    init(promise: EventLoopPromise<NIOSSLCertificate?>) { self.promise = promise }

    func complete(_ value: NIOSSLCertificate?) {
        let first = done.withLockedValue { done in
            defer { done = true }
            return !done
        }
        if first { promise.succeed(value) }
    }
}
