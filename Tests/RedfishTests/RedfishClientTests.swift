import AcceptanceCore
import AsyncHTTPClient
import Foundation
import RedfishCore
import RedfishServer
import Synchronization
import TestSupport
import Testing

@testable import RedfishTransport
@testable import Simulation

@Suite("Redfish client against the simulated BMC, in memory")
struct RedfishClientMemoryTests {
    @Test func sessionsAreOpenedUsedAndDeleted() async throws {
        let rack = try simulatedRack()
        let service = try #require(rack.services["compute01"])
        let client = try memoryClient("compute01", rack)
        try await client.open()
        #expect(client.hasSession)
        #expect(service.openSessions == 1)
        let system = try await client.get("/redfish/v1/Systems/System_0")
        #expect(system.json["PowerState"]?.string == "Off")
        #expect(system.etag?.hasPrefix("W/\"") == true)
        await client.close()
        #expect(service.openSessions == 0, "the session is deleted at the end")
    }

    @Test func withoutCredentialsTheBMCSays401() async throws {
        let rack = try simulatedRack()
        let service = try #require(rack.services["compute01"])
        let anonymous = try #require(
            await service.respond(to: RedfishRequest(method: .get, path: "/redfish/v1/Systems")))
        #expect(anonymous.status == 401)
        let root = try #require(await service.respond(to: RedfishRequest(method: .get, path: "/redfish/v1/")))
        #expect(root.status == 200, "the service root is open, as the specification requires")
        let wrong = RedfishClient(
            endpoint: RedfishEndpoint(
                name: "compute01", baseURL: "memory://compute01",
                credentials: RedfishCredentials(username: "admin", password: "wrong")),
            transport: InMemoryRedfishTransport(service: service, label: "compute01"), clock: SimulationClock())
        do {
            try await wrong.open()
            Issue.record("a wrong password logged in")
        } catch {
            #expect(error.kind == .status(401))
            #expect(error.description.contains("compute01"))
            #expect(error.description.contains("POST memory://compute01/redfish/v1/SessionService/Sessions"))
            #expect(error.message?.contains("ResourceAtUriUnauthorized") == true, "the extended-info message is kept")
        }
        // Basic auth works too.
        let basic = try memoryClient("compute01", rack, authentication: .basic)
        #expect(try await basic.get("/redfish/v1/Chassis/Chassis_0").json["ChassisType"]?.string == "Sled")
    }

    @Test func collectionsArePagedAndFollowed() async throws {
        var settings = RedfishSettings()
        settings.pageSize = 4
        let rack = try simulatedRack(settings)
        let client = try memoryClient("compute01", rack)
        let first = try await client.get("/redfish/v1/Systems/System_0/Processors")
        #expect(first.json["Members"]?.array?.count == 4)
        #expect(first.json["Members@odata.nextLink"]?.string == "/redfish/v1/Systems/System_0/Processors?$skip=4")
        let members = try await client.members(of: "/redfish/v1/Systems/System_0/Processors")
        #expect(members.count == 6)
        #expect(Set(members).count == 6)
        #expect(members.contains("/redfish/v1/Systems/System_0/Processors/CPU_1"))
    }

    @Test func a503IsRetriedAfterItsRetryAfter() async throws {
        var settings = RedfishSettings()
        settings.faults = [.unavailable(device: "switch02", count: 2, retryAfter: 7)]
        let clock = SimulationClock()
        let rack = try simulatedRack(settings, clock: clock)
        let retries = Mutex<[String]>([])
        let client = try memoryClient(
            "switch02", rack, clock: clock,
            events: TransportEventHandler { event in retries.withLock { $0.append(event.message) } })
        let root = try await client.get("/redfish/v1/Systems/System_0")
        #expect(root.json["Id"]?.string == "System_0")
        #expect(clock.now() == .seconds(14), "two waits of the 7 s the BMC asked for, on the injected clock")
        let seen = retries.withLock { $0 }
        #expect(seen.count == 2)
        #expect(seen.first?.contains("in 7 s") == true)
        #expect(seen.first?.contains("503") == true)
    }

    @Test func patchesCarryIfMatchAndStaleETagsAreRefused() async throws {
        let rack = try simulatedRack()
        let client = try memoryClient("compute01", rack)
        do {
            try await client.patch("/redfish/v1/Systems/System_0", ["AssetTag": "X"], etag: "W/\"stale\"")
            Issue.record("a stale ETag was accepted")
        } catch {
            #expect(error.kind == .status(412))
            #expect(error.description.contains("PATCH"))
        }
        do {
            // A fresh ETag passes the precondition; the property itself is read-only on this BMC.
            try await client.patch("/redfish/v1/Systems/System_0", ["AssetTag": "X"])
            Issue.record("a read-only property was written")
        } catch {
            #expect(error.kind == .status(400))
            #expect(error.message?.contains("PropertyNotWritable") == true)
        }
    }

    @Test func actionsGoToTheAdvertisedTargetAndPowerTakesTime() async throws {
        let clock = SimulationClock()
        let rack = try simulatedRack(clock: clock)
        let client = try memoryClient("compute03", rack, clock: clock)
        try await client.perform(
            action: "ComputerSystem.Reset", on: "/redfish/v1/Systems/System_0",
            parameters: ["ResetType": "On"])
        #expect(rack.model.powerState(of: "compute03") == .poweringOn)
        clock.advance(to: .seconds(25))
        #expect(rack.model.powerState(of: "compute03") == .on)
        do {
            try await client.perform(
                action: "ComputerSystem.Reset", on: "/redfish/v1/Systems/System_0",
                parameters: ["ResetType": "Nmi"])
            Issue.record("a reset type the BMC does not allow was sent")
        } catch {
            #expect(error.description.contains("allows On, ForceOn"))
        }
    }

    @Test func rackLoadFollowsTraysAndAFailedSupplyRaisesTheAlarm() throws {
        let clock = SimulationClock()
        var settings = RedfishSettings()
        settings.faults = [.supplyFailure(shelf: 2, supply: 4, at: 60)]
        let rack = try simulatedRack(settings, clock: clock)
        let idle = rack.model.rackLoad()
        for number in 1...18 { _ = rack.model.reset(String(format: "compute%02d", number), type: "On") }
        clock.advance(to: .seconds(30))
        let loaded = rack.model.rackLoad()
        #expect(loaded > idle + 90_000, "18 trays at 5.4 kW")
        let before = try #require(rack.model.shelf(2))
        #expect(!before.alarm)
        clock.advance(to: .seconds(61))
        let after = try #require(rack.model.shelf(2))
        #expect(after.alarm)
        #expect(after.supplies[3].watts == 0)
        #expect(after.events.contains { $0.messageID == "PowerSupplyRedundancyLost" })
        let other = try #require(rack.model.shelf(1))
        #expect(other.supplies[0].watts > before.supplies[0].watts, "the others take the failed supply's share")
    }

    @Test func aMockupFolderIsServedAsItsTree() async throws {
        let tree = try MockupTree(folder: shared("conformance/redfish/mockups/public-rackmount1"))
        #expect(tree.resources.count > 100)
        let service = SimulatedRedfishService(
            tree: tree, clock: SimulationClock(),
            behaviour: RedfishServiceBehaviour(username: "u", password: "p"))
        let client = RedfishClient(
            endpoint: RedfishEndpoint(
                name: "mockup", baseURL: "memory://mockup", authentication: .basic,
                credentials: RedfishCredentials(username: "u", password: "p")),
            transport: InMemoryRedfishTransport(service: service, label: "mockup"), clock: SimulationClock())
        let systems = try await client.members(of: "/redfish/v1/Systems")
        #expect(!systems.isEmpty)
    }
}

@Suite("Redfish client over HTTPS to the simulated BMCs (Hummingbird, AsyncHTTPClient)")
struct RedfishClientHTTPSTests {
    func withServer<T: Sendable>(
        _ rack: SimulatedRedfishRack, devices: [String] = ["compute01"],
        _ body: (RedfishHTTPServer, HTTPClient) async throws -> T
    ) async throws -> T {
        let services = rack.services.filter { devices.contains($0.key) }
        let server = try await RedfishHTTPServer.start(services: services, tls: true)
        let http = RedfishHTTP.makeClient()
        do {
            let result = try await body(server, http)
            try await http.shutdown()
            await server.shutdown()
            return result
        } catch {
            try? await http.shutdown()
            await server.shutdown()
            throw error
        }
    }

    @Test func thePinnedCertificateIsTrustedAndNoOther() async throws {
        let rack = try simulatedRack()
        try await withServer(rack) { server, http in
            let url = try #require(server.url(of: "compute01"))
            let certificate = try #require(server.certificate)
            let pinned = RedfishClient(
                endpoint: endpoint("compute01", rack, url: url, trust: .pinned(sha256: certificate.sha256)),
                transport: try AsyncHTTPTransport(
                    endpoint: endpoint(
                        "compute01", rack, url: url,
                        trust: .pinned(sha256: certificate.sha256)),
                    client: http),
                clock: WallClock())
            #expect(try await pinned.get("/redfish/v1/Systems/System_0").json["PowerState"]?.string == "Off")
            await pinned.close()

            let service = try #require(rack.services["compute01"])
            let before = service.requestCount
            let wrongPin = String(repeating: "ab", count: 32)
            let wrong = endpoint("compute01", rack, url: url, trust: .pinned(sha256: wrongPin))
            let client = RedfishClient(
                endpoint: wrong, transport: try AsyncHTTPTransport(endpoint: wrong, client: http),
                clock: WallClock())
            do throws(RedfishError) {
                try await client.open()
                Issue.record("a certificate that is not the pinned one was trusted")
            } catch {
                guard case let .pinMismatch(expected, presented) = error.kind else {
                    Issue.record("expected a pin mismatch, got \(error)")
                    return
                }
                #expect(expected == wrongPin)
                #expect(presented == certificate.sha256)
            }
            #expect(service.requestCount == before, "no request reaches a BMC whose certificate fails its pin")
        }
    }

    @Test func systemTrustRefusesASelfSignedBMCAndInsecureAcceptsIt() async throws {
        let rack = try simulatedRack()
        try await withServer(rack) { server, http in
            let url = try #require(server.url(of: "compute01"))
            let strict = endpoint("compute01", rack, url: url, trust: .system)
            let client = RedfishClient(
                endpoint: strict, transport: try AsyncHTTPTransport(endpoint: strict, client: http),
                clock: WallClock())
            do throws(RedfishError) {
                _ = try await client.get("/redfish/v1/Systems")
                Issue.record("an untrusted certificate was accepted")
            } catch {
                guard case .tls = error.kind else {
                    Issue.record("expected a TLS failure, got \(error)")
                    return
                }
            }
            let loose = endpoint("compute01", rack, url: url, trust: .insecure)
            #expect(loose.summary.contains("INSECURE"))
            let insecure = RedfishClient(
                endpoint: loose, transport: try AsyncHTTPTransport(endpoint: loose, client: http),
                clock: WallClock())
            #expect(try await insecure.members(of: "/redfish/v1/Systems") == ["/redfish/v1/Systems/System_0"])
            await insecure.close()
        }
    }

    @Test func aCAFileIsTrusted() async throws {
        let rack = try simulatedRack()
        try await withServer(rack) { server, http in
            let url = try #require(server.url(of: "compute01"))
            let path = temporaryDirectory() + "/ca.pem"
            try #require(server.certificate).certificatePEM.write(toFile: path, atomically: true, encoding: .utf8)
            let trusted = endpoint("compute01", rack, url: url, trust: .caFile(path))
            let client = RedfishClient(
                endpoint: trusted, transport: try AsyncHTTPTransport(endpoint: trusted, client: http),
                clock: WallClock())
            #expect(try await client.get("/redfish/v1/Chassis/Chassis_0").json["Id"]?.string == "Chassis_0")
            await client.close()
        }
    }

    @Test func aSilentBMCIsAConnectionErrorNamingIt() async throws {
        // A refused connection is immediate; the long timeout only keeps a starved event loop on a busy machine
        // from turning it into a timeout (the total deadline would fire first).
        let closed = try ClosedPort()
        let port = closed.port
        let dead = RedfishEndpoint(
            name: "compute05", baseURL: "https://127.0.0.1:\(port)",
            credentials: RedfishCredentials(username: "a", password: "b"), trust: .insecure,
            // Long: a refusal comes at once, but CI's busy cores once took over 15 s to deliver it.
            timeout: .seconds(60), retry: RetryPolicy(retries: 1, backoff: .milliseconds(10)))
        let http = RedfishHTTP.makeClient()
        let retries = Mutex(0)
        let client = RedfishClient(
            endpoint: dead, transport: try AsyncHTTPTransport(endpoint: dead, client: http),
            clock: WallClock(), events: TransportEventHandler { _ in retries.withLock { $0 += 1 } })
        do {
            _ = try await client.get("/redfish/v1")
            Issue.record("a closed port answered")
        } catch {
            #expect(error.isNoResponse)
            // The client logs in first: the failed request is the session POST, named with the BMC and the URL.
            #expect(
                error.description.hasPrefix(
                    "compute05: POST https://127.0.0.1:\(port)/redfish/v1/SessionService/Sessions"))
            #expect(error.description.contains("refused"))
        }
        #expect(retries.withLock { $0 } == 1)
        try await http.shutdown()
        withExtendedLifetime(closed) {}
    }
}

@Suite("Simulated BMC trees")
struct SimulatedBMCTreeTests {
    /// The resources a tray renders on their own (what the supervisor and power-on poll) are exactly what the whole
    /// tree renders, off, powering on, on, and with a leak.
    @Test func resourcesRenderedOnTheirOwnMatchTheWholeTree() throws {
        let clock = SimulationClock()
        let rack = try simulatedRack(clock: clock)
        let trees = ["compute01", "compute07", "switch01"].map { TrayBMCTree(model: rack.model, name: $0) }
        func compare(_ moment: String) {
            for tree in trees {
                let whole = tree.resources()
                #expect(whole.count > 10, "\(tree.name): \(whole.count) resources")
                for (path, resource) in whole {
                    #expect(tree.resource(at: path) == resource, "\(tree.name) \(path) \(moment)")
                }
            }
        }
        compare("off")
        for tree in trees { _ = rack.model.reset(tree.name, type: "On") }
        clock.advance(to: .seconds(1))
        compare("powering on")
        clock.advance(to: .seconds(600))
        compare("on")
        rack.model.injectLeak(device: "compute07", detector: "ColdPlate", state: "Critical", at: 600)
        clock.advance(to: .seconds(601))
        compare("leaking")
        #expect(
            trees[1].resource(at: "/redfish/v1/Systems/System_0")?["PowerState"]?.string
                == rack.model.powerState(of: "compute07")?.rawValue)
    }
}
