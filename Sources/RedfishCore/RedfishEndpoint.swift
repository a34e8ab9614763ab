import AcceptanceCore
import Foundation

/// A user name and password for a BMC. Never printed: `description` hides the password, and nothing that writes
/// a log, journal or record is handed one.
public struct RedfishCredentials: Sendable, Hashable, CustomStringConvertible {
    public var username: String
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    public var description: String { "user '\(username)' (password withheld)" }
}

/// How the client proves who it is.
public enum RedfishAuthentication: String, Sendable, Hashable {
    /// HTTP Basic on every request.
    case basic
    /// A Redfish session: one POST to SessionService, then `X-Auth-Token`; the session is deleted at the end.
    case session
    /// Nothing (a service that needs no login).
    case none
}

/// How the client trusts a BMC's certificate.
public enum RedfishTrust: Sendable, Hashable {
    /// The system's trust store.
    case system
    /// A CA bundle (PEM) the station names.
    case caFile(String)
    /// Exactly one certificate, by the SHA-256 of its DER bytes (hex, colons optional).
    case pinned(sha256: String)
    /// No verification at all. Must be asked for explicitly; warned about and written into the record.
    case insecure
}

/// Where a BMC is and how to talk to it: a value, like an HTTP request, so stations and tests build them freely.
public struct RedfishEndpoint: Sendable, Hashable {
    /// The device instance (`compute07`), for messages.
    public var name: String
    /// `https://10.0.5.17` or `http://127.0.0.1:8001`: scheme, host and port only.
    public var baseURL: String
    public var authentication: RedfishAuthentication
    public var credentials: RedfishCredentials?
    public var trust: RedfishTrust
    /// Per request, connect and answer together.
    public var timeout: Duration
    /// The first contact: the pinned certificate's probe and the session login. A BMC making a session can take
    /// seconds longer than it takes to answer a read, and a login that timed out is not sent again (it may have made
    /// a session), so a station can give it more patience than `timeout`. Never shorter than `timeout`.
    public var connectTimeout: Duration {
        get { max(timeout, firstContactTimeout ?? timeout) }
        set { firstContactTimeout = newValue }
    }
    private var firstContactTimeout: Duration?
    /// Retries after a connection failure, a timeout or a 503; a 503's `Retry-After` sets the wait.
    public var retry: RetryPolicy
    /// The longest `Retry-After` honoured; a BMC asking for longer is treated as down.
    public var longestRetryAfter: Duration

    public init(
        name: String, baseURL: String, authentication: RedfishAuthentication = .session,
        credentials: RedfishCredentials? = nil, trust: RedfishTrust = .system, timeout: Duration = .seconds(10),
        connectTimeout: Duration? = nil, retry: RetryPolicy = RetryPolicy(retries: 2, backoff: .milliseconds(500)),
        longestRetryAfter: Duration = .seconds(30)
    ) {
        self.name = name
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.authentication = authentication
        self.credentials = credentials
        self.trust = trust
        self.timeout = timeout
        self.firstContactTimeout = connectTimeout
        self.retry = retry
        self.longestRetryAfter = longestRetryAfter
    }

    public var isHTTPS: Bool { baseURL.lowercased().hasPrefix("https://") }

    /// Host and port, for the pin probe.
    public var hostAndPort: (host: String, port: Int)? {
        guard let components = URLComponents(string: baseURL), let host = components.host else { return nil }
        return (host, components.port ?? (isHTTPS ? 443 : 80))
    }

    /// What a record may say about this endpoint: no credentials.
    public var summary: String {
        var text = "\(baseURL), \(authentication.rawValue) auth"
        switch trust {
        case .system: if isHTTPS { text += ", system trust store" }
        case let .caFile(path): text += ", CA \(path)"
        case let .pinned(sha256): text += ", pinned \(RedfishEndpoint.normalisedFingerprint(sha256).prefix(16))…"
        case .insecure: text += ", INSECURE (certificate not verified)"
        }
        return text
    }

    /// Lower-case hex without separators.
    public static func normalisedFingerprint(_ text: String) -> String {
        text.lowercased().filter { $0.isHexDigit }
    }
}
