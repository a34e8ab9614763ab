import AcceptanceCore
import Foundation
import Harness
import Synchronization
import TestSupport
import Testing

@testable import RedfishCore
@testable import RedfishTransport
@testable import Simulation

/// A BMC that answers whatever a test wants, counting what it is sent.
final class ScriptedBMC: RedfishService, RedfishHTTPTransport {
    let baseURL = "memory://scripted"
    let answer: @Sendable (RedfishRequest) -> RedfishResponse?
    let failure: RedfishTransportFailure?
    private let log = Mutex<[RedfishRequest]>([])

    init(
        failure: RedfishTransportFailure? = nil,
        answer: @escaping @Sendable (RedfishRequest) -> RedfishResponse? = { _ in nil }
    ) {
        self.failure = failure
        self.answer = answer
    }

    var requests: [RedfishRequest] { log.withLock { $0 } }

    func respond(to request: RedfishRequest) async -> RedfishResponse? {
        log.withLock { $0.append(request) }
        return answer(request)
    }

    func send(_ request: RedfishRequest, timeout: Duration) async throws(RedfishTransportFailure) -> RedfishResponse {
        log.withLock { $0.append(request) }
        if let failure { throw failure }
        guard let response = answer(request) else {
            throw RedfishTransportFailure(.connection("refused"), neverSent: true)
        }
        return response
    }
}

func basicClient(_ transport: any RedfishHTTPTransport, retries: Int = 2) -> RedfishClient {
    RedfishClient(
        endpoint: RedfishEndpoint(
            name: "bmc", baseURL: transport.baseURL, authentication: .basic,
            credentials: RedfishCredentials(username: "u", password: "p"),
            retry: RetryPolicy(retries: retries, backoff: .milliseconds(10))),
        transport: transport, clock: SimulationClock())
}

@Suite("Redfish client against hostile or broken BMCs")
struct RedfishHostileTests {
    @Test func aTargetOffThisBMCIsNotFollowed() async throws {
        let bmc = ScriptedBMC { _ in
            .json(["Actions": ["#ComputerSystem.Reset": ["target": "@evil.example/steal"]]])
        }
        let client = basicClient(bmc)
        do {
            try await client.perform(
                action: "ComputerSystem.Reset", on: "/redfish/v1/Systems/1", parameters: ["ResetType": "On"])
            Issue.record("a target on another host was followed")
        } catch {
            #expect(error.description.contains("not a path on this BMC"))
        }
        #expect(bmc.requests.map(\.method) == [.get], "only the GET of the resource was sent; no POST anywhere")
        // Links that are absolute URLs on the BMC itself are fine: their path is used, on this BMC.
        let paged = ScriptedBMC { request in
            request.path == "/redfish/v1/Systems"
                ? .json([
                    "Members": [["@odata.id": "/redfish/v1/Systems/1"]],
                    "Members@odata.nextLink": "https://10.0.0.9/redfish/v1/Systems?$skip=1",
                ])
                : .json(["Members": [["@odata.id": "/redfish/v1/Systems/2"]]])
        }
        #expect(
            try await basicClient(paged).members(of: "/redfish/v1/Systems") == [
                "/redfish/v1/Systems/1", "/redfish/v1/Systems/2",
            ])
        #expect(paged.requests.last?.path == "/redfish/v1/Systems?$skip=1")
    }

    @Test func aTimedOutResetIsNotSentTwiceButAReadIsRetried() async throws {
        let bmc = ScriptedBMC(failure: RedfishTransportFailure(.timeout))
        let client = basicClient(bmc, retries: 3)
        await #expect(throws: RedfishError.self) { try await client.get("/redfish/v1/Systems/1") }
        #expect(bmc.requests.count == 4, "a GET is idempotent: 1 + 3 retries")
        let poster = ScriptedBMC(failure: RedfishTransportFailure(.timeout))
        await #expect(throws: RedfishError.self) {
            _ = try await basicClient(poster, retries: 3).send(
                .post, "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                body: Array("{}".utf8))
        }
        #expect(poster.requests.count == 1, "a reset that may have reached the BMC is never sent again")
        let refused = ScriptedBMC(failure: RedfishTransportFailure(.connection("refused"), neverSent: true))
        await #expect(throws: RedfishError.self) {
            _ = try await basicClient(refused, retries: 2).send(.post, "/redfish/v1/x", body: [])
        }
        #expect(refused.requests.count == 3, "a POST that never left is safe to retry")
    }

    @Test func concurrentRequestsAfterAnExpiredSessionShareOneLogin() async throws {
        let rack = try simulatedRack()
        let service = try #require(rack.services["compute01"])
        let client = try memoryClient("compute01", rack)
        try await client.open()
        #expect(service.openSessions == 1)
        // The BMC forgets the session (restart, timeout).
        let sessions = try #require(
            await service.respond(
                to: RedfishRequest(
                    method: .get, path: "/redfish/v1/SessionService/Sessions",
                    headers: [
                        "authorization": "Basic "
                            + Data("admin:\(rack.credentials.password)".utf8).base64EncodedString()
                    ])))
        let path = try #require(try JSONValue.parse(sessions.body)["Members"]?.array?.first?["@odata.id"]?.string)
        _ = await service.respond(
            to: RedfishRequest(
                method: .delete, path: path,
                headers: [
                    "authorization": "Basic " + Data("admin:\(rack.credentials.password)".utf8).base64EncodedString()
                ]))
        #expect(service.openSessions == 0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in ["CPU_0", "CPU_1", "GPU_0", "GPU_1", "GPU_2", "GPU_3"] {
                group.addTask { _ = try await client.get("/redfish/v1/Systems/System_0/Processors/\(id)") }
            }
            try await group.waitForAll()
        }
        #expect(service.openSessions == 1, "one new session, not one per request")
        await client.close()
        #expect(service.openSessions == 0)
        await #expect(throws: RedfishError.self) { try await client.get("/redfish/v1/Systems") }
        #expect(service.openSessions == 0, "a closed client does not log in again")
    }

    @Test func hostileQueriesAndTypesDoNotCrashTheSimulator() async throws {
        var settings = RedfishSettings()
        settings.pageSize = 2
        let rack = try simulatedRack(settings)
        let service = try #require(rack.services["compute01"])
        let basic = "Basic " + Data("admin:\(rack.credentials.password)".utf8).base64EncodedString()
        for path in [
            "/redfish/v1/Systems/System_0/Processors?=", "/redfish/v1/Systems/System_0/Processors?&&=&$skip=-5",
            "/redfish/v1/Systems/System_0/Processors?$skip=99999999999999999999",
        ] {
            let answer = await service.respond(
                to: RedfishRequest(method: .get, path: path, headers: ["authorization": basic]))
            #expect(answer?.status == 200)
        }
        #expect(Redfish.namespaces(of: ["/a": ["@odata.type": ""], "/b": ["@odata.type": "#"]]).isEmpty)
    }

    @Test func stationURLsCannotCarryCredentials() throws {
        let path = temporaryDirectory() + "/station.yaml"
        try """
        station: s
        devices:
          compute01:
            redfish: {url: 'https://admin:secret@10.0.5.11', auth: session, username_env: U, password_env: P}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try StationConfiguration.load(path: path, connectors: Transports.connectors)
            Issue.record("a URL with a password was accepted")
        } catch {
            #expect(error.description.contains("no user, password"))
            #expect(error.description.contains(":4:"))
        }
    }
}
