import AcceptanceCore
import Crypto
import Foundation
import RedfishCore
import Synchronization

/// A tree of Redfish resources: rendered from a simulated device's state, or loaded from a DMTF mockup.
public protocol RedfishTree: Sendable {
    /// The resource at a path without trailing slash (`/redfish/v1/Systems/System_0`), or nil.
    func resource(at path: String) -> JSONValue?
    /// Applies a PATCH; `.ok` or why not.
    func patch(_ path: String, _ body: JSONValue) -> RedfishTreeOutcome
    /// Handles a POST to an action target.
    func post(_ path: String, _ body: JSONValue) -> RedfishTreeOutcome
    /// Every resource type the tree uses (`ComputerSystem.v1_27_0`), for `$metadata`.
    var schemaNamespaces: [String] { get }
}

public enum RedfishTreeOutcome: Sendable {
    case ok
    case accepted
    case notFound
    case notAllowed
    case badRequest(messageID: String, message: String)
}

/// What a simulated BMC does besides answering: who may log in, and what goes wrong.
public struct RedfishServiceBehaviour: Sendable {
    public var username: String
    public var password: String
    /// Refuses every connection (cable pulled, BMC hung).
    public var silent = false
    /// Every answer waits this long on the clock.
    public var delaySeconds = 0.0
    /// The first `unavailableCount` requests get 503 with `Retry-After`.
    public var unavailableCount = 0
    public var retryAfterSeconds = 1.0
    /// Collections longer than this are paged with `Members@odata.nextLink`.
    public var pageSize = 50

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
}

/// Serves a `RedfishTree` with everything around it that a real BMC does: authentication (401 without it, Basic or
/// sessions), a SessionService, ETags and `If-Match`, paging, `$metadata`, error bodies with extended info, and
/// injected faults on the shared clock.
public final class SimulatedRedfishService: RedfishService {
    public let tree: any RedfishTree
    public let clock: any RunClock
    public let behaviour: RedfishServiceBehaviour

    struct Session {
        var id: String
        var token: String
        var user: String
    }

    struct State {
        var sessions: [Session] = []
        var nextSession = 1
        var unavailableLeft: Int
        var requests = 0
        /// Wire faults injected for the next requests, in order (served over HTTP only).
        var wireFaults: [RedfishWireFault] = []
    }

    private let state: Mutex<State>

    public init(tree: any RedfishTree, clock: any RunClock, behaviour: RedfishServiceBehaviour) {
        self.tree = tree
        self.clock = clock
        self.behaviour = behaviour
        state = Mutex(State(unavailableLeft: behaviour.unavailableCount))
    }

    /// Injects faults while the BMC runs: the next `count` requests answered 503 (with `Retry-After`).
    public func injectUnavailable(count: Int) {
        state.withLock { $0.unavailableLeft += count }
    }

    /// Injects wire faults for the next requests, one each (a server on the wire applies them; in memory they do
    /// not apply).
    public func injectWireFaults(_ faults: [RedfishWireFault]) {
        state.withLock { $0.wireFaults += faults }
    }

    public func takeWireFault() -> RedfishWireFault? {
        state.withLock { $0.wireFaults.isEmpty ? nil : $0.wireFaults.removeFirst() }
    }

    /// Requests answered so far (tests, benchmarks).
    public var requestCount: Int { state.withLock { $0.requests } }
    public var openSessions: Int { state.withLock { $0.sessions.count } }

    static let sessionsPath = "/redfish/v1/SessionService/Sessions"

    public func respond(to request: RedfishRequest) async -> RedfishResponse? {
        if behaviour.silent { return nil }
        if behaviour.delaySeconds > 0 {
            do {
                try await clock.sleep(for: .seconds(behaviour.delaySeconds))
            } catch {
                return nil
            }
        }
        let unavailable = state.withLock { state -> Bool in
            state.requests += 1
            guard state.unavailableLeft > 0 else { return false }
            state.unavailableLeft -= 1
            return true
        }
        if unavailable {
            var response = Self.error(
                503, "Base.1.16.0.ServiceTemporarilyUnavailable",
                "The service is temporarily unavailable. Retry in \(Int(behaviour.retryAfterSeconds)) seconds.")
            response.headers["retry-after"] = String(Int(behaviour.retryAfterSeconds.rounded(.up)))
            return response
        }
        var path = request.resourcePath
        while path.count > 1, path.hasSuffix("/") { path.removeLast() }
        return handle(request, path: path)
    }

    func handle(_ request: RedfishRequest, path: String) -> RedfishResponse {
        // Open without credentials, as the specification requires.
        switch (request.method, path) {
        case (.get, "/redfish"), (.head, "/redfish"):
            return .json(["v1": "/redfish/v1/"])
        case (.get, "/redfish/v1"), (.head, "/redfish/v1"):
            return get(path, request)
        case (.get, "/redfish/v1/$metadata"), (.head, "/redfish/v1/$metadata"):
            return RedfishResponse(
                status: 200, headers: ["content-type": "application/xml", "odata-version": "4.0"],
                body: Array(metadata().utf8))
        case (.get, "/redfish/v1/odata"):
            return .json(odataDocument())
        case (.post, Self.sessionsPath):
            return login(request)
        default: break
        }
        guard let user = authenticatedUser(request) else {
            var response = Self.error(
                401, "Base.1.16.0.NoValidSession",
                "There is no valid session established with the implementation.")
            response.headers["www-authenticate"] = "Basic realm=\"Redfish\""
            return response
        }
        if path.hasPrefix(Self.sessionsPath) { return sessions(request, path: path, user: user) }
        if path == "/redfish/v1/SessionService" {
            guard request.method == .get || request.method == .head else {
                return Self.notAllowed(path, allow: "GET, HEAD")
            }
            return .json([
                "@odata.id": "/redfish/v1/SessionService", "@odata.type": "#SessionService.v1_2_0.SessionService",
                "Id": "SessionService", "Name": "Session Service", "ServiceEnabled": true, "SessionTimeout": 600,
                "Status": ["State": "Enabled", "Health": "OK"],
                "Sessions": ["@odata.id": .string(Self.sessionsPath)],
            ])
        }
        switch request.method {
        case .get, .head:
            var response = get(path, request)
            if request.method == .head { response.body = [] }
            return response
        case .patch:
            guard let current = tree.resource(at: path) else { return Self.notFound(path) }
            if let match = request.header("if-match"), match != "*", match != Self.etag(current) {
                return Self.error(
                    412, "Base.1.16.0.PreconditionFailed",
                    "The ETag supplied did not match the ETag required to change this resource.")
            }
            guard let body = try? JSONValue.parse(request.body), body.object != nil else {
                return Self.error(400, "Base.1.16.0.MalformedJSON", "The request body submitted was malformed JSON.")
            }
            return outcome(tree.patch(path, body), path: path, okStatus: 200)
        case .post:
            let body = request.body.isEmpty ? JSONValue.object([:]) : ((try? JSONValue.parse(request.body)) ?? .null)
            guard body.object != nil else {
                return Self.error(400, "Base.1.16.0.MalformedJSON", "The request body submitted was malformed JSON.")
            }
            return outcome(tree.post(path, body), path: path, okStatus: 204)
        case .delete, .put:
            return tree.resource(at: path) == nil
                ? Self.notFound(path) : Self.notAllowed(path, allow: "GET, HEAD, PATCH")
        }
    }

    func outcome(_ outcome: RedfishTreeOutcome, path: String, okStatus: Int) -> RedfishResponse {
        switch outcome {
        case .ok:
            if okStatus == 200, let resource = tree.resource(at: path) {
                return Self.withETag(resource)
            }
            return RedfishResponse(status: 204, headers: ["odata-version": "4.0"])
        case .accepted: return RedfishResponse(status: 204, headers: ["odata-version": "4.0"])
        case .notFound: return Self.notFound(path)
        case .notAllowed: return Self.notAllowed(path, allow: "GET, HEAD")
        case let .badRequest(messageID, message): return Self.error(400, messageID, message)
        }
    }

    func get(_ path: String, _ request: RedfishRequest) -> RedfishResponse {
        guard var resource = path == "/redfish/v1" ? serviceRoot() : tree.resource(at: path) else {
            return Self.notFound(path)
        }
        if case var .object(members) = resource, let items = members["Members"]?.array, items.count > behaviour.pageSize
        {
            let skip = max(0, Int(request.query["$skip"] ?? "") ?? 0)
            let page = Array(items.dropFirst(skip).prefix(behaviour.pageSize))
            members["Members"] = .array(page)
            members["Members@odata.count"] = .number(Double(items.count))
            if skip + page.count < items.count {
                members["Members@odata.nextLink"] = .string("\(path)?$skip=\(skip + page.count)")
            }
            resource = .object(members)
        }
        return Self.withETag(resource)
    }

    func serviceRoot() -> JSONValue {
        guard case var .object(root)? = tree.resource(at: "/redfish/v1") else { return .object([:]) }
        root["SessionService"] = ["@odata.id": "/redfish/v1/SessionService"]
        root["Links"] = ["Sessions": ["@odata.id": .string(Self.sessionsPath)]]
        return .object(root)
    }

    static func etag(_ resource: JSONValue) -> String { etag(of: resource.bytes) }

    /// A weak ETag from a resource's serialized bytes (the first 8 bytes of their SHA-256, in hex).
    static func etag(of bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = Array("W/\"".utf8)
        for byte in SHA256.hash(data: bytes).prefix(8) {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        text.append(UInt8(ascii: "\""))
        return String(decoding: text, as: UTF8.self)
    }

    /// A resource as JSON with its ETag, serialized once for both.
    static func withETag(_ resource: JSONValue) -> RedfishResponse {
        var response = RedfishResponse.json(resource)
        response.headers["etag"] = etag(of: response.body)
        return response
    }

    // MARK: Authentication

    func authenticatedUser(_ request: RedfishRequest) -> String? {
        if let token = request.header("x-auth-token") {
            return state.withLock { state in state.sessions.first { $0.token == token }?.user }
        }
        if let authorization = request.header("authorization"), authorization.lowercased().hasPrefix("basic "),
            let data = Data(base64Encoded: String(authorization.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let pair = String(data: data, encoding: .utf8), let colon = pair.firstIndex(of: ":")
        {
            let user = String(pair[..<colon])
            let password = String(pair[pair.index(after: colon)...])
            if Self.constantTimeEqual(user, behaviour.username), Self.constantTimeEqual(password, behaviour.password) {
                return user
            }
        }
        return nil
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    func login(_ request: RedfishRequest) -> RedfishResponse {
        guard let body = try? JSONValue.parse(request.body), let user = body["UserName"]?.string,
            let password = body["Password"]?.string
        else {
            return Self.error(400, "Base.1.16.0.PropertyMissing", "The request body needs UserName and Password.")
        }
        guard Self.constantTimeEqual(user, behaviour.username), Self.constantTimeEqual(password, behaviour.password)
        else {
            return Self.error(401, "Base.1.16.0.ResourceAtUriUnauthorized", "The credentials are not valid.")
        }
        var bytes = [UInt8](repeating: 0, count: 24)
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255) }
        let token = bytes.map { String(format: "%02x", $0) }.joined()
        let session = state.withLock { state -> Session in
            let session = Session(id: String(state.nextSession), token: token, user: user)
            state.nextSession += 1
            state.sessions.append(session)
            return session
        }
        let path = "\(Self.sessionsPath)/\(session.id)"
        return .json(sessionResource(session), status: 201, headers: ["x-auth-token": token, "location": path])
    }

    func sessionResource(_ session: Session) -> JSONValue {
        [
            "@odata.id": .string("\(Self.sessionsPath)/\(session.id)"), "@odata.type": "#Session.v1_8_0.Session",
            "Id": .string(session.id), "Name": "User Session", "UserName": .string(session.user),
        ]
    }

    func sessions(_ request: RedfishRequest, path: String, user: String) -> RedfishResponse {
        let all = state.withLock { $0.sessions }
        if path == Self.sessionsPath {
            guard request.method == .get || request.method == .head else {
                return Self.notAllowed(path, allow: "GET, HEAD, POST")
            }
            return .json([
                "@odata.id": .string(path), "@odata.type": "#SessionCollection.SessionCollection",
                "Name": "Session Collection", "Members@odata.count": .number(Double(all.count)),
                "Members": .array(all.map { ["@odata.id": .string("\(path)/\($0.id)")] }),
            ])
        }
        let id = String(path.dropFirst(Self.sessionsPath.count + 1))
        guard let session = all.first(where: { $0.id == id }) else { return Self.notFound(path) }
        switch request.method {
        case .get, .head: return .json(sessionResource(session))
        case .delete:
            state.withLock { $0.sessions.removeAll { $0.id == id } }
            return RedfishResponse(status: 204, headers: ["odata-version": "4.0"])
        default: return Self.notAllowed(path, allow: "GET, HEAD, DELETE")
        }
    }

    // MARK: Documents

    func metadata() -> String {
        var namespaces = Set(tree.schemaNamespaces)
        namespaces.formUnion(["ServiceRoot.v1_20_0", "SessionService.v1_2_0", "Session.v1_8_0", "SessionCollection"])
        var xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">

            """
        var bySchema: [String: [String]] = [:]
        for namespace in namespaces {
            let schema = String(namespace.prefix { $0 != "." })
            bySchema[schema, default: []].append(namespace)
        }
        for schema in bySchema.keys.sorted() {
            xml += "  <edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/v1/\(schema)_v1.xml\">\n"
            var includes = Set(bySchema[schema] ?? [])
            includes.insert(schema)
            for namespace in includes.sorted() { xml += "    <edmx:Include Namespace=\"\(namespace)\"/>\n" }
            xml += "  </edmx:Reference>\n"
        }
        xml += """
              <edmx:DataServices>
                <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">
                  <EntityContainer Name="Service" Extends="ServiceRoot.v1_20_0.ServiceContainer"/>
                </Schema>
              </edmx:DataServices>
            </edmx:Edmx>

            """
        return xml
    }

    func odataDocument() -> JSONValue {
        let root = serviceRoot()
        var values: [JSONValue] = []
        for (key, value) in (root.object ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let link = value["@odata.id"]?.string {
                values.append(["name": .string(key), "kind": "Singleton", "url": .string(link)])
            }
        }
        return ["@odata.context": "/redfish/v1/$metadata", "value": .array(values)]
    }

    // MARK: Errors

    static func error(_ status: Int, _ messageID: String, _ message: String) -> RedfishResponse {
        .json(
            [
                "error": [
                    "code": .string(messageID), "message": .string(message),
                    "@Message.ExtendedInfo": [
                        [
                            "@odata.type": "#Message.v1_1_1.Message", "MessageId": .string(messageID),
                            "Message": .string(message), "Severity": "Critical",
                            "MessageSeverity": "Critical", "Resolution": "None.",
                        ]
                    ],
                ]
            ],
            status: status)
    }

    static func notFound(_ path: String) -> RedfishResponse {
        error(404, "Base.1.16.0.ResourceMissingAtURI", "The resource at the URI \(path) was not found.")
    }

    static func notAllowed(_ path: String, allow: String) -> RedfishResponse {
        var response = error(405, "Base.1.16.0.OperationNotAllowed", "The operation is not allowed on \(path).")
        response.headers["allow"] = allow
        return response
    }
}
