import AcceptanceCore

/// Carries one Redfish request to a BMC and brings back the answer: HTTP(S) on the line, a direct call to a
/// simulated BMC in memory. The client's logic (auth, sessions, retries, paging) sits above it, the same for both.
public protocol RedfishHTTPTransport: Sendable {
    /// `http://127.0.0.1:8001`, for messages.
    var baseURL: String { get }
    func send(_ request: RedfishRequest, timeout: Duration) async throws(RedfishTransportFailure) -> RedfishResponse
    /// Checks what can be checked before the first request (a pinned certificate); throws if the BMC must not be used.
    func prepare() async throws(RedfishTransportFailure)
}

extension RedfishHTTPTransport {
    public func prepare() async throws(RedfishTransportFailure) {}
}

/// Why a request got no HTTP answer at all.
public struct RedfishTransportFailure: Error, Sendable {
    public var kind: RedfishError.Kind
    /// The request certainly never reached the BMC (refused, no route, TLS handshake failed): safe to send again
    /// even when it is not idempotent (a reset, a login, a PATCH).
    public var neverSent: Bool

    public init(_ kind: RedfishError.Kind, neverSent: Bool = false) {
        self.kind = kind
        self.neverSent = neverSent
    }

    /// Worth another try: the BMC did not answer. Whether it may be sent again also depends on the method.
    public var isRetryable: Bool {
        switch kind {
        case .connection, .timeout: true
        default: false
        }
    }
}

/// A simulated BMC or any other `RedfishService`, called directly: no sockets, same client logic.
public struct InMemoryRedfishTransport: RedfishHTTPTransport {
    public let service: any RedfishService
    public let baseURL: String

    public init(service: any RedfishService, label: String) {
        self.service = service
        baseURL = "memory://\(label)"
    }

    public func send(
        _ request: RedfishRequest, timeout: Duration
    ) async throws(RedfishTransportFailure) -> RedfishResponse {
        if Task.isCancelled { throw RedfishTransportFailure(.cancelled) }
        guard let response = await service.respond(to: request) else {
            // A service that stopped answering because the caller was cancelled (a delayed answer cut short) did
            // not refuse: no retry is due.
            if Task.isCancelled { throw RedfishTransportFailure(.cancelled) }
            throw RedfishTransportFailure(.connection("connection refused"), neverSent: true)
        }
        if Task.isCancelled { throw RedfishTransportFailure(.cancelled) }
        return response
    }
}
