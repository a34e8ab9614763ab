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
        // Paced, so that each bay's sweep takes wall time (2 simulated seconds in 0.5 s) and bays would overlap; no
        // faster, so that a busy machine's hiccup (seconds, while the whole suite runs) stays inside the interlocks'
        // 10 s staleness bound, as the other paced simulations in the suite are.
        run.timeScale = 4
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
        #expect(waited.count == 7, "all but the first waited: \(waited)")
        #expect(waited.values.allSatisfy { $0.hasPrefix("reference gauge, ") })
    }
}
