import AcceptanceCore
import Foundation

/// An HTTP method Redfish uses.
public enum RedfishMethod: String, Sendable, Hashable {
    case get = "GET"
    case post = "POST"
    case patch = "PATCH"
    case delete = "DELETE"
    case head = "HEAD"
    case put = "PUT"
}

/// One Redfish request as a value: what a client sends and a service (simulated BMC, mockup tree) answers.
public struct RedfishRequest: Sendable {
    public var method: RedfishMethod
    /// The path with any query: `/redfish/v1/Systems?$skip=2`.
    public var path: String
    /// Header names in lower case.
    public var headers: [String: String]
    public var body: [UInt8]

    public init(method: RedfishMethod, path: String, headers: [String: String] = [:], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { $1 })
        self.body = body
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// The path without its query.
    public var resourcePath: String {
        String(path.prefix { $0 != "?" })
    }

    /// Query parameters, percent-decoded.
    public var query: [String: String] {
        guard let mark = path.firstIndex(of: "?") else { return [:] }
        var result: [String: String] = [:]
        for pair in path[path.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                .map { String($0).removingPercentEncoding ?? String($0) }
            guard let name = parts.first, !name.isEmpty else { continue }
            result[name] = parts.count > 1 ? parts[1] : ""
        }
        return result
    }
}

public struct RedfishResponse: Sendable {
    public var status: Int
    /// Header names in lower case.
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, headers: [String: String] = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { $1 })
        self.body = body
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// A JSON response with the headers every Redfish response carries.
    public static func json(_ value: JSONValue, status: Int = 200, headers: [String: String] = [:]) -> RedfishResponse {
        var all = ["content-type": "application/json; charset=utf-8", "odata-version": "4.0"]
        for (name, value) in headers { all[name.lowercased()] = value }
        return RedfishResponse(status: status, headers: all, body: value.bytes)
    }
}

/// Something that answers Redfish requests: a simulated BMC or power shelf, a mockup tree. The HTTP server serves
/// any of them on a port; in-process runs call them directly.
public protocol RedfishService: Sendable {
    /// The answer; nil when the service is unreachable (a silent BMC): the server then refuses the connection.
    func respond(to request: RedfishRequest) async -> RedfishResponse?
    /// What an HTTP server serving this service does to the wire instead of answering the next request, if anything
    /// (a simulated BMC's injected fault). Taken once per request.
    func takeWireFault() -> RedfishWireFault?
}

extension RedfishService {
    public func takeWireFault() -> RedfishWireFault? { nil }
}

/// A fault on the wire, below Redfish: what a hung or rebooting BMC does to a client's connection.
public enum RedfishWireFault: Sendable, Hashable {
    /// The request is held this long (real time) before it is answered: longer than the client waits, a timeout.
    case hold(Duration)
    /// The connection is closed part way through the answer.
    case drop
}

/// A Redfish request that did not get the answer it needed. Names the BMC, the method and the URL, and carries the
/// service's extended-info message when it sent one.
public struct RedfishError: TransportError {
    public enum Kind: Sendable, Equatable {
        /// No connection: refused, unreachable, reset.
        case connection(String)
        case timeout
        /// TLS failed: an untrusted certificate, a handshake error.
        case tls(String)
        /// The certificate's SHA-256 fingerprint is not the pinned one.
        case pinMismatch(expected: String, presented: String)
        /// The service answered with an error status.
        case status(Int)
        /// The answer was not what Redfish promises (not JSON, no target for an action).
        case invalidResponse(String)
        /// The point's resource exists, but not the value the profile points at.
        case missingValue(String)
        case cancelled
    }

    public var bmc: String
    public var method: RedfishMethod
    public var url: String
    public var kind: Kind
    /// The Redfish extended-info message (`error.@Message.ExtendedInfo[0].Message`), if the service sent one.
    public var message: String?

    public init(bmc: String, method: RedfishMethod, url: String, kind: Kind, message: String? = nil) {
        self.bmc = bmc
        self.method = method
        self.url = url
        self.kind = kind
        self.message = message
    }

    /// The BMC did not answer at all (as opposed to answering with an error).
    public var isNoResponse: Bool {
        switch kind {
        case .connection, .timeout: true
        case let .status(code): code == 503
        default: false
        }
    }

    public var isCancellation: Bool { kind == .cancelled }

    public var description: String { "\(bmc): \(detail)" }

    /// The description without the BMC's name, for messages that already name the device.
    public var detail: String {
        var text = "\(method.rawValue) \(url): "
        switch kind {
        case let .connection(reason): text += "no connection (\(reason))"
        case .timeout: text += "no complete answer within the timeout (connect, headers and body)"
        case let .tls(reason): text += "TLS failed (\(reason))"
        case let .pinMismatch(expected, presented):
            text += "certificate fingerprint \(presented) is not the pinned \(expected); refusing to talk to this BMC"
        case let .status(code): text += "HTTP \(code) \(Self.reason(code))"
        case let .invalidResponse(reason): text += reason
        case let .missingValue(reason): text += reason
        case .cancelled: text += "cancelled"
        }
        if let message { text += ": \(message)" }
        return text
    }

    static func reason(_ code: Int) -> String {
        switch code {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 409: "Conflict"
        case 412: "Precondition Failed"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        default: ""
        }
    }

    /// The first extended-info message of a Redfish error body, if any.
    public static func extendedMessage(in body: [UInt8]) -> String? {
        guard !body.isEmpty, let json = try? JSONValue.parse(body), let error = json["error"] else { return nil }
        if let info = error["@Message.ExtendedInfo"]?.array?.first {
            let message = info["Message"]?.string
            let id = info["MessageId"]?.string
            switch (message, id) {
            case let (message?, id?): return "\(message) [\(id)]"
            case let (message?, nil): return message
            case let (nil, id?): return id
            default: break
            }
        }
        return error["message"]?.string
    }
}
