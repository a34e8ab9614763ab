import AcceptanceCore
import Foundation
import Synchronization

/// Terminal styling, off when piped, with `NO_COLOR`, or on a dumb terminal.
public struct ConsoleStyle: Sendable {
    public var color: Bool
    /// Whether a live status line can be redrawn in place.
    public var live: Bool

    public init(color: Bool, live: Bool) {
        self.color = color
        self.live = live
    }

    public static func detect() -> ConsoleStyle {
        let environment = ProcessInfo.processInfo.environment
        let tty = isatty(STDOUT_FILENO) == 1 && environment["TERM"] != "dumb"
        return ConsoleStyle(color: tty && environment["NO_COLOR"] == nil, live: tty)
    }

    public static let plain = ConsoleStyle(color: false, live: false)

    /// The terminal's width now (asked at every redraw, so a resized window is followed); nil when standard output
    /// is not a terminal.
    public static func terminalColumns() -> Int? {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }

    public func paint(_ text: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
    public func bold(_ text: String) -> String { paint(text, "1") }
    func dim(_ text: String) -> String { paint(text, "2") }

    public func verdict(_ verdict: Verdict) -> String {
        let label = verdict.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)
        switch verdict {
        case .pass: return paint(label, "1;32")
        case .fail: return paint(label, "1;31")
        case .error: return paint(label, "1;33")
        case .aborted: return paint(label, "1;35")
        case .skipped: return dim(label)
        }
    }
}

/// Writes text straight to a file descriptor (no stdio buffering shared between threads).
public struct ConsoleOutput: Sendable {
    public let descriptor: Int32
    /// Put before every line (`[bay 3] `): several runs sharing one terminal or log.
    public let prefix: String
    /// Where the text goes instead of the descriptor (a line's live table, which writes it above itself).
    let sink: (@Sendable (String) -> Void)?

    public init(descriptor: Int32, prefix: String = "") {
        self.descriptor = descriptor
        self.prefix = prefix
        sink = nil
    }

    /// Output handed, prefixed, to `sink`.
    public init(prefix: String = "", sink: @escaping @Sendable (String) -> Void) {
        descriptor = STDOUT_FILENO
        self.prefix = prefix
        self.sink = sink
    }

    public static let standardOutput = ConsoleOutput(descriptor: STDOUT_FILENO)
    public static let standardError = ConsoleOutput(descriptor: STDERR_FILENO)

    public func write(_ text: String) {
        var text = text
        if !prefix.isEmpty {
            // Every line that has something on it, so a block of lines written at once stays one write.
            text = text.split(separator: "\n", omittingEmptySubsequences: false).map {
                $0.isEmpty ? "" : prefix + $0
            }.joined(separator: "\n")
        }
        if let sink {
            sink(text)
            return
        }
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes {
                Foundation.write(descriptor, $0.baseAddress.map { $0 + offset }, $0.count - offset)
            }
            if written <= 0 {
                if written < 0, errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}

/// Shows a run as it goes: one line per finished step, a live line while waiting or sampling, a verdict that
/// cannot be misread.
public final class ConsoleReporter: RunObserver {
    /// One line per device, but a run of group members (`compute01` ... `compute18`) on one line.
    static func endpointLines(_ endpoints: [String: String]) -> [String] {
        let sorted = endpoints.sorted { $0.key < $1.key }
        func prefix(_ name: String) -> String { String(name.prefix { !$0.isNumber }) }
        var lines: [String] = []
        var index = 0
        while index < sorted.count {
            let (name, endpoint) = sorted[index]
            var end = index
            while end + 1 < sorted.count, prefix(sorted[end + 1].key) == prefix(name), prefix(name) != name { end += 1 }
            if end - index >= 2 {
                let last = sorted[end]
                let same = sorted[index...end].allSatisfy { $0.value == endpoint }
                lines.append(
                    "\(name)…\(last.key) (\(end - index + 1)): " + (same ? endpoint : "\(endpoint) … \(last.value)"))
                index = end + 1
            } else {
                lines.append("\(name): \(endpoint)")
                index += 1
            }
        }
        return lines
    }

    let style: ConsoleStyle
    let output: ConsoleOutput
    let clock: any RunClock
    let header: Header

    public struct Header: Sendable {
        public var scenario: String?
        public var simulated: Bool
        public var timeScale: Double?
        public var folder: String?
        /// Where each device is reached.
        public var endpoints: [String: String]

        public init(
            scenario: String?, simulated: Bool, timeScale: Double?, folder: String?,
            endpoints: [String: String] = [:]
        ) {
            self.scenario = scenario
            self.simulated = simulated
            self.timeScale = timeScale
            self.folder = folder
            self.endpoints = endpoints
        }
    }

    struct State {
        var lastLive: ContinuousClock.Instant?
        var liveShown = false
    }

    private let state = Mutex(State())

    public init(style: ConsoleStyle, output: ConsoleOutput = .standardOutput, clock: any RunClock, header: Header) {
        self.style = style
        self.output = output
        self.clock = clock
        self.header = header
    }

    func print(_ line: String) {
        let clear = state.withLock { state -> Bool in
            defer { state.liveShown = false }
            return state.liveShown
        }
        output.write((clear ? "\r\u{1B}[2K" : "") + line + "\n")
    }

    func clockStamp() -> String {
        let text = Timestamp.string(clock.date(at: clock.now()))
        return String(text.dropFirst(11).prefix(8))
    }

    public func handle(_ event: RunEvent) {
        switch event {
        case let .runStarted(record):
            let title = record.procedure.title.escapingControlCharacters
            print(style.bold("━━ \(record.procedure.id) \(record.procedure.version) · \(title)"))
            print(
                "   rack profile \(record.rackProfile) · station \(record.station)"
                    + (record.operator.map { " · operator \($0.escapingControlCharacters)" } ?? ""))
            if header.simulated {
                let pace = header.timeScale.map { "\(Quantity.format($0))× real time" } ?? "as fast as the steps allow"
                print(
                    "   " + style.paint("SIMULATED rack", "1;36")
                        + (header.scenario.map {
                            " (scenario '\($0)') · simulated clock, \(pace); times shown are simulated"
                        }
                            ?? " (this station's rack is a simulator)"))
            } else if let scale = header.timeScale, scale != 1 {
                print(
                    "   station clock sped up \(Quantity.format(scale))× (for a simulator at the same pace); times shown are simulated"
                )
            }
            for line in Self.endpointLines(header.endpoints) { print("   \(line.escapingControlCharacters)") }
            print("   run \(record.runID)" + (header.folder.map { " · journal \($0)/journal.jsonl" } ?? ""))
        case let .groupStarted(group, count):
            if group != .cleanup {
                print("\n" + style.bold(group.rawValue.uppercased()) + style.dim("  \(count) steps"))
            }
        case let .cleanupStarted(reason):
            print("\n" + style.bold("CLEANUP") + style.dim("  (\(reason)) returning the rack to its safe state"))
        case .stepStarted, .sample:
            break
        case let .progress(step, elapsed, total, detail):
            guard style.live else { return }
            let now = ContinuousClock.now
            let due = state.withLock { state -> Bool in
                if let last = state.lastLive, now - last < .milliseconds(100), elapsed < total { return false }
                state.lastLive = now
                state.liveShown = true
                return true
            }
            guard due else { return }
            let line =
                "  ⋯      \(step.name.escapingControlCharacters)  \(Self.clockText(elapsed)) / "
                + "\(Self.clockText(total))  \(detail.escapingControlCharacters)"
            // One line, never wrapped: a wrapped line cannot be redrawn in place and leaves a line per tick.
            let width = max(20, (ConsoleStyle.terminalColumns() ?? 160) - 1)
            output.write("\r\u{1B}[2K" + style.dim(String(line.prefix(width))))
        case let .stepFinished(step, record):
            printStep(step, record)
        case let .attemptFailed(step, attempt, attempts, delay):
            let why = (attempt.error ?? attempt.message).map { ": \($0.escapingControlCharacters)" } ?? ""
            let next = delay > 0 ? "again in \(Self.clockText(delay))" : "again now"
            print(
                style.paint(
                    "  ↻ \(step.name.escapingControlCharacters): attempt \(attempt.attempt) of \(attempts) "
                        + "\(attempt.verdict)\(why); \(next)", "33"))
        case let .notice(text):
            print(style.paint("  ! \(text.escapingControlCharacters)", "1;33"))
        case let .retry(device, message):
            print(style.paint("  ↻ \(device): \(message.escapingControlCharacters)", "33"))
        case .actuated:
            break
        case let .hazardConfirmed(step, hazard):
            print(
                style.paint("  ⚠ HAZARD ", "1;33") + "\(step.name.escapingControlCharacters): "
                    + "\(hazard.hazard.escapingControlCharacters), \(hazard.summary.escapingControlCharacters)")
        case let .supervisorStarted(interlocks):
            print(
                "   interlocks watched: "
                    + interlocks.map { "\($0.name) every \(Quantity.format($0.poll.seconds)) s" }.joined(
                        separator: ", "))
        case let .interlockTripped(trip):
            print("")
            print(style.paint("  ⚠ INTERLOCK \(trip.interlock.escapingControlCharacters) TRIPPED", "1;37;41"))
            print(style.paint("    \(trip.summary.escapingControlCharacters)", "1;31"))
            for result in trip.reaction {
                let mark = result.succeeded ? "✓" : "✗"
                let text =
                    "    \(mark) \(result.action.escapingControlCharacters)"
                    + (result.error.map { ": \($0.escapingControlCharacters)" } ?? "")
                print(result.succeeded ? text : style.paint(text, "1;31"))
            }
        case let .safeStateChecked(check):
            print("\n" + style.bold("SAFE STATE"))
            for device in check.devices {
                let readings = device.readings.joined(separator: ", ").escapingControlCharacters
                let line =
                    "  \(device.outcome.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)) "
                    + "\(device.device.escapingControlCharacters)  \(device.check.escapingControlCharacters)"
                    + (readings.isEmpty ? "" : "  (\(readings))")
                    + (device.message.map { "  \($0.escapingControlCharacters)" } ?? "")
                switch device.outcome {
                case .verified: print(style.paint(line, "32"))
                case .driven: print(style.paint(line, "33"))
                case .unsafe: print(style.paint(line, "1;31"))
                case .undeclared: print(style.dim(line))
                }
            }
        case let .runFinished(record):
            printVerdict(record)
        }
    }

    func printStep(_ step: Step, _ record: StepRecord) {
        let fullName = record.name.escapingControlCharacters
        let name = fullName.count > 42 ? String(fullName.prefix(41)) + "…" : fullName
        let paddedName = name.padding(toLength: 42, withPad: " ", startingAt: 0)
        var lines: [String] = []
        let shown = record.measurements
        var summary = ""
        if let error = record.error?.escapingControlCharacters {
            summary = style.paint(error, "33")
        } else if !shown.isEmpty, record.verdict != .skipped {
            let first = shown[0]
            summary = measurementText(first, single: shown.count == 1 && step.kind.keyword == "measure")
            for measurement in shown.dropFirst() {
                lines.append(String(repeating: " ", count: 62) + measurementText(measurement, single: false))
            }
            let judged = record.measurements.contains { $0.displayLimits != nil && $0.verdict == .fail }
            if record.verdict == .fail, let message = record.message?.escapingControlCharacters, !message.isEmpty,
                !judged
            {
                lines.append(String(repeating: " ", count: 62) + style.paint(message, "31"))
            } else if step.kind.keyword == "sample", let message = record.message?.escapingControlCharacters {
                lines.append(String(repeating: " ", count: 62) + style.dim(message))
            }
        } else if let message = record.message?.escapingControlCharacters {
            summary =
                record.verdict == .pass || record.verdict == .skipped ? style.dim(message) : style.paint(message, "31")
        }
        print("  \(style.dim(clockStamp()))  \(style.verdict(record.verdict)) \(paddedName) \(summary)")
        for line in lines { print(line) }
    }

    func measurementText(_ measurement: MeasurementRecord, single: Bool) -> String {
        let value = measurement.displayValue.escapingControlCharacters
        var text = single ? value : "\(measurement.name.escapingControlCharacters) = \(value)"
        if let limits = measurement.displayLimits {
            text += style.dim("  limit \(limits)")
            if measurement.verdict == .fail { text = style.paint(text + "  ✗ out of limits", "31") }
        }
        return text
    }

    static func clockText(_ seconds: Double) -> String {
        let total = Int(seconds.rounded(.down))
        return total >= 3600
            ? String(format: "%d:%02d:%02d", total / 3600, (total / 60) % 60, total % 60)
            : String(format: "%02d:%02d", total / 60, total % 60)
    }

    static func durationText(_ seconds: Double) -> String {
        if seconds < 60 { return "\(Quantity.format((seconds * 100).rounded() / 100)) s" }
        let total = Int(seconds.rounded())
        if total < 3600 { return "\(total / 60) min \(total % 60) s" }
        return "\(total / 3600) h \((total / 60) % 60) min"
    }

    func printVerdict(_ record: RunRecord) {
        let rule = style.bold(String(repeating: "═", count: 72))
        print("")
        print(rule)
        let big =
            switch record.verdict {
            case .pass: style.paint(" PASS ", "1;30;42")
            case .fail: style.paint(" FAIL ", "1;37;41")
            case .error: style.paint(" ERROR ", "1;30;43")
            case .aborted: style.paint(" ABORTED ", "1;37;45")
            case .skipped: record.verdict.rawValue
            }
        let tripped = record.interlocks?.contains { $0.trip?.cause == .condition } == true
        let meaning =
            switch record.verdict {
            case .pass: "the rack met every limit"
            case .fail where tripped: "the rack tripped a SAFETY INTERLOCK: it is unsafe as built"
            case .fail: "the rack FAILED a limit"
            case .error: "the station could not complete the test; this is not a verdict on the rack: fix and retest"
            case .aborted: "the run was stopped before it finished; retest"
            case .skipped: ""
            }
        print("  VERDICT: \(big)  \(meaning)")
        if record.isSimulated {
            print(
                "  " + style.paint(" SIMULATED ", "1;37;44")
                    + (record.simulator.map {
                        "  station \(record.station)'s rack is a simulator (\($0.escapingControlCharacters))"
                    }
                        ?? "  the built-in simulated rack (scenario '\(record.scenario ?? "")')")
                    + ": no real rack was tested")
        }
        for deviation in record.deviations ?? [] {
            print("  " + style.paint("DEVIATION", "1;31") + " \(deviation.summary.escapingControlCharacters)")
        }
        let serial = record.rackSerial?.escapingControlCharacters ?? "(no serial)"
        print("  \(record.procedure.id) \(record.procedure.version) · rack \(serial)")
        if let message = record.message?.escapingControlCharacters, record.verdict != .pass { print("  " + message) }
        let judged = record.steps.flatMap(\.measurements).filter { $0.displayLimits != nil }
        for measurement in judged where record.verdict == .pass || measurement.verdict == .fail {
            print(
                "  \(measurement.verdict == .pass ? "✓" : "✗") \(measurement.name.escapingControlCharacters): "
                    + "\(measurement.displayValue.escapingControlCharacters) "
                    + "(limit \(measurement.displayLimits ?? ""))")
        }
        if record.clock.kind == .simulated {
            print(
                "  Simulated \(Self.durationText(record.clock.elapsedSeconds)) of rack time in "
                    + "\(Self.durationText(record.clock.wallSeconds)) of wall time (simulated clock).")
        } else {
            print("  Took \(Self.durationText(record.clock.elapsedSeconds)).")
        }
        if let trip = record.interlocks?.compactMap(\.trip).first, record.message?.contains(trip.summary) != true {
            print(style.paint("  ⚠ \(trip.summary.escapingControlCharacters)", "1;31"))
        }
        if let safe = record.safeState {
            if safe.verified {
                print(style.paint("  \(safe.summary.escapingControlCharacters)", "32"))
            } else {
                print(style.paint("  \(safe.summary.escapingControlCharacters). MAKE IT SAFE BY HAND.", "1;31"))
            }
        }
        let cleanupSteps = record.steps(in: .cleanup)
        if record.recovery != nil {
            print(
                "  Cleanup did not run: the station stopped. Recovery drove what the run had moved to its safe state"
                    + (record.safeState?.verified == true ? " and read it back." : "; it is NOT shown safe."))
        } else if record.steps.allSatisfy({ $0.verdict == .skipped })
            || (cleanupSteps.allSatisfy({ $0.verdict == .skipped }) && !cleanupSteps.isEmpty)
        {
            print("  Cleanup not needed: nothing was actuated.")
        } else if record.cleanupCompleted {
            print("  Cleanup completed: the rack was returned to its safe state.")
        } else {
            print(
                style.paint(
                    "  CLEANUP DID NOT COMPLETE: the rack may NOT be in a safe state. Check it by hand.", "1;31"))
        }
        if let folder = header.folder {
            if FileManager.default.fileExists(atPath: "\(folder)/record.json") {
                print("  Record: \(folder)/record.json")
            } else {
                print(
                    style.paint("  NO RECORD WAS WRITTEN (see above); the journal is \(folder)/journal.jsonl", "1;31"))
            }
        }
        print(rule)
    }
}
