import AcceptanceCore
import AsyncHTTPClient
import Foundation
import RedfishCore
import RedfishTransport
import TestSupport
import Testing

/// A hostile BMC on loopback, over HTTP and (through socat) HTTPS (issue 10, cases 2, 6 and 7).
@Suite("Redfish against a hostile BMC")
struct RedfishDeadlineTests {
    static let serviceRoot = #"{"@odata.id": "/redfish/v1", "Id": "RootService", "Name": "Root"}"#

    func client(
        _ url: String, http: HTTPClient, authentication: RedfishAuthentication = .basic,
        timeout: Duration = .seconds(10), retries: Int = 1, events: any TransportEventSink = DiscardingTransportEvents()
    ) throws -> RedfishClient {
        let endpoint = RedfishEndpoint(
            name: "compute01", baseURL: url, authentication: authentication,
            credentials: RedfishCredentials(username: "u", password: "p"),
            trust: .insecure, timeout: timeout, retry: RetryPolicy(retries: retries, backoff: .milliseconds(100)))
        return RedfishClient(
            endpoint: endpoint, transport: try AsyncHTTPTransport(endpoint: endpoint, client: http),
            clock: WallClock(), events: events)
    }

    /// Headers at once, then one body byte every 2 s.
    static func dripping() throws -> HostileHTTPServer {
        try HostileHTTPServer { _ in
            var answer = HostileHTTPServer.Answer.json(serviceRoot)
            answer.drip = .seconds(2)
            return answer
        }
    }

    /// Case 2: the station's timeout covered only the headers, so `read` never returned. Now one total deadline
    /// covers connect, headers and body: (retries + 1) × timeout + backoff.
    @Test(arguments: [false, true])
    func aSlowBodyEndsAtTheTotalDeadline(https: Bool) async throws {
        let bmc = try Self.dripping()
        defer { bmc.stop() }
        var url = "http://127.0.0.1:\(bmc.port)"
        var tunnel: PeerProcess?
        if https {
            let port = freePort()
            tunnel = try tlsTunnel(listening: port, to: bmc.port)
            url = "https://127.0.0.1:\(port)"
        }
        defer { tunnel?.stop() }
        let http = RedfishHTTP.makeClient()
        let client = try client(url, http: http, timeout: .seconds(1))
        let start = ContinuousClock.now
        do {
            _ = try await client.get("/redfish/v1")
            Issue.record("a body that never finished was accepted")
        } catch {
            #expect(error.kind == .timeout, "\(error)")
            #expect(error.description.contains("no complete answer within the timeout"))
        }
        // (1 retry + 1) × 1 s + 100 ms, plus handshakes on a busy machine: never the 2 s per byte it was (the
        // answer alone would take over 100 s). CI, sharing two cores with the whole suite, once took 23 s.
        #expect(ContinuousClock.now - start < .seconds(60))
        await client.close()
        try await http.shutdown()
    }

    /// Ctrl-C (cancellation) during a slow body acts at once, and the session logout is bounded by its own deadline.
    @Test func cancellationAndLogoutDuringASlowBodyAreBounded() async throws {
        let bmc = try HostileHTTPServer { request in
            if request.method == "POST" {
                return .json(
                    "{}", status: "201 Created",
                    headers: [("X-Auth-Token", "t0ken"), ("Location", "/redfish/v1/SessionService/Sessions/1")])
            }
            var answer = HostileHTTPServer.Answer.json(Self.serviceRoot)
            answer.drip = .seconds(2)
            return answer
        }
        defer { bmc.stop() }
        let http = RedfishHTTP.makeClient()
        let client = try client(
            "http://127.0.0.1:\(bmc.port)", http: http, authentication: .session, timeout: .seconds(30), retries: 5)
        try await client.open()
        let task = Task { try await client.get("/redfish/v1") }
        try await Task.sleep(for: .milliseconds(300))
        let cancelled = ContinuousClock.now
        task.cancel()
        _ = await task.result
        // At once (the pending body alone would take 150 s); a bound far from that and from a busy machine.
        #expect(ContinuousClock.now - cancelled < .seconds(60))
        // The logout (a DELETE the BMC answers as slowly, 150 s) has a deadline of its own, 5 s at most.
        let closing = ContinuousClock.now
        await client.close()
        #expect(ContinuousClock.now - closing < .seconds(60))
        #expect(bmc.requests.contains { $0.method == "DELETE" && $0.headers["x-auth-token"] == "t0ken" })
        try await http.shutdown()
    }

    /// A BMC that takes 8 s to make a session but answers reads at once: with `connect_timeout` the login waits for
    /// it while reads keep the station's 1 s deadline; without, the login (a POST, never sent twice) times out.
    /// (The answers are far slower than the 1 s deadline: with 2 s, a CI machine busy enough to hold the client's
    /// event loop past both moments once let the answer in before the deadline's timer ran.)
    @Test func aSlowLoginHasThePatienceOfTheConnectTimeout() async throws {
        let bmc = try HostileHTTPServer { request in
            if request.method == "POST" {
                Thread.sleep(forTimeInterval: 8)  // the server's own thread, one per connection
                return .json(
                    "{}", status: "201 Created",
                    headers: [("X-Auth-Token", "t0ken"), ("Location", "/redfish/v1/SessionService/Sessions/1")])
            }
            if request.path == "/redfish/v1/slow" { Thread.sleep(forTimeInterval: 8) }
            return .json(Self.serviceRoot)
        }
        defer { bmc.stop() }
        let http = RedfishHTTP.makeClient()
        let impatient = try client(
            "http://127.0.0.1:\(bmc.port)", http: http, authentication: .session, timeout: .seconds(1), retries: 0)
        do throws(RedfishError) {
            try await impatient.open()
            Issue.record("a login slower than the timeout was waited for")
        } catch {
            #expect(error.kind == .timeout && error.description.contains("POST"), "\(error)")
        }
        await impatient.close()

        var endpoint = RedfishEndpoint(
            name: "compute01", baseURL: "http://127.0.0.1:\(bmc.port)", authentication: .session,
            credentials: RedfishCredentials(username: "u", password: "p"), timeout: .seconds(1),
            retry: RetryPolicy(retries: 0, backoff: .milliseconds(100)))
        endpoint.connectTimeout = .seconds(20)
        let patient = RedfishClient(
            endpoint: endpoint, transport: try AsyncHTTPTransport(endpoint: endpoint, client: http), clock: WallClock())
        try await patient.open()
        #expect(patient.hasSession)
        _ = try await patient.get("/redfish/v1")
        do throws(RedfishError) {
            _ = try await patient.get("/redfish/v1/slow")
            Issue.record("a read slower than the timeout was waited for")
        } catch {
            #expect(error.kind == .timeout, "\(error)")
        }
        await patient.close()
        // Never shorter than the timeout itself.
        endpoint.connectTimeout = .milliseconds(10)
        #expect(endpoint.connectTimeout == .seconds(1))
        try await http.shutdown()
    }

    /// Case 7: a login answered with `Location: @127.0.0.1:OTHER/...` sent the logout, token and all, to OTHER.
    @Test func theSessionTokenNeverGoesToAnotherHost() async throws {
        let other = try HostileHTTPServer { _ in .json("{}") }
        defer { other.stop() }
        let bmc = try HostileHTTPServer { request in
            if request.method == "POST" {
                return .json(
                    "{}", status: "201 Created",
                    headers: [("X-Auth-Token", "s3cret"), ("Location", "@127.0.0.1:\(other.port)/steal")])
            }
            return .json(Self.serviceRoot)
        }
        defer { bmc.stop() }
        let http = RedfishHTTP.makeClient()
        let events = TransportEventLog()
        let client = try client(
            "http://127.0.0.1:\(bmc.port)", http: http, authentication: .session, events: events)
        try await client.open()
        _ = try await client.get("/redfish/v1")
        await client.close()
        #expect(other.requests.isEmpty, "\(other.requests.map(\.path))")
        #expect(!bmc.requests.contains { $0.method == "DELETE" })
        #expect(events.take().contains { $0.kind == .warning && $0.message.contains("off this BMC") })
        try await http.shutdown()
    }

    /// An answer over 16 MB is refused, saying so (it was `NIOTooManyBytesError(maxBytes: Optional(16777216))`).
    @Test func anOversizedAnswerSaysWhatWasWrong() async throws {
        let body = Array("{\"x\": \"".utf8) + Array(repeating: UInt8(ascii: "a"), count: 17 << 20) + Array("\"}".utf8)
        let bmc = try HostileHTTPServer { _ in
            HostileHTTPServer.Answer(headers: [("Content-Type", "application/json")], body: body)
        }
        defer { bmc.stop() }
        let http = RedfishHTTP.makeClient()
        let client = try client("http://127.0.0.1:\(bmc.port)", http: http, timeout: .seconds(30))
        do {
            _ = try await client.get("/redfish/v1")
            Issue.record("a 17 MB answer was accepted")
        } catch {
            #expect(error.description.contains("larger than 16 MB"), "\(error)")
        }
        try await http.shutdown()
    }

    /// Case 6 and 8: an 8 MB serial number with terminal escapes in it reaches the run cut to 1 kB and escaped.
    @Test func anEightMegabyteSerialIsCutAndEscaped() async throws {
        let serial = "\u{1B}]0;owned\u{07}\u{1B}[2J" + String(repeating: "S", count: 8 << 20)
        let value = DeviceBus.bounded(.text(serial))
        guard case let .text(text) = value else {
            Issue.record("not text")
            return
        }
        #expect(text.utf8.count < 1200)
        #expect(text.hasPrefix("\\e]0;owned\\x07\\e[2J"))
        #expect(text.hasSuffix("[cut by the station: the device sent \(serial.utf8.count) bytes]"))
        #expect(!text.unicodeScalars.contains { $0.value < 0x20 })
    }
}

/// `socat` terminating TLS on `port` (a throwaway self-signed certificate) and forwarding to a plain `target` port.
func tlsTunnel(listening port: Int, to target: Int) throws -> PeerProcess {
    let directory = temporaryDirectory("tls-tunnel")
    let (status, output) = try blockingRun(
        try program("openssl"),
        [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-keyout", "\(directory)/key.pem", "-out", "\(directory)/cert.pem",
        ])
    guard status == 0 else { throw PeerMissing(description: "openssl req failed: \(output)") }
    let tunnel = try PeerProcess(
        try program("socat"),
        [
            "OPENSSL-LISTEN:\(port),bind=127.0.0.1,reuseaddr,fork,verify=0,cert=\(directory)/cert.pem,"
                + "key=\(directory)/key.pem",
            "TCP:127.0.0.1:\(target)",
        ])
    // Ready once it accepts a connection.
    let deadline = Date().addingTimeInterval(5)
    while rawExchange(port: port, [], replyLength: 0, seconds: 0.1) == nil, Date() < deadline { usleep(20_000) }
    return tunnel
}

/// Runs a short program to completion on this thread.
func blockingRun(_ path: String, _ arguments: [String]) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
