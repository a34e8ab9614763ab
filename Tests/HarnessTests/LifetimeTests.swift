import AcceptanceCore
import Foundation
import Harness
import TestSupport
import Testing

/// The sockets this process holds, from `/proc/self/fd` and the kernel's TCP tables: for each, its local and remote
/// ports. Other tests run beside this one, so descriptors are attributed to a run by the ports it used.
enum OpenSockets {
    struct Socket: Hashable {
        var localPort: Int
        var remotePort: Int
        var state: String
    }

    static func inodes() -> Set<String> {
        let directory = "/proc/self/fd"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var inodes = Set<String>()
        for entry in entries {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\(entry)"),
                target.hasPrefix("socket:[")
            else { continue }
            inodes.insert(String(target.dropFirst(8).dropLast()))
        }
        return inodes
    }

    /// This process's TCP sockets (IPv4 and IPv6) with their ports.
    static func current() -> [Socket] {
        let mine = inodes()
        var sockets: [Socket] = []
        for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count > 9, mine.contains(String(fields[9])),
                    let local = fields[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
                    let remote = fields[2].split(separator: ":").last.flatMap({ Int($0, radix: 16) })
                else { continue }
                sockets.append(Socket(localPort: local, remotePort: remote, state: String(fields[3])))
            }
        }
        return sockets
    }

    /// Loopback ports a run's record says it reached its devices on.
    static func ports(of record: RunRecord) -> Set<Int> {
        var ports = Set<Int>()
        for endpoint in (record.endpoints ?? [:]).values {
            var rest = Substring(endpoint)
            while let range = rest.range(of: "127.0.0.1:") {
                let digits = rest[range.upperBound...].prefix { $0.isNumber }
                if let port = Int(digits) { ports.insert(port) }
                rest = rest[range.upperBound...]
            }
        }
        return ports
    }
}

/// Stops the run when a step of this name starts, as Ctrl-C would.
struct StopWhenStepStarts: RunObserver {
    let name: String
    let stop: StopController

    func handle(_ event: RunEvent) {
        if case let .stepStarted(step) = event, step.name == name { stop.requestStop(.interrupt) }
    }
}

@Suite("Run lifetimes: nothing a run opens outlives it")
struct LifetimeTests {
    enum Ending: String, CaseIterable {
        case pass, error, aborted
    }

    struct Variant: Sendable {
        var procedure: String
        var scenario: String
        var ending: Ending
        /// For `aborted`: the step during which the stop arrives.
        var stopAt: String?
    }

    static let variants = [
        Variant(procedure: "leak-test", scenario: "nominal", ending: .pass),
        Variant(procedure: "leak-test", scenario: "cdu-silent", ending: .error),
        Variant(procedure: "leak-test", scenario: "nominal", ending: .aborted, stopAt: "Hold"),
        Variant(procedure: "power-on", scenario: "nominal", ending: .pass),
        Variant(procedure: "bmc-inventory", scenario: "bmc-silent", ending: .error),
    ]

    /// Twenty runs over real sockets on loopback (Modbus TCP servers and clients, Redfish HTTPS listeners, an HTTP
    /// client, sessions), ending in PASS, ERROR and ABORTED: after each, no descriptor of this process is a socket
    /// on a port the run used, listening or connected. The servers and clients were shut down and awaited before
    /// `run` returned.
    @Test func noSocketOutlivesItsRunOnPassErrorOrAbort() async throws {
        var counted = 0
        var endings: [Ending: Int] = [:]
        for round in 0..<4 {
            for variant in Self.variants {
                var request = RunRequest(
                    procedure: variant.procedure,
                    workspace: Workspace(
                        procedures: "\(repositoryRoot)/Procedures", fixtures: "\(repositoryRoot)/Fixtures"))
                request.scenario = variant.scenario
                request.simulatorTransport = .tcp
                request.inputs["rack_serial"] = "NVL72-LIFETIME-\(round)"
                request.reportsDirectory = temporaryDirectory()
                let prepared = try await PreparedRun.prepare(request, recordToDisk: false)
                let stop = StopController()
                let observer: any RunObserver =
                    variant.stopAt.map { StopWhenStepStarts(name: $0, stop: stop) } ?? SilentObserver()
                let record = await loopbackRacks.withSlot {
                    await prepared.run(console: AutomaticOperator(), observer: observer, stop: stop)
                }
                let expected: Verdict =
                    switch variant.ending {
                    case .pass: .pass
                    case .error: .error
                    case .aborted: .aborted
                    }
                #expect(record.verdict == expected, "\(variant.procedure) \(variant.scenario): \(record.message ?? "")")
                let ports = OpenSockets.ports(of: record)
                #expect(!ports.isEmpty, "the run reached its devices over loopback: \(record.endpoints ?? [:])")
                let left = OpenSockets.current().filter {
                    ports.contains($0.localPort) || ports.contains($0.remotePort)
                }
                #expect(
                    left.isEmpty, "\(variant.procedure) \(variant.ending): sockets still open after the run: \(left)")
                counted += 1
                endings[variant.ending, default: 0] += 1
            }
        }
        #expect(counted == 20)
        #expect(endings == [.pass: 8, .error: 8, .aborted: 4])
    }
}
