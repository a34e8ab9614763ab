import AcceptanceCore
import Foundation
import Harness
import RedfishCore
import RedfishServer
import RedfishTransport
import Simulation
import TestSupport
import Testing

let workspace = Workspace(procedures: "\(repositoryRoot)/Procedures", fixtures: "\(repositoryRoot)/Fixtures")

func run(
    _ procedure: String, scenario: String = "nominal", transport: SimulatorTransport = .memory,
    station: String? = nil, timeScale: Double? = nil, parameters: [String: String] = [:],
    reports: String = temporaryDirectory()
) async throws -> RunRecord {
    var request = RunRequest(procedure: procedure, workspace: workspace)
    request.scenario = scenario
    request.simulatorTransport = transport
    request.station = station
    request.timeScale = timeScale
    request.parameters = parameters
    request.reportsDirectory = reports
    request.inputs = ["rack_serial": "TEST-RACK-0001"]
    let prepared = try await PreparedRun.prepare(request)
    guard transport == .tcp else {
        return await prepared.run(console: AutomaticOperator(), observer: SilentObserver(), stop: StopController())
    }
    return await loopbackRacks.withSlot {
        await prepared.run(console: AutomaticOperator(), observer: SilentObserver(), stop: StopController())
    }
}

func member(_ record: RunRecord, step: String, device: String) -> MemberRecord? {
    record.steps.first { $0.name == step }?.members?.first { $0.device == device }
}

@Suite("Redfish procedures on the simulated rack")
struct RedfishProcedureTests {
    @Test(arguments: ["bmc-inventory", "power-on", "psu-redundancy", "leak-detectors"])
    func passesOnAHealthyRack(procedure: String) async throws {
        let record = try await run(procedure)
        #expect(record.verdict == .pass, "\(record.message ?? "")")
        #expect(record.cleanupCompleted)
    }

    @Test func inventoryRecordsEveryTrayAndProcessorSerial() async throws {
        let record = try await run("bmc-inventory")
        let answered = try #require(record.steps.first { $0.name == "Compute tray BMCs answer" })
        #expect(answered.members?.count == 18)
        #expect(record.steps.first { $0.name == "Switch tray BMCs answer" }?.members?.count == 9)
        let serials = try #require(member(record, step: "Processor serial numbers recorded", device: "compute11"))
        let recorded = serials.measurements.filter { $0.name.hasPrefix("compute11.") && $0.name.hasSuffix("_serial") }
        #expect(recorded.count == 6, "4 GPU and 2 CPU serials for compute11, under its own name")
        let gpus =
            record.steps.first { $0.name == "Processor serial numbers recorded" }?.members?
            .flatMap(\.measurements).filter { $0.name.contains(".gpu") } ?? []
        #expect(gpus.count == 72)
        #expect(Set(gpus.compactMap(\.text)).count == 72, "72 distinct GPU serials")
        let firmware = try #require(
            member(record, step: "Compute tray firmware matches the release", device: "compute01"))
        #expect(firmware.measurements.contains { $0.name == "compute01.bios_version" && $0.limits == "= 01.04.03" })
    }

    @Test func negativeScenariosEndWithTheRightVerdictForTheRightReason() async throws {
        // A silent BMC: ERROR before anything is actuated, naming it.
        let silent = try await run("power-on", scenario: "bmc-silent")
        #expect(silent.verdict == .error)
        #expect(silent.message?.contains("compute05") == true)
        #expect(silent.message?.contains("before anything was actuated") == true)
        #expect(silent.steps.allSatisfy { $0.verdict == .skipped })

        let gpu = try await run("bmc-inventory", scenario: "gpu-missing")
        #expect(gpu.verdict == .fail)
        let presence = try #require(gpu.steps.first { $0.name == "4 GPUs and 2 CPUs present in every compute tray" })
        #expect(presence.verdict == .fail)
        #expect(presence.members?.filter { $0.verdict == .fail }.map(\.device) == ["compute11"])
        #expect(
            member(gpu, step: presence.name, device: "compute11")?.measurements
                .contains { $0.name == "compute11.gpu3_state" && $0.text == "Absent" } == true)

        let firmware = try await run("bmc-inventory", scenario: "firmware-mismatch")
        #expect(firmware.verdict == .fail)
        let mismatch = try #require(firmware.steps.first { $0.name == "Compute tray firmware matches the release" })
        #expect(mismatch.message?.contains("compute07.bios_version is 01.03.11, release wants 01.04.03") == true)

        let stuck = try await run("power-on", scenario: "tray-stuck")
        #expect(stuck.verdict == .fail)
        let on = try #require(stuck.steps.first { $0.name == "Compute trays On" })
        #expect(on.members?.filter { $0.verdict == .fail }.map(\.device) == ["compute09"])
        #expect(
            stuck.cleanupCompleted == false || stuck.steps(in: .cleanup).allSatisfy { $0.verdict != .skipped },
            "cleanup ran")

        let supply = try await run("psu-redundancy", scenario: "supply-failed")
        #expect(supply.verdict == .fail)
        let healthy = try #require(supply.steps.first { $0.name == "Every supply fitted and healthy" })
        #expect(healthy.members?.filter { $0.verdict == .fail }.map(\.device) == ["shelf03"])
        #expect(
            supply.steps.first { $0.name == "Power on compute trays" }?.verdict == .skipped,
            "nothing is switched on with a failed supply")

        let alarm = try await run("psu-redundancy", scenario: "no-redundancy-alarm")
        #expect(alarm.verdict == .fail)
        let raised = try #require(alarm.steps.first { $0.name == "Every shelf raises its redundancy alarm" })
        #expect(raised.members?.filter { $0.verdict == .fail }.map(\.device) == ["shelf02"])
        #expect(alarm.cleanupCompleted, "cleanup reseated the supply and powered the rack off")

        let leak = try await run("leak-detectors", scenario: "tray-leak")
        #expect(leak.verdict == .fail)
        #expect(leak.steps.first?.verdict == .pass)
        let detectors = try #require(leak.steps.first { $0.name == "Compute tray leak detectors OK" })
        #expect(detectors.members?.filter { $0.verdict == .fail }.map(\.device) == ["compute14"])
    }

    @Test func busyBMCsPassWithTheirRetriesRecorded() async throws {
        let record = try await run("leak-detectors", scenario: "bmc-flaky")
        #expect(record.verdict == .pass, "\(record.message ?? "")")
        // switch02 answers its first two requests (the login, while connecting) with 503 and Retry-After: 1 s.
        let retries = (record.retries ?? []) + record.steps.flatMap { $0.retries ?? [] }
        let switch02 = retries.filter { $0.hasPrefix("switch02: ") }
        #expect(switch02.count == 2, "\(retries)")
        #expect(switch02.first?.contains("retry 1 of 2 in 1 s") == true && switch02.first?.contains("503") == true)
        #expect(switch02.last?.contains("retry 2 of 2") == true)
        #expect(
            !retries.contains { $0.hasPrefix("compute03: ") },
            "slow is not failed: compute03 answers within its timeout: \(retries)")
    }

    @Test func aRackWithSixShelvesRunsTheSameProcedures() async throws {
        let record = try await run("psu-redundancy", scenario: "six-shelves")
        #expect(record.verdict == .pass)
        #expect(record.steps.first { $0.name == "Every shelf raises its redundancy alarm" }?.members?.count == 6)
    }

    @Test func overPinnedHTTPSOnLoopbackTheResultsAreTheSame() async throws {
        let inventory = try await run("bmc-inventory", transport: .tcp)
        #expect(inventory.verdict == .pass, "\(inventory.message ?? "")")
        #expect(inventory.endpoints?["compute01"]?.contains("https://127.0.0.1:") == true)
        #expect(inventory.endpoints?["compute01"]?.contains("pinned") == true)
        let silent = try await run("leak-detectors", scenario: "bmc-silent", transport: .tcp)
        #expect(silent.verdict == .error)
        #expect(silent.message?.contains("compute05") == true)
        let leak = try await run("leak-detectors", scenario: "tray-leak", transport: .tcp)
        #expect(leak.verdict == .fail)
    }
}

@Suite("Redfish stations")
struct RedfishStationTests {
    /// Serves a simulated rack's BMCs over HTTPS and writes a station file for them.
    struct Line {
        let rack: SimulatedRedfishRack
        let server: RedfishHTTPServer
        let station: String
        let passwordVariable: String

        /// The BMCs' login comes from a credentials file (0600), or, with `unsetVariables`, from an environment variable
        /// that is never set (a test of the message naming it). Nothing here calls setenv: another test's process
        /// spawn copying the environment at that moment would read freed memory.
        init(
            trust: String, clock: any RunClock = WallClock(timeScale: 200), unsetVariables: Bool = false
        ) async throws {
            let password = "Pw-\(UUID().uuidString)"
            var settings = RedfishSettings()
            settings.powerOnSeconds = 20
            rack = try simulatedRack(settings, clock: clock, password: password)
            server = try await RedfishHTTPServer.start(services: rack.services, tls: true)
            let suffix = UUID().uuidString.prefix(8).replacingOccurrences(of: "-", with: "")
            passwordVariable = "ACCEPTANCE_TEST_PASSWORD_\(suffix)"
            let credentials = temporaryDirectory() + "/bmc.credentials"
            guard
                FileManager.default.createFile(
                    atPath: credentials, contents: Data("\(rack.credentials.username):\(password)\n".utf8),
                    attributes: [.posixPermissions: 0o600])
            else { throw CocoaError(.fileWriteUnknown) }
            let login =
                unsetVariables
                // The user from a variable every process has (HOME), the password from one that is never set.
                ? "username_env: HOME\n      password_env: \(passwordVariable)"
                : "credentials_file: \(credentials)"
            let trustLine = trust.replacingOccurrences(of: "PIN", with: server.certificate?.sha256 ?? "")
            var text = "station: test-line\nrack: gb200-nvl72\n"
            // A BMC-only bench: no CDU, so no interlock that reads it or moves it can be watched.
            text += "waive:\n  coldplate-leak: BMC-only bench, no CDU\n  cdu-leak: BMC-only bench, no CDU\n"
            text += "  loop-overpressure: BMC-only bench, no CDU\n"
            // Its "rack" is the simulator: nobody at the bench to accept power-on's busbar hazard, nobody at risk.
            text += "confirm_hazards_automatically: the rack is a simulator in this test\ngroups:\n"
            for (group, prefix) in [
                ("compute_trays", "compute"), ("switch_trays", "switch"), ("power_shelves", "shelf"),
            ] {
                let urls = server.listeners.filter { $0.device.hasPrefix(prefix) }.map(\.url)
                text += """
                      \(group):
                        redfish:
                          urls: [\(urls.joined(separator: ", "))]
                          auth: session
                          \(login)
                          \(trustLine)
                          timeout: 3 s
                          connect_timeout: 30 s
                          retries: 1

                    """
            }
            station = temporaryDirectory() + "/station.yaml"
            try text.write(toFile: station, atomically: true, encoding: .utf8)
        }

        func stop() { server.stop() }
    }

    @Test func aWrongPinEndsTheRunInErrorBeforeAnythingIsActuated() async throws {
        let line = try await Line(trust: "pin_sha256: \(String(repeating: "0f", count: 32))")
        let record = try await run("power-on", station: line.station, timeScale: 200)
        line.stop()
        #expect(record.verdict == .error)
        #expect(record.message?.contains("before anything was actuated") == true)
        #expect(record.message?.contains("is not the pinned") == true)
        #expect(record.steps.allSatisfy { $0.verdict == .skipped })
        for number in 1...18 {
            #expect(line.rack.model.powerState(of: String(format: "compute%02d", number)) == .off)
        }
    }

    @Test func thePinnedLinePowersTheRackOn() async throws {
        let line = try await Line(trust: "pin_sha256: PIN")
        let record = try await run("power-on", station: line.station, timeScale: 200)
        line.stop()
        #expect(record.verdict == .pass, "\(record.message ?? "")")
        // The bench's waivers are recorded as warnings too (interlock ... WAIVED); no transport warning is.
        #expect(
            record.warnings?.filter {
                !$0.hasPrefix("UNSIGNED") && !$0.hasPrefix("interlock ") && !$0.hasPrefix("hazardous steps")
            }.isEmpty ?? true,
            "no transport warnings")
    }

    @Test func insecureWorksWarnsAndIsRecorded() async throws {
        let line = try await Line(trust: "insecure: true")
        let record = try await run("leak-detectors", station: line.station, timeScale: 200)
        line.stop()
        #expect(record.verdict == .pass, "\(record.message ?? "")")
        let warnings = try #require(record.warnings)
        #expect(
            warnings.filter { $0.contains("certificate verification is OFF") }.count == 27,
            "one per BMC the procedure uses")
        #expect(warnings.contains { $0.hasPrefix("compute01: certificate verification is OFF") })
        #expect(record.endpoints?["switch09"]?.contains("INSECURE") == true)
    }

    @Test func noCredentialAppearsInAnyFileTheRunWrites() async throws {
        let line = try await Line(trust: "pin_sha256: PIN")
        let reports = temporaryDirectory()
        let record = try await run("bmc-inventory", station: line.station, timeScale: 200, reports: reports)
        line.stop()
        #expect(record.verdict == .pass, "\(record.message ?? "")")
        let password = line.rack.credentials.password
        let basic = Data("\(line.rack.credentials.username):\(password)".utf8).base64EncodedString()
        var scanned = 0
        let enumerator = FileManager.default.enumerator(atPath: reports)
        while let file = enumerator?.nextObject() as? String {
            let path = "\(reports)/\(file)"
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                let data = FileManager.default.contents(atPath: path)
            else { continue }
            let text = String(decoding: data, as: UTF8.self)
            scanned += 1
            #expect(!text.contains(password), "\(file) contains the BMC password")
            #expect(!text.contains(basic), "\(file) contains the Basic credentials")
            #expect(
                !text.contains(line.passwordVariable) || file.hasSuffix("record.json") == false
                    || !text.contains(password))
        }
        #expect(scanned >= 2, "record.json and journal.jsonl were scanned")
        let service = try #require(line.rack.services["compute01"])
        #expect(service.openSessions == 0, "every session was deleted at the end")
    }

    @Test func missingCredentialsAreNamed() async throws {
        let line = try await Line(trust: "pin_sha256: PIN", unsetVariables: true)
        var request = RunRequest(procedure: "leak-detectors", workspace: workspace)
        request.station = line.station
        do {
            _ = try await PreparedRun.prepare(request, recordToDisk: false)
            Issue.record("a station without its password ran")
        } catch {
            #expect(error.description.contains(line.passwordVariable))
            #expect(error.description.contains("is not set"))
        }
        line.stop()
    }
}
