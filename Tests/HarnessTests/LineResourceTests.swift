import AcceptanceCore
import Foundation
import Harness
import Synchronization
import Testing

/// Records, on the wall clock, when each bay held the step that uses the shared gauge.
final class GaugeWindows: Sendable {
    let windows = Mutex<[Int: (start: ContinuousClock.Instant, end: ContinuousClock.Instant?)]>([:])
    let waited = Mutex<[Int: String]>([:])

    func observer(bay: Int) -> any RunObserver { Watcher(bay: bay, windows: self) }

    struct Watcher: RunObserver {
        let bay: Int
        let windows: GaugeWindows
        func handle(_ event: RunEvent) {
            switch event {
            case let .stepStarted(step) where step.name == "Reference gauge over time":
                windows.windows.withLock { $0[bay] = (ContinuousClock.now, nil) }
            case let .stepFinished(step, record) where step.name == "Reference gauge over time":
                windows.windows.withLock { $0[bay]?.end = ContinuousClock.now }
                if let waited = record.waited { windows.waited.withLock { $0[bay] = waited } }
            default: break
            }
        }
    }
}

/// What the bays waiting for the gauge said, and how many held it at once.
final class GateCounters: Sendable {
    let said = Mutex<[String]>([])
    let active = Mutex((now: 0, most: 0))
}

@Suite("A line's shared equipment: steps that use it take turns")
struct LineResourceTests {
    @Test("Eight bays sharing one reference gauge: no two bays use it at once, and the record says who waited")
    func oneGaugeEightBays() async throws {
        let folder = temporaryDirectory()
        try """
        id: gauge-sweep
        title: Reference gauge over time
        version: 1.0.0
        rack: gb200-nvl72
        main:
          - sample: gauge.pressure
            name: Reference gauge over time
            every: 1 s
            for: 2 s
        """.write(toFile: "\(folder)/gauge-sweep.yaml", atomically: true, encoding: .utf8)
        try """
        line: shared-gauge
        title: Eight bays, one reference gauge moved between them
        resources:
          reference gauge: {devices: [gauge]}
        bays:
        \((1...8).map { "  \($0): {simulated: true}" }.joined(separator: "\n"))
        """.write(toFile: "\(folder)/line.yaml", atomically: true, encoding: .utf8)
        var run = RunRequest(
            procedure: "\(folder)/gauge-sweep.yaml",
            workspace: Workspace(procedures: "\(repositoryRoot)/Procedures", fixtures: "\(repositoryRoot)/Fixtures"))
        // Unpaced, as the suite's other in-memory runs with the rack's interlocks: a paced simulated clock on a
        // loaded CI machine turns a wall-clock hiccup into a lost interlock sensor. (That the gate makes bays wait is
        // shown deterministically by `theGateMakesEveryOtherBayWait`.)
        run.reportsDirectory = "\(folder)/reports"
        let line = try await LineRun.prepare(LineRequest(line: "\(folder)/line.yaml", run: run))
        let windows = GaugeWindows()
        let outcomes = await line.run(
            console: { _ in AutomaticOperator() }, observer: { bay, _ in windows.observer(bay: bay.number) },
            stop: StopController())
        #expect(outcomes.count == 8)
        #expect(outcomes.allSatisfy { $0.record.verdict == .pass }, "\(outcomes.map { $0.record.message ?? "" })")
        let spans = windows.windows.withLock { $0 }.values.compactMap { window in
            window.end.map { (window.start, $0) }
        }.sorted { $0.0 < $1.0 }
        #expect(spans.count == 8)
        for (earlier, later) in zip(spans, spans.dropFirst()) {
            #expect(earlier.1 <= later.0, "two bays used the one gauge at once")
        }
        let waited = windows.waited.withLock { $0 }
        #expect(waited.values.allSatisfy { $0.hasPrefix("reference gauge, ") })
    }

    @Test("The gate: while one bay holds the gauge, every other bay's step waits, says so, and then takes its turn")
    func theGateMakesEveryOtherBayWait() async throws {
        let folder = temporaryDirectory()
        try """
        id: gauge-read
        title: Read the gauge
        version: 1.0.0
        rack: gb200-nvl72
        main:
          - measure: gauge.pressure
          - measure: cdu.loop_pressure
        """.write(toFile: "\(folder)/gauge-read.yaml", atomically: true, encoding: .utf8)
        let (procedure, _) = try ProcedureLoader(
            fixtures: "\(repositoryRoot)/Fixtures", protocols: Transports.protocols
        )
        .load(path: "\(folder)/gauge-read.yaml")
        let gauge = try #require(procedure.main.first)
        let other = try #require(procedure.main.last)
        let gate = LineResources([.init(name: "reference gauge", devices: ["gauge"])])
        // A step that does not use the gauge never waits.
        let (free, none) = try await gate.enter(other, of: procedure) { _ in }
        #expect(none == nil)
        free()
        // Bay 1 holds the gauge until the seven others have said they wait for it.
        let (releaseFirst, _) = try await gate.enter(gauge, of: procedure) { _ in }
        let counters = GateCounters()
        let waits = Task {
            await withTaskGroup(of: String?.self) { group -> [String] in
                for _ in 2...8 {
                    group.addTask {
                        guard
                            let (release, waited) = try? await gate.enter(
                                gauge, of: procedure,
                                waiting: { what in counters.said.withLock { $0.append(what) } })
                        else { return nil }
                        counters.active.withLock {
                            $0.now += 1
                            $0.most = max($0.most, $0.now)
                        }
                        try? await ContinuousClock().sleep(for: .milliseconds(5))
                        counters.active.withLock { $0.now -= 1 }
                        release()
                        return waited
                    }
                }
                var all: [String] = []
                for await waited in group { if let waited { all.append(waited) } }
                return all
            }
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while counters.said.withLock({ $0.count }) < 7, ContinuousClock.now < deadline {
            try await ContinuousClock().sleep(for: .milliseconds(5))
        }
        #expect(counters.said.withLock { $0 }.count == 7)
        #expect(counters.said.withLock { $0 }.allSatisfy { $0 == "reference gauge (another bay is using it)" })
        releaseFirst()
        let waited = await waits.value
        #expect(waited.count == 7 && waited.allSatisfy { $0.hasPrefix("reference gauge, ") }, "\(waited)")
        #expect(counters.active.withLock { $0.most } == 1, "one bay at a time")
    }
}
