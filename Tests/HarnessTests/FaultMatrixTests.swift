import AcceptanceCore
import Foundation
import Harness
import Simulation
import Synchronization
import TestSupport
import Testing

/// The faults the matrix injects, each at the moment a step starts.
enum MatrixFault: String, CaseIterable, Sendable {
    case timeout = "timeout"
    case refused = "exception/503"
    case dropped = "dropped"
    case interlock = "interlock"
    case sigint = "SIGINT"
    case sigterm = "SIGTERM"
    case sigintTwice = "2nd SIGINT"
}

/// Injects one fault into the simulated rack (or the run) when the target step starts, and a second SIGINT when
/// cleanup begins; passes every event on.
final class FaultInjector: RunObserver {
    let target: String
    let fault: MatrixFault
    let rack: SimulatedRack
    let stop: StopController
    /// The device a device fault hits: what the step talks to, else the procedure's main device.
    let device: String
    let clock: any RunClock
    let fired = Mutex(false)
    /// What the second SIGINT was told (it must be "cleanup is running").
    let second = Mutex<StopController.Disposition?>(nil)

    init(
        target: String, fault: MatrixFault, rack: SimulatedRack, stop: StopController, device: String,
        clock: any RunClock
    ) {
        self.target = target
        self.fault = fault
        self.rack = rack
        self.stop = stop
        self.device = device
        self.clock = clock
    }

    func handle(_ event: RunEvent) {
        switch event {
        case let .stepStarted(step) where step.id == target:
            let first = fired.withLock { fired -> Bool in
                defer { fired = true }
                return !fired
            }
            if first { inject() }
        case .groupStarted(.cleanup, _) where fault == .sigintTwice && fired.withLock({ $0 }):
            let disposition = stop.requestStop(.interrupt)
            second.withLock { $0 = disposition }
        default:
            break
        }
    }

    func inject() {
        let now = clock.now().seconds
        let cdu = rack.cdus[device]
        let bmc = rack.redfish.services[device]
        switch fault {
        case .timeout:
            // The CDU stops answering for 2 s (Modbus response timeouts, then retries); a BMC holds one request
            // longer than the client waits.
            cdu?.inject(.silent, at: now)
            cdu?.inject(.recover, at: now + 2)
            bmc?.injectWireFaults([.hold(.milliseconds(1500))])
        case .refused:
            cdu?.inject(.exceptions(code: 4), at: now)
            cdu?.inject(.recover, at: now + 2)
            bmc?.injectUnavailable(count: 2)
        case .dropped:
            cdu?.inject(.dropConnection, at: now)
            bmc?.injectWireFaults([.drop])
        case .interlock:
            if let cdu {
                cdu.inject(.leakSensor, at: now)
            } else {
                rack.redfish.model.injectLeak(device: "compute07", detector: "ColdPlate", state: "Critical", at: now)
            }
        case .sigint, .sigintTwice:
            _ = stop.requestStop(.interrupt)
        case .sigterm:
            _ = stop.requestStop(.terminate)
        }
    }
}

/// Every step of leak-test and power-on, each with every fault, on the simulated rack over loopback (Modbus TCP
/// through libmodbus, the supervisor on its own connection; the BMCs over HTTPS): the rack must end in its safe
/// state, the run's safe-state check must say so, and the simulated rack itself must agree. Prints the table.
/// Each cell serves a whole rack on loopback, so it takes one of the test process's rack slots (`loopbackRacks`).
@Suite("Fault matrix: every step × every fault ends safe")
struct FaultMatrixTests {
    struct Cell: Sendable {
        var step: String
        var fault: MatrixFault
        var verdict: Verdict
        var safe: Bool
        var note: String
    }

    static func runCell(
        procedure: String, parameters: [String: String], step: Step, fault: MatrixFault, device: String
    ) async throws -> (RunRecord, PreparedRun, FaultInjector) {
        var request = RunRequest(
            procedure: procedure,
            workspace: Workspace(procedures: "\(repositoryRoot)/Procedures", fixtures: "\(repositoryRoot)/Fixtures"))
        request.parameters = parameters
        request.reportsDirectory = temporaryDirectory()
        request.simulatorTransport = .tcp
        request.loopbackPatience = .seconds(1)
        let prepared = try await PreparedRun.prepare(request)
        let rack = try #require(prepared.rack)
        let stop = StopController()
        let injector = FaultInjector(
            target: step.id, fault: fault, rack: rack, stop: stop, device: device, clock: prepared.clock)
        let record = await loopbackRacks.withSlot {
            await prepared.run(console: AutomaticOperator(), observer: injector, stop: stop)
        }
        return (record, prepared, injector)
    }

    /// The device a step talks to (a group step: its first member), else `fallback`.
    static func device(of step: Step, in configuration: RackConfiguration, fallback: String) -> String {
        if let group = step.forEach?.group, let first = configuration.rack.group(named: group)?.members.first {
            return first
        }
        let references: [String]
        switch step.kind {
        case let .set(point, _): references = [point]
        case let .sample(points, _, _, _, _): references = points
        case let .measure(expression, _, _): references = expression.references
        case let .check(condition): references = condition.references
        case let .waitUntil(condition, _, _): references = condition.references
        default: references = []
        }
        return references.lazy.compactMap { reference in
            let device = String(reference.prefix { $0 != "." })
            return configuration.rack.devices.contains { $0.name == device } ? device : nil
        }.first ?? fallback
    }

    /// What the simulated rack itself shows: every device the run moved, read straight from the model.
    static func rackIsSafe(_ record: RunRecord, _ rack: SimulatedRack) -> (Bool, String) {
        var problems: [String] = []
        for device in record.safeState?.devices.map(\.device) ?? [] {
            if let cdu = rack.cdus[device] {
                let snapshot = cdu.snapshot()
                if snapshot.pumpEnabled || snapshot.valvePosition < 0.99 || snapshot.reportedMode != "automatic" {
                    problems.append(
                        "\(device): pump \(snapshot.pumpEnabled), valve \(snapshot.valvePosition), "
                            + snapshot.reportedMode)
                }
            } else if let state = rack.redfish.model.powerState(of: device), state != .off {
                problems.append("\(device) \(state)")
            }
        }
        return (problems.isEmpty, problems.joined(separator: "; "))
    }

    func matrix(_ procedure: String, parameters: [String: String], fallback: String) async throws {
        var request = RunRequest(
            procedure: procedure,
            workspace: Workspace(procedures: "\(repositoryRoot)/Procedures", fixtures: "\(repositoryRoot)/Fixtures"))
        request.parameters = parameters
        let inputs = try RunInputs.load(request)
        let steps = inputs.procedure.setup + inputs.procedure.main
        var cells: [Cell] = []
        let started = ContinuousClock.now
        for step in steps {
            let device = Self.device(of: step, in: inputs.configuration, fallback: fallback)
            for fault in MatrixFault.allCases {
                let (record, prepared, injector) = try await Self.runCell(
                    procedure: procedure, parameters: parameters, step: step, fault: fault, device: device)
                let rack = try #require(prepared.rack)
                let (rackSafe, problems) = Self.rackIsSafe(record, rack)
                let checked = record.safeState?.verified == true
                var note = record.message ?? ""
                if fault == .sigintTwice, injector.fired.withLock({ $0 }) {
                    let disposition = injector.second.withLock { $0 }
                    #expect(
                        disposition == .cleanupRunning,
                        "\(procedure) \(step.id) \(step.name): the second SIGINT got \(String(describing: disposition))"
                    )
                    note += " · 2nd SIGINT: \(String(describing: disposition))"
                }
                let summary = record.safeState?.summary ?? "no safe-state check"
                #expect(
                    checked && rackSafe,
                    "\(procedure) \(step.id) \(step.name) × \(fault.rawValue): \(record.verdict) \(note) \(summary) \(problems)"
                )
                #expect(
                    injector.fired.withLock { $0 }, "\(procedure) \(step.id): the fault was never injected")
                cells.append(
                    Cell(
                        step: "\(step.id) \(step.name)", fault: fault, verdict: record.verdict,
                        safe: checked && rackSafe, note: note))
            }
        }
        print(Self.table(procedure, steps: steps, cells: cells, took: ContinuousClock.now - started))
    }

    /// Steps × faults: each cell the run's verdict, and whether the safe state was verified (and the rack agrees).
    static func table(_ procedure: String, steps: [Step], cells: [Cell], took: Duration) -> String {
        let faults = MatrixFault.allCases
        let width = max(40, steps.map { "\($0.id) \($0.name)".count }.max() ?? 0)
        var lines = [
            "Fault matrix: \(procedure), \(steps.count) steps × \(faults.count) faults = \(cells.count) runs over "
                + "loopback in \(Quantity.format((took.seconds * 10).rounded() / 10)) s; each cell: verdict, "
                + "safe state (✓ verified by the run's check and by the simulated rack)"
        ]
        lines.append(
            "STEP".padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                + faults.map { $0.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0) }.joined())
        for step in steps {
            let name = "\(step.id) \(step.name)"
            var line = String(name.prefix(width)).padding(toLength: width, withPad: " ", startingAt: 0) + "  "
            for fault in faults {
                let cell = cells.first { $0.step == name && $0.fault == fault }
                let text = cell.map { "\($0.verdict.rawValue) \($0.safe ? "✓" : "✗ NOT SAFE")" } ?? "-"
                line += text.padding(toLength: 13, withPad: " ", startingAt: 0)
            }
            lines.append(line)
        }
        let unsafe = cells.filter { !$0.safe }.count
        lines.append(
            unsafe == 0
                ? "every cell: safe state verified" : "\(unsafe) cell(s) NOT shown safe")
        return lines.joined(separator: "\n")
    }

    @Test func leakTest() async throws {
        try await matrix("leak-test", parameters: ["hold": "30s"], fallback: "cdu")
    }

    @Test func powerOn() async throws {
        try await matrix("power-on", parameters: [:], fallback: "compute01")
    }
}
