import AcceptanceCore
import Foundation
import RedfishCore
import RedfishServer
import RedfishTransport
import Simulation
import TestSupport
import Testing

/// A long-running peer process, killed when the test is done with it.
final class PeerProcess: @unchecked Sendable {
    // Created and stopped from the test's task only; posix_spawn, not Foundation's Process (see `ChildProcess`).
    let process: ChildProcess
    let output = NSTemporaryDirectory() + "peer-\(UUID().uuidString).txt"

    init(_ path: String, _ arguments: [String]) throws {
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        process = try ChildProcess(
            path, arguments, environment: ProcessInfo.processInfo.environment, stdout: output, stderr: output)
    }

    var log: String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { usleep(10_000) }
    }
}

/// A simulated rack's Redfish side, with a known password.
func simulatedRack(
    _ settings: RedfishSettings = RedfishSettings(), clock: any RunClock = SimulationClock(),
    password: String = "test-password-\(UUID().uuidString.prefix(8))"
) throws -> SimulatedRedfishRack {
    let manifest = try FirmwareManifest.load(path: "\(repositoryRoot)/Fixtures/firmware/nvl72-2026.10.yaml")
    return SimulatedRedfishRack(
        scenario: settings, clock: clock, manifest: manifest, username: "admin", password: password)
}

func endpoint(
    _ name: String, _ rack: SimulatedRedfishRack, url: String = "memory://x", trust: RedfishTrust = .system,
    authentication: RedfishAuthentication = .session
) -> RedfishEndpoint {
    RedfishEndpoint(
        name: name, baseURL: url, authentication: authentication,
        credentials: RedfishCredentials(username: rack.credentials.username, password: rack.credentials.password),
        // A login on a machine other tests keep busy can take seconds: it has a patience of its own.
        trust: trust, timeout: .seconds(5), connectTimeout: .seconds(30),
        retry: RetryPolicy(retries: 2, backoff: .milliseconds(100)))
}

/// A client to a simulated BMC in memory.
func memoryClient(
    _ name: String, _ rack: SimulatedRedfishRack, clock: any RunClock = SimulationClock(),
    authentication: RedfishAuthentication = .session,
    events: any TransportEventSink = DiscardingTransportEvents()
) throws -> RedfishClient {
    let service = try #require(rack.services[name])
    return RedfishClient(
        endpoint: endpoint(name, rack, authentication: authentication),
        transport: InMemoryRedfishTransport(service: service, label: name), clock: clock, events: events)
}

/// Validator summary counts: PASS, WARN, FAIL, NOT TESTED.
func validatorCounts(_ output: String) -> (pass: Int, warn: Int, fail: Int)? {
    let plain = output.replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression)
    for line in plain.split(separator: "\n") {
        let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if cells.count == 4, let pass = Int(cells[0]), let warn = Int(cells[1]), let fail = Int(cells[2]),
            Int(cells[3]) != nil
        {
            return (pass, warn, fail)
        }
    }
    return nil
}
