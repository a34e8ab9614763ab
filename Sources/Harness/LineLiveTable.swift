import AcceptanceCore
import Foundation
import Synchronization

/// A line's bays at a glance on a terminal: one compact table (bay, rack serial, procedure, current step, the run's
/// elapsed time and estimate, the step's time, latest reading, verdict) kept at the bottom of the screen and redrawn
/// in place, with the bays' finished steps scrolling above it. Lines are cut to the terminal's width, so the redraw never miscounts a wrapped
/// line. A prompt pauses it (the question stays on screen as asked); `finish` takes it away before the final table.
public final class LineLiveTable: Sendable {
    let board: LineStatusBoard
    let output: ConsoleOutput
    let style: ConsoleStyle
    let columns: @Sendable () -> Int
    let clock: any Clock<Duration>

    private struct State {
        var drawn = 0
        var paused = 0
        /// Lines logged while a prompt is on screen, shown when it has been answered (not under the question).
        var held = ""
        var finished = false
    }

    private let state = Mutex(State())

    public init(
        board: LineStatusBoard, output: ConsoleOutput, style: ConsoleStyle,
        columns: @escaping @Sendable () -> Int = { ConsoleStyle.terminalColumns() ?? 100 },
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.board = board
        self.output = output
        self.style = style
        self.columns = columns
        self.clock = clock
    }

    /// Writes `text` (whole lines) above the table and draws the table again under it.
    public func log(_ text: String) {
        state.withLock { state in
            if state.paused > 0 {
                state.held += text
                return
            }
            var out = Self.erase(state.drawn)
            state.drawn = 0
            out += text
            if !state.finished {
                let lines = Self.table(board.status, width: columns(), style: style)
                out += lines.joined(separator: "\n") + "\n"
                state.drawn = lines.count
            }
            output.write(out)
        }
    }

    /// Draws the table again (elapsed times move on between events).
    public func refresh() { log("") }

    /// Takes the table away while a prompt is on screen.
    public func pause() {
        state.withLock { state in
            output.write(Self.erase(state.drawn))
            state.drawn = 0
            state.paused += 1
        }
    }

    public func resume() {
        let held = state.withLock { state -> String in
            state.paused = max(0, state.paused - 1)
            guard state.paused == 0 else { return "" }
            defer { state.held = "" }
            return state.held
        }
        log(held)
    }

    /// Takes the table away for good (the final table follows).
    public func finish() {
        state.withLock { state in
            output.write(Self.erase(state.drawn) + state.held)
            state.drawn = 0
            state.held = ""
            state.paused = 0
            state.finished = true
        }
    }

    /// Redraws every `interval` until the task is cancelled.
    public func keepFresh(every interval: Duration = .milliseconds(250)) async {
        while !Task.isCancelled {
            do {
                try await clock.sleep(for: interval, tolerance: nil)
            } catch {
                return
            }
            refresh()
        }
    }

    static func erase(_ lines: Int) -> String { lines > 0 ? "\u{1B}[\(lines)A\r\u{1B}[J" : "" }

    /// The table's lines, each cut to `width - 1` columns. Times are the run's clock (a simulation's, sped up).
    static func table(_ status: LineStatus, width: Int, style: ConsoleStyle) -> [String] {
        var rows: [[String]] = [
            ["BAY", "RACK", "PROCEDURE", "STEP", "ELAPSED / EST.", "STEP TIME", "LATEST", "VERDICT"]
        ]
        for bay in status.bays {
            var elapsed = "-"
            if let run = bay.runSeconds {
                elapsed = Self.minutesAndSeconds(run)
                if let estimated = bay.estimatedSeconds { elapsed += " / " + Self.minutesAndSeconds(estimated) }
            }
            let step = bay.step.map { "\(bay.stepNumber)/\(bay.stepCount) \($0)" } ?? "-"
            var stepTime = "-"
            if let done = bay.elapsedSeconds {
                stepTime = Quantity.format(done.rounded())
                if let total = bay.totalSeconds { stepTime += " / \(Quantity.format(total.rounded()))" }
                stepTime += " s"
            }
            rows.append([
                String(bay.bay), bay.rackSerial ?? "-", status.procedure, step, elapsed, stepTime,
                (bay.latest ?? "").trimmingCharacters(in: .whitespaces), bay.verdict ?? bay.state,
            ])
        }
        // Short columns keep their width; the step and the latest reading share what is left.
        var widths = (0..<8).map { column in rows.map { $0[column].count }.max() ?? 0 }
        let fixed = [0, 1, 2, 4, 5, 7].map { widths[$0] }.reduce(0, +) + 2 * 7
        let room = max(20, width - 1 - fixed)
        widths[3] = min(widths[3], max(12, room * 3 / 5))
        widths[6] = min(widths[6], max(8, room - widths[3]))
        return rows.enumerated().map { index, row in
            let cells = (0..<8).map { column -> String in
                let cell = row[column]
                let cut = cell.count > widths[column] ? String(cell.prefix(max(0, widths[column] - 1))) + "…" : cell
                return cut.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            var line = cells.joined(separator: "  ")
            if line.count > width - 1 { line = String(line.prefix(max(0, width - 1))) }
            if index == 0 { return style.bold(line) }
            // The verdict painted last, after the cut (escape codes are not columns).
            let verdictText = row[7]
            if let verdict = Verdict(rawValue: verdictText), line.hasSuffix(cells[7]) {
                line = String(line.dropLast(widths[7])) + style.verdict(verdict)
            }
            return line
        }
    }

    /// `3:07`, or `1:02:07` from an hour.
    static func minutesAndSeconds(_ value: Double) -> String {
        let seconds = value.isFinite ? max(0, Int(min(value, 1e9))) : 0
        let (hours, minutes) = (seconds / 3600, seconds / 60 % 60)
        let tail =
            (minutes < 10 && hours > 0 ? "0" : "") + "\(minutes):" + (seconds % 60 < 10 ? "0" : "") + "\(seconds % 60)"
        return hours > 0 ? "\(hours):" + tail : tail
    }
}

/// A bay's terminal with the live table out of the way while it asks.
public struct PausingConsole: OperatorConsole {
    let table: LineLiveTable
    let terminal: any OperatorConsole

    public init(table: LineLiveTable, terminal: any OperatorConsole) {
        self.table = table
        self.terminal = terminal
    }

    public var isInteractive: Bool { terminal.isInteractive }

    func paused<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        table.pause()
        defer { table.resume() }
        return try await body()
    }

    public func confirm(_ text: String, step: Step) async throws -> Bool {
        try await paused { try await terminal.confirm(text, step: step) }
    }

    public func ask(
        _ text: String, input: String, pattern: String?, step: Step, problem: String?
    ) async throws -> String {
        try await paused {
            try await terminal.ask(text, input: input, pattern: pattern, step: step, problem: problem)
        }
    }

    public func confirmHazard(
        _ hazard: String, step: Step, number: Int, required: Int, problem: String?
    ) async throws -> String {
        try await paused {
            try await terminal.confirmHazard(hazard, step: step, number: number, required: required, problem: problem)
        }
    }
}
