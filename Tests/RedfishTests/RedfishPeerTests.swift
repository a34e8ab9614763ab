import AcceptanceCore
import Foundation
import Harness
import RedfishCore
import RedfishServer
import Simulation
import Synchronization
import TestSupport
import Testing

@testable import RedfishTransport

// Interop with Redfish tools we did not write. `.ci/setup` installs them (pinned): DMTF's Redfish Service
// Validator, DMTF's python `redfish` client and sushy-tools from PyPI, redfishtool from Debian.

/// Runs DMTF's Redfish Service Validator offline against one service; returns its counts and output.
func validate(
    _ url: String, user: String, password: String, auth: String
) async throws -> ((pass: Int, warn: Int, fail: Int)?, String) {
    let validator = try program("rf_service_validator")
    let (_, output) = try await runProgram(
        validator,
        [
            "--rhost", url, "-u", user, "-p", password, "--authtype", auth,
            "--schema_directory", shared("conformance/redfish/csdl"), "--skipschema",
            "--logdir", temporaryDirectory(), "--timeout", "10",
        ], seconds: 240)
    return (validatorCounts(output), output)
}

@Suite("Redfish interop: DMTF validator, redfishtool, python-redfish, sushy-tools")
struct RedfishPeerTests {
    func serve(_ devices: [String], tls: Bool = true) async throws -> (SimulatedRedfishRack, RedfishHTTPServer) {
        let rack = try simulatedRack(clock: WallClock())
        let server = try await RedfishHTTPServer.start(
            services: rack.services.filter { devices.contains($0.key) }, tls: tls)
        return (rack, server)
    }

    @Test func theValidatorFindsNoFailureOnAComputeTrayOrAPowerShelf() async throws {
        let (rack, server) = try await serve(["compute01", "shelf01"])
        defer { server.stop() }
        let password = rack.credentials.password
        let (tray, trayOutput) = try await validate(
            try #require(server.url(of: "compute01")), user: "admin",
            password: password, auth: "Session")
        let trayCounts = try #require(tray, "no summary from the validator:\n\(trayOutput.suffix(2000))")
        #expect(trayCounts.fail == 0, "\(trayOutput.suffix(3000))")
        #expect(trayCounts.pass > 200)
        let (shelf, shelfOutput) = try await validate(
            try #require(server.url(of: "shelf01")), user: "admin",
            password: password, auth: "Basic")
        let shelfCounts = try #require(shelf, "no summary from the validator:\n\(shelfOutput.suffix(2000))")
        #expect(shelfCounts.fail == 0, "\(shelfOutput.suffix(3000))")
        #expect(shelfCounts.pass > 200)
        #expect(try #require(rack.services["compute01"]).openSessions == 0, "the validator's session was deleted")
    }

    @Test func theValidatorDoesFindFailuresInAMockupThatHasThem() async throws {
        // A check on the check: DMTF's own public-rackmount1 mockup, served by our mockup server, has known failures
        // (dead links, malformed dates); a validator run that reports zero here is not validating.
        let server = try await SimulatorService.serveMockup(
            shared("conformance/redfish/mockups/public-rackmount1"),
            port: 0, tls: false, username: "u", password: "p")
        defer { server.stop() }
        let (counts, output) = try await validate(
            try #require(server.listeners.first?.url), user: "u", password: "p",
            auth: "Basic")
        let found = try #require(counts, "no summary from the validator:\n\(output.suffix(2000))")
        #expect(found.fail > 0)
    }

    @Test func redfishtoolReadsTheSimulatedBMCWithASession() async throws {
        let (rack, server) = try await serve(["compute02"])
        defer { server.stop() }
        let tool = try program("redfishtool")
        let url = try #require(server.url(of: "compute02"))
        let host = String(url.dropFirst("https://".count))
        let (status, output) = try await runProgram(
            tool,
            [
                "-r", host, "-u", "admin", "-p", rack.credentials.password, "-S", "Always", "-A", "Session",
                "Systems", "-1", "get", "-P", "PowerState",
            ])
        #expect(status == 0, "\(output)")
        #expect(output.contains("\"PowerState\": \"Off\""))
        let (listed, members) = try await runProgram(
            tool,
            [
                "-r", host, "-u", "admin", "-p", rack.credentials.password, "-S", "Always", "-A", "Session",
                "raw", "GET", "/redfish/v1/Systems/System_0/Processors",
            ])
        #expect(listed == 0, "\(members)")
        #expect(members.contains("GPU_3"))
        #expect(try #require(rack.services["compute02"]).openSessions == 0, "redfishtool deleted its session")
        let (refused, _) = try await runProgram(
            tool,
            [
                "-r", host, "-u", "admin", "-p", "wrong", "-S", "Always", "-A", "Session", "Systems",
            ])
        #expect(refused != 0)
    }

    @Test func dmtfPythonRedfishReadsTheSimulatedShelfWithASession() async throws {
        let (rack, server) = try await serve(["shelf04"])
        defer { server.stop() }
        let script = """
            import sys, redfish
            c = redfish.redfish_client(base_url=sys.argv[1], username="admin", password=sys.argv[2], timeout=10, max_retry=1)
            c.login(auth="session")
            assert c.get_session_key(), "no session"
            r = c.get("/redfish/v1/Chassis/PowerShelf/PowerSubsystem/PowerSupplies")
            print("supplies", r.status, r.dict["Members@odata.count"])
            p = c.get("/redfish/v1/Chassis/PowerShelf/PowerSubsystem/PowerSupplies/6")
            print("psu6", p.dict["LineInputStatus"], p.dict["PowerCapacityWatts"])
            c.logout()
            """
        let path = temporaryDirectory() + "/read.py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let (status, output) = try await runProgram(
            try program("python3"),
            [path, try #require(server.url(of: "shelf04")), rack.credentials.password])
        #expect(status == 0, "\(output)")
        #expect(output.contains("supplies 200 6"))
        #expect(output.contains("psu6 Normal 5500"))
        #expect(try #require(rack.services["shelf04"]).openSessions == 0)
    }

    @Test func ourClientPowerCyclesASushyToolsSystem() async throws {
        let directory = temporaryDirectory()
        let port = freePort()
        let python = try program("python3")
        let (hashed, hashOutput) = try await runProgram(
            python,
            [
                "-c",
                "import bcrypt;print('admin:'+bcrypt.hashpw(b'sushy-secret',bcrypt.gensalt(rounds=4)).decode())",
            ])
        #expect(hashed == 0, "\(hashOutput)")
        try hashOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            .write(toFile: "\(directory)/htpasswd", atomically: true, encoding: .utf8)
        try """
        SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'
        SUSHY_EMULATOR_LISTEN_PORT = \(port)
        SUSHY_EMULATOR_FAKE_DRIVER = True
        SUSHY_EMULATOR_AUTH_FILE = '\(directory)/htpasswd'
        SUSHY_EMULATOR_STATE_DIR = '\(directory)/state'
        """.write(toFile: "\(directory)/emulator.conf", atomically: true, encoding: .utf8)
        let sushy = try PeerProcess(
            python, ["-m", "sushy_tools.emulator.main", "--config", "\(directory)/emulator.conf"])
        defer { sushy.stop() }
        let endpoint = RedfishEndpoint(
            name: "sushy", baseURL: "http://127.0.0.1:\(port)", authentication: .basic,
            credentials: RedfishCredentials(username: "admin", password: "sushy-secret"),
            timeout: .seconds(5), retry: RetryPolicy(retries: 3, backoff: .milliseconds(300)))
        let http = RedfishHTTP.makeClient()
        let client = RedfishClient(
            endpoint: endpoint, transport: try AsyncHTTPTransport(endpoint: endpoint, client: http),
            clock: WallClock())
        do {
            // Started when the root answers.
            var started = false
            for _ in 0..<100 where !started {
                started = (try? await client.get("/redfish/v1/")) != nil
                if !started { try await WallClock().sleep(for: .milliseconds(150)) }
            }
            #expect(started, "sushy-emulator did not start: \(sushy.log.suffix(1500))")
            let systems = try await client.members(of: "/redfish/v1/Systems")
            let system = try #require(systems.first)
            let initial = try #require(try await client.get(system).json["PowerState"]?.string)
            // A power cycle: off (if on), then on, each time waiting for the emulator to change state (it takes a
            // random 1-11 s).
            for target in initial == "On" ? ["ForceOff", "On"] : ["On", "ForceOff"] {
                try await client.perform(
                    action: "ComputerSystem.Reset", on: system, parameters: ["ResetType": .string(target)])
                let wanted = target == "On" ? "On" : "Off"
                var reached = false
                let deadline = ContinuousClock.now + .seconds(20)
                while !reached, ContinuousClock.now < deadline {
                    reached = try await client.get(system).json["PowerState"]?.string == wanted
                    if !reached { try await WallClock().sleep(for: .milliseconds(250)) }
                }
                #expect(reached, "sushy's system did not reach \(wanted)")
            }
            let unauthenticated = RedfishEndpoint(
                name: "sushy", baseURL: "http://127.0.0.1:\(port)", authentication: .basic,
                credentials: RedfishCredentials(username: "admin", password: "wrong"))
            let refused = RedfishClient(
                endpoint: unauthenticated,
                transport: try AsyncHTTPTransport(endpoint: unauthenticated, client: http),
                clock: WallClock())
            await #expect(throws: RedfishError.self) { try await refused.get(system) }
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }
}
