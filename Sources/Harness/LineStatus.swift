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
    public var status: LineStatus { state.withLock { $0.status } }

    /// An observer that keeps bay `number`'s row up to date, then passes every event on to `next`.
    public func observer(bay number: Int, next: any RunObserver) -> any RunObserver {
        BayStatusObserver(board: self, bay: number, next: next)
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
            return state.status
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
            board.update(bay: bay, force: true) {
                $0.state = "running"
                $0.rackSerial = record.rackSerial
                $0.simulated = record.isSimulated
            }
        case let .stepStarted(step):
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
