import AcceptanceCore
import Foundation
import Synchronization

/// A resource as read: its JSON and its ETag, for a later `If-Match`.
public struct RedfishResource: Sendable {
    public var path: String
    public var json: JSONValue
    public var etag: String?
}

/// Talks Redfish to one BMC: authentication (Basic, or a session that is deleted on `close()`), retries with
/// backoff on the injected clock (a 503's `Retry-After` honoured), collection paging, ETags on PATCH, and actions
/// by their advertised `target`. Every error names the BMC, the method, the URL and the service's message.
///
/// The same logic runs over HTTPS to a real BMC and in memory against a simulated one; only the transport differs.
public final class RedfishClient: Sendable {
    public let endpoint: RedfishEndpoint
    public let transport: any RedfishHTTPTransport
    let clock: any RunClock
    /// Where retries are reported.
    let events: any TransportEventSink

    struct State {
        var prepared = false
        var token: String?
        /// Where the session lives, to delete it.
        var sessionPath: String?
        /// The login under way: concurrent requests that need a session wait for this one, so there is one session.
        var login: Task<Session, any Error>?
        var closed = false
    }

    struct Session: Sendable {
        var token: String
        var path: String?
    }

    private let state = Mutex(State())

    public init(
        endpoint: RedfishEndpoint, transport: any RedfishHTTPTransport, clock: any RunClock,
        events: any TransportEventSink = DiscardingTransportEvents()
    ) {
        self.endpoint = endpoint
        self.transport = transport
        self.clock = clock
        self.events = events
    }

    /// The BMC as messages name it: `compute07 (https://10.0.5.17)`.
    public var label: String { "\(endpoint.name) (\(transport.baseURL))" }

    // MARK: Reading and writing

    public func get(_ path: String) async throws(RedfishError) -> RedfishResource {
        let response = try await send(.get, path)
        return RedfishResource(path: path, json: try decode(response, .get, path), etag: response.header("etag"))
    }

    /// Every member's `@odata.id` of a collection, following `Members@odata.nextLink` page by page.
    public func members(of collection: String) async throws(RedfishError) -> [String] {
        var paths: [String] = []
        var next: String? = collection
        var pages = 0
        while let page = next {
            pages += 1
            if pages > 1000 {
                throw error(.get, page, .invalidResponse("more than 1000 pages of members: a nextLink loop?"))
            }
            let json = try await get(page).json
            guard let members = json["Members"]?.array else {
                throw error(.get, page, .invalidResponse("not a collection: no Members array"))
            }
            for member in members {
                guard let id = member["@odata.id"]?.string else {
                    throw error(.get, page, .invalidResponse("a member without @odata.id"))
                }
                paths.append(id)
            }
            next = json["Members@odata.nextLink"]?.string.map(Self.pathOnly)
        }
        return paths
    }

    /// PATCHes a resource with `If-Match`: the ETag given, or the one a fresh GET returns. A 412 (someone changed
    /// it in between) is reported, not retried blindly.
    public func patch(_ path: String, _ body: JSONValue, etag: String? = nil) async throws(RedfishError) {
        var tag = etag
        if tag == nil { tag = try await get(path).etag }
        var headers = ["content-type": "application/json"]
        if let tag { headers["if-match"] = tag }
        _ = try await send(.patch, path, body: body.bytes, headers: headers)
    }

    /// Invokes `#<action>` on a resource by the `target` the resource advertises (never a guessed URL).
    public func perform(action: String, on path: String, parameters: JSONValue) async throws(RedfishError) {
        let resource = try await get(path)
        let key = "#\(action)"
        guard let target = resource.json["Actions"]?[key]?["target"]?.string.map(Self.pathOnly) else {
            throw error(.get, path, .invalidResponse("the resource offers no \(key) action"))
        }
        if let allowed = resource.json["Actions"]?[key]?.object?.first(where: {
            $0.key.hasSuffix("@Redfish.AllowableValues")
        }),
            let values = allowed.value.array?.compactMap(\.string), let parameters = parameters.object
        {
            let name = String(allowed.key.prefix { $0 != "@" })
            if let chosen = parameters[name]?.string, !values.contains(chosen) {
                throw error(
                    .post, target,
                    .invalidResponse(
                        "\(name) '\(chosen)' is not allowed here; the BMC allows "
                            + values.joined(separator: ", ")))
            }
        }
        _ = try await send(.post, target, body: parameters.bytes, headers: ["content-type": "application/json"])
    }

    // MARK: Sessions

    /// Logs in if the endpoint uses sessions and has none yet.
    public func open() async throws(RedfishError) {
        try await prepareIfNeeded()
        guard endpoint.authentication == .session else { return }
        try await session(replacing: nil)
    }

    /// Deletes the session, if any. Failures are not errors: the session times out on the BMC anyway.
    public func close() async {
        let (token, path) = state.withLock { state -> (String?, String?) in
            defer {
                state.token = nil
                state.sessionPath = nil
                state.closed = true
            }
            return (state.token, state.sessionPath)
        }
        guard let token, let path, Self.isPathOnThisBMC(path) else { return }
        let request = RedfishRequest(method: .delete, path: path, headers: ["x-auth-token": token])
        // Logging out is housekeeping: sent even when the run was stopped (a task of its own does not inherit the
        // cancellation), and bounded by a deadline of its own so a BMC that stalls cannot hold the end of a run.
        let transport = self.transport
        let deadline = min(endpoint.timeout, Self.logoutDeadline)
        await Task { _ = try? await transport.send(request, timeout: deadline) }.value
    }

    /// The longest a logout may take.
    static let logoutDeadline = Duration.seconds(5)

    public var hasSession: Bool { state.withLock { $0.token != nil } }

    /// The session token, logging in if there is none (or if `stale` is the one that just got a 401). Concurrent
    /// callers share one login, so a BMC sees one session per client.
    @discardableResult
    func session(replacing stale: String?) async throws(RedfishError) -> String {
        enum Next {
            case ready(String)
            case wait(Task<Session, any Error>)
            case closed
        }
        let next = state.withLock { state -> Next in
            if state.closed { return .closed }
            if let stale, state.token == stale {
                // Expired on the BMC: it is gone there, so there is nothing to delete.
                state.token = nil
                state.sessionPath = nil
            }
            if let token = state.token { return .ready(token) }
            if let login = state.login { return .wait(login) }
            let login = Task { () async throws -> Session in try await self.login() }
            state.login = login
            return .wait(login)
        }
        switch next {
        case let .ready(token): return token
        case .closed:
            throw error(.post, Self.sessionsPath, .invalidResponse("the client was closed; it does not log in again"))
        case let .wait(login):
            let result = await login.result
            return try state.withLock { state throws(RedfishError) -> String in
                if state.login == login { state.login = nil }
                switch result {
                case let .success(session):
                    if state.token == nil, !state.closed {
                        state.token = session.token
                        state.sessionPath = session.path
                    }
                    return state.token ?? session.token
                case let .failure(failure):
                    if let failure = failure as? RedfishError { throw failure }
                    throw error(.post, Self.sessionsPath, .invalidResponse("\(failure)"))
                }
            }
        }
    }

    func login() async throws(RedfishError) -> Session {
        guard let credentials = endpoint.credentials else {
            throw error(
                .post, Self.sessionsPath, .invalidResponse("session login needs credentials; the station names none"))
        }
        let body: JSONValue = ["UserName": .string(credentials.username), "Password": .string(credentials.password)]
        let response = try await send(
            .post, Self.sessionsPath, body: body.bytes,
            headers: ["content-type": "application/json"], authenticated: false, timeout: endpoint.connectTimeout)
        guard let token = response.header("x-auth-token"), !token.isEmpty else {
            throw error(
                .post, Self.sessionsPath, .invalidResponse("login answered \(response.status) without X-Auth-Token"))
        }
        var location = response.header("location")
        if location == nil, let json = try? JSONValue.parse(response.body) { location = json["@odata.id"]?.string }
        var path = location.map(Self.pathOnly)
        if let where_ = path, !Self.isPathOnThisBMC(where_) {
            // `Location: @other-host:port/...` would make the logout (with its token) go to another host: the session
            // is used but never deleted through that location; it times out on the BMC.
            events.record(
                TransportEvent(
                    .warning, device: endpoint.name,
                    message: "the BMC gave its session a location off this BMC ('\(String(where_.prefix(120)))'); "
                        + "it will not be logged out there"))
            path = nil
        }
        return Session(token: token, path: path)
    }

    /// A path on this BMC: absolute, not protocol-relative, no backslashes, no spaces or control characters. Paths
    /// from the station's profile and from the BMC itself (targets, links, session locations) must pass before they
    /// are followed, so no answer can send the token or the Basic credentials to another host.
    static func isPathOnThisBMC(_ path: String) -> Bool {
        path.hasPrefix("/") && !path.hasPrefix("//") && !path.contains("\\")
            && !path.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F })
    }

    static let sessionsPath = "/redfish/v1/SessionService/Sessions"

    /// `https://host/redfish/v1/...` or `/redfish/v1/...` → `/redfish/v1/...`.
    static func pathOnly(_ location: String) -> String {
        if location.hasPrefix("/") { return location }
        guard let components = URLComponents(string: location) else { return location }
        return components.percentEncodedPath + (components.percentEncodedQuery.map { "?\($0)" } ?? "")
    }

    // MARK: Requests

    func prepareIfNeeded() async throws(RedfishError) {
        guard !state.withLock({ $0.prepared }) else { return }
        do {
            try await transport.prepare()
        } catch {
            throw self.error(.get, "/redfish/v1", error.kind)
        }
        state.withLock { $0.prepared = true }
    }

    /// Sends a request with authentication and retries; returns any 2xx answer, throws for everything else.
    ///
    /// A lost or timed-out request is sent again only if that is safe: GET, HEAD and DELETE always, a POST or PATCH
    /// (a reset, a login) only when it certainly never reached the BMC. A 503 was not acted on, so any method is
    /// retried after it.
    func send(
        _ method: RedfishMethod, _ path: String, body: [UInt8] = [], headers: [String: String] = [:],
        authenticated: Bool = true, timeout: Duration? = nil
    ) async throws(RedfishError) -> RedfishResponse {
        // Paths come from the station's profile and from the BMC (targets, links): only a path on this BMC is
        // followed, so a hostile answer cannot send the session token or Basic credentials to another host.
        guard Self.isPathOnThisBMC(path) else {
            throw error(
                method, String(path.prefix(200)), .invalidResponse("not a path on this BMC; refusing to follow it"))
        }
        try await prepareIfNeeded()
        let idempotent = method == .get || method == .head || method == .delete
        var reauthenticated = false
        var attempt = 0
        while true {
            var token: String?
            if authenticated, endpoint.authentication == .session {
                token = try await session(replacing: nil)
            }
            var request = RedfishRequest(method: method, path: path, headers: headers, body: body)
            request.headers["accept"] = "application/json"
            request.headers["odata-version"] = "4.0"
            if authenticated { authenticate(&request, token: token) }
            let outcome: Result<RedfishResponse, RedfishTransportFailure>
            do {
                outcome = .success(try await transport.send(request, timeout: timeout ?? endpoint.timeout))
            } catch {
                outcome = .failure(error)
            }
            switch outcome {
            case let .failure(failure):
                guard failure.isRetryable, idempotent || failure.neverSent, attempt < endpoint.retry.retries else {
                    throw error(method, path, failure.kind)
                }
                attempt += 1
                try await wait(backoff(attempt), attempt: attempt, reason: error(method, path, failure.kind))
            case let .success(response):
                if (200..<300).contains(response.status) { return response }
                let problem = error(
                    method, path, .status(response.status), message: RedfishError.extendedMessage(in: response.body))
                if response.status == 401, authenticated, endpoint.authentication == .session, !reauthenticated {
                    // The session expired or the BMC restarted: log in again, once (one login for all requests).
                    reauthenticated = true
                    try await session(replacing: token)
                    continue
                }
                guard response.status == 503, attempt < endpoint.retry.retries else { throw problem }
                attempt += 1
                var delay = backoff(attempt)
                if let asked = retryAfter(response) {
                    guard asked <= endpoint.longestRetryAfter else {
                        throw error(
                            method, path, .status(503),
                            message: "the BMC asks to retry after "
                                + "\(Quantity.format(asked.seconds)) s, longer than the \(Quantity.format(endpoint.longestRetryAfter.seconds)) s allowed"
                        )
                    }
                    delay = asked
                }
                try await wait(delay, attempt: attempt, reason: problem)
            }
        }
    }

    func authenticate(_ request: inout RedfishRequest, token: String?) {
        switch endpoint.authentication {
        case .none: break
        case .basic:
            if let credentials = endpoint.credentials {
                let pair = Data("\(credentials.username):\(credentials.password)".utf8).base64EncodedString()
                request.headers["authorization"] = "Basic \(pair)"
            }
        case .session:
            if let token { request.headers["x-auth-token"] = token }
        }
    }

    func backoff(_ attempt: Int) -> Duration {
        endpoint.retry.delay(before: attempt)
    }

    /// `Retry-After`: seconds, or an HTTP date.
    func retryAfter(_ response: RedfishResponse) -> Duration? {
        guard let text = response.header("retry-after")?.trimmingCharacters(in: .whitespaces) else { return nil }
        if let seconds = Int(text), seconds >= 0 { return .seconds(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: text) else { return nil }
        return .seconds(max(0, date.timeIntervalSince(clock.date(at: clock.now()))))
    }

    func wait(_ delay: Duration, attempt: Int, reason: RedfishError) async throws(RedfishError) {
        // A request cut short by a stop (the supervisor ended mid-read) is not retried, nor recorded as a retry.
        if Task.isCancelled { throw RedfishError(bmc: label, method: reason.method, url: reason.url, kind: .cancelled) }
        let message =
            "retry \(attempt) of \(endpoint.retry.retries) in \(Quantity.format(delay.seconds)) s after: \(reason)"
        events.record(TransportEvent(.retry, device: endpoint.name, message: message))
        do {
            try await clock.sleep(for: delay)
        } catch {
            throw RedfishError(bmc: label, method: reason.method, url: reason.url, kind: .cancelled)
        }
    }

    func decode(_ response: RedfishResponse, _ method: RedfishMethod, _ path: String) throws(RedfishError) -> JSONValue
    {
        do {
            return try JSONValue.parse(response.body)
        } catch {
            throw self.error(method, path, .invalidResponse("the answer is not JSON: \(error.message)"))
        }
    }

    func error(
        _ method: RedfishMethod, _ path: String, _ kind: RedfishError.Kind, message: String? = nil
    ) -> RedfishError {
        RedfishError(bmc: endpoint.name, method: method, url: transport.baseURL + path, kind: kind, message: message)
    }
}
