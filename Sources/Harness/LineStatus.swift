import AcceptanceCore
import Foundation
import Synchronization

/// Where a line run stands, bay by bay: written by `run --line` as it goes (`<state>/lines/<line>.json`), read by
/// `acceptance line status` and the page it serves.
public struct LineStatus: Sendable, Codable {
    public static let schema = "acceptance.line-status/1"

    public struct Bay: Sendable, Codable {
        public var bay: Int
        public var station: String
        public var rackSerial: String?
        /// `running` or `finished`.
        public var state: String
        /// The step running now (`main.14 Hold`), or the last one.
        public var step: String?
        public var stepNumber: Int
        public var stepCount: Int
        /// Of the step running now: clock seconds elapsed and in all (a wait, a hold).
        public var elapsedSeconds: Double?
        public var totalSeconds: Double?
        /// Of the whole run, on its clock: seconds so far, and the estimate of all it takes (so far, plus what the
        /// rest of the procedure's waits and holds plan; the run's own time once it has ended).
        public var runSeconds: Double?
        public var estimatedSeconds: Double?
        /// The latest reading or result (`cdu.loop_pressure = 301.2 kPa`).
        public var latest: String?
        public var verdict: String?
        public var message: String?
        /// A simulated rack (never a real one, whatever it shows).
        public var simulated: Bool?

        enum CodingKeys: String, CodingKey {
            case bay, station, state, step, latest, verdict, message, simulated
            case rackSerial = "rack_serial"
            case stepNumber = "step_number"
            case stepCount = "step_count"
            case elapsedSeconds = "elapsed_s"
            case totalSeconds = "total_s"
            case runSeconds = "run_s"
            case estimatedSeconds = "estimated_s"
        }
    }

    public var schema = LineStatus.schema
    public var line: String
    public var title: String
    public var procedure: String
    public var started: String
    public var updated: String
    public var bays: [Bay]

    /// The status file of line `id` in the station state folder.
    public static func file(line id: String, stateDirectory: String) -> String {
        "\(stateDirectory)/lines/\(StationState.fileName(id)).json"
    }

    public static func read(path: String) -> LineStatus? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(LineStatus.self, from: data)
    }
}

/// Keeps a line's status as its bays' events arrive and writes it to its file: at most four times a second while
/// steps run, and at once when a step or a run ends.
public final class LineStatusBoard: Sendable {
    public let path: String
    private struct State {
        var status: LineStatus
        var lastWrite: ContinuousClock.Instant?
        var timing: [Int: BayTiming] = [:]
    }

    /// A bay's run on its own clock, for its elapsed time and estimate.
    struct BayTiming {
        let clock: any RunClock
        /// Step ids in running order, each with its planned seconds.
        let plan: [(id: String, seconds: Double)]
        var started: Double?
        var step: (index: Int, started: Double)?
        var ended: Double?

        /// Seconds so far and the estimate of the whole run, now.
        func figures() -> (run: Double, estimated: Double)? {
            guard let started else { return nil }
            let now = ended ?? clock.now().seconds
            let run = max(0, now - started)
            if ended != nil { return (run, run) }
            var remaining = 0.0
            if let step {
                remaining += max(0, plan[step.index].seconds - (now - step.started))
                remaining += plan[(step.index + 1)...].reduce(0) { $0 + $1.seconds }
            } else {
                remaining += plan.reduce(0) { $0 + $1.seconds }
            }
            return (run, run + remaining)
        }
    }

    private let state: Mutex<State>

    public init(path: String, line: LineConfiguration, procedure: String, bays: [(LineConfiguration.Bay, Int)]) {
        self.path = path
        let now = Timestamp.string(Date())
        state = Mutex(
            State(
                status: LineStatus(
                    line: line.id, title: line.title, procedure: procedure, started: now, updated: now,
                    bays: bays.map { bay, steps in
                        LineStatus.Bay(
                            bay: bay.number, station: bay.name, state: "starting", stepNumber: 0, stepCount: steps)
                    })))
        try? FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        write(force: true)
    }

    /// Every bay's row as it stands now.
    public var status: LineStatus { state.withLock { Self.timed($0) } }

    private static func timed(_ state: State) -> LineStatus {
        var status = state.status
        for index in status.bays.indices {
            guard let figures = state.timing[status.bays[index].bay]?.figures() else { continue }
            status.bays[index].runSeconds = figures.run
            status.bays[index].estimatedSeconds = figures.estimated
        }
        return status
    }

    /// An observer that keeps bay `number`'s row up to date, then passes every event on to `next`. With the run's
    /// clock and its procedure's plan (`Procedure.plannedSeconds`), the row has the run's elapsed time and estimate.
    public func observer(
        bay number: Int, clock: (any RunClock)? = nil, plan: [(id: String, seconds: Double)] = [],
        next: any RunObserver
    ) -> any RunObserver {
        if let clock {
            state.withLock { $0.timing[number] = BayTiming(clock: clock, plan: plan) }
        }
        return BayStatusObserver(board: self, bay: number, next: next)
    }

    /// Bay `number`'s run started, a step started (by id), or the run ended, at this moment of its clock.
    func mark(bay number: Int, started: Bool = false, step id: String? = nil, ended: Bool = false) {
        state.withLock { state in
            guard var timing = state.timing[number] else { return }
            let now = timing.clock.now().seconds
            if started { timing.started = now }
            if let id, let index = timing.plan.firstIndex(where: { $0.id == id }) { timing.step = (index, now) }
            if ended { timing.ended = now }
            state.timing[number] = timing
        }
    }

    func update(bay number: Int, force: Bool, _ change: (inout LineStatus.Bay) -> Void) {
        state.withLock { state in
            guard let index = state.status.bays.firstIndex(where: { $0.bay == number }) else { return }
            change(&state.status.bays[index])
        }
        write(force: force)
    }

    private func write(force: Bool) {
        let now = ContinuousClock.now
        let snapshot = state.withLock { state -> LineStatus? in
            if !force, let last = state.lastWrite, now - last < .milliseconds(250) { return nil }
            state.lastWrite = now
            state.status.updated = Timestamp.string(Date())
            return Self.timed(state)
        }
        guard let snapshot else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // A status nobody can write is not worth stopping a run for: the runs' own records are what count.
        if let data = try? encoder.encode(snapshot) { try? writeFileAtomically(data, to: path) }
    }
}

/// Turns a bay's run events into its row of the line status.
struct BayStatusObserver: RunObserver {
    let board: LineStatusBoard
    let bay: Int
    let next: any RunObserver

    func handle(_ event: RunEvent) {
        switch event {
        case let .runStarted(record):
            board.mark(bay: bay, started: true)
            board.update(bay: bay, force: true) {
                $0.state = "running"
                $0.rackSerial = record.rackSerial
                $0.simulated = record.isSimulated
            }
        case let .stepStarted(step):
            board.mark(bay: bay, step: step.id)
            board.update(bay: bay, force: false) {
                $0.step = "\(step.id) \(step.name)"
                $0.stepNumber += 1
                $0.elapsedSeconds = nil
                $0.totalSeconds = nil
            }
        case let .progress(_, elapsed, total, detail):
            board.update(bay: bay, force: false) {
                $0.elapsedSeconds = elapsed
                $0.totalSeconds = total
                $0.latest = detail
            }
        case let .stepFinished(_, record):
            board.update(bay: bay, force: true) { row in
                if let measurement = record.measurements.first {
                    row.latest = "\(measurement.name) = \(measurement.displayValue)"
                }
                if record.verdict != .pass, record.verdict != .skipped {
                    row.message = "\(record.name): \(record.verdict.rawValue)"
                }
            }
        case let .runFinished(record):
            board.mark(bay: bay, ended: true)
            board.update(bay: bay, force: true) {
                $0.state = "finished"
                $0.verdict = record.verdict.rawValue
                $0.rackSerial = record.rackSerial ?? $0.rackSerial
                $0.message = record.message
                $0.elapsedSeconds = nil
                $0.totalSeconds = nil
            }
        default: break
        }
        next.handle(event)
    }
}
