import AcceptanceCore
import Foundation
import Synchronization

/// Reads lines from standard input on a dedicated thread, so a blocked read never holds a Swift task thread and a
/// waiting prompt can be cancelled by Ctrl-C.
final class LineReader: Sendable {
    struct State {
        var lines: [String] = []
        var waiter: CheckedContinuation<String?, Never>?
        var started = false
        /// Standard input has ended: every later read answers nil at once.
        var ended = false
    }

    private let state = Mutex(State())

    static let shared = LineReader()

    private func startIfNeeded() {
        let start = state.withLock { state -> Bool in
            defer { state.started = true }
            return !state.started
        }
        guard start else { return }
        let thread = Thread { [self] in
            while let line = Swift.readLine(strippingNewline: true) { deliver(line) }
            deliver(nil)
        }
        thread.name = "acceptance.stdin"
        thread.start()
    }

    private func deliver(_ line: String?) {
        let (waiter, answer) = state.withLock { state -> (CheckedContinuation<String?, Never>?, String?) in
            if let line { state.lines.append(line) } else { state.ended = true }
            guard let waiter = state.waiter else { return (nil, nil) }
            state.waiter = nil
            return (waiter, state.lines.isEmpty ? nil : state.lines.removeFirst())
        }
        waiter?.resume(returning: answer)
    }

    /// Forgets lines typed before a prompt was shown, so a stray Enter cannot confirm a safety prompt unseen.
    func discardTypeAhead() {
        tcflush(STDIN_FILENO, TCIFLUSH)
        state.withLock { $0.lines.removeAll() }
    }

    /// The next line; nil at end of input. Throws `CancellationError` if the task is cancelled while waiting.
    func next() async throws -> String? {
        startIfNeeded()
        let line: String? = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
                enum Answer {
                    case line(String?)
                    case wait
                }
                let answer: Answer = state.withLock { state in
                    if !state.lines.isEmpty { return .line(state.lines.removeFirst()) }
                    if state.ended || Task.isCancelled { return .line(nil) }
                    state.waiter = continuation
                    return .wait
                }
                if case let .line(line) = answer { continuation.resume(returning: line) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<String?, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
        try Task.checkCancellation()
        return line
    }
}

/// The person at the station, at a terminal.
public struct TerminalOperator: OperatorConsole {
    let style: ConsoleStyle
    let output: ConsoleOutput

    public init(style: ConsoleStyle, output: ConsoleOutput = .standardOutput) {
        self.style = style
        self.output = output
    }

    public var isInteractive: Bool { true }

    /// A prompt's text as shown: its own line breaks kept (indented), every other control character escaped.
    static func shown(_ text: String) -> String {
        text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n", omittingEmptySubsequences: false)
            .map { String($0).escapingControlCharacters }.joined(separator: "\n    ")
    }

    public func confirm(_ text: String, step: Step) async throws -> Bool {
        LineReader.shared.discardTypeAhead()
        output.write(
            "\n  " + style.paint("▶ OPERATOR", "1;36") + "  " + Self.shown(text)
                + "\n    Press Enter when done (or type 'abort' and Enter to stop the run): ")
        while true {
            guard let line = try await LineReader.shared.next() else { return false }
            switch line.trimmingCharacters(in: .whitespaces).lowercased() {
            case "": return true
            case "abort", "a", "no", "n", "q", "quit": return false
            default: output.write("    Press Enter to confirm, or type 'abort': ")
            }
        }
    }

    /// A hazard, in bold on red, and the operator's id to accept it; 'abort' refuses it and stops the run.
    public func confirmHazard(
        _ hazard: String, step: Step, number: Int, required: Int, problem: String?
    ) async throws -> String {
        LineReader.shared.discardTypeAhead()
        let who = required == 1 ? "Operator" : number == 1 ? "First operator" : "Operator \(number) of \(required)"
        if let problem {
            output.write("    " + style.paint(problem.escapingControlCharacters, "33") + "\n")
        } else if number == 1 {
            output.write(
                "\n  " + style.paint("⚠ HAZARD", "1;37;41") + "  " + style.bold(step.name.escapingControlCharacters)
                    + "\n    " + Self.shown(hazard)
                    + (required > 1 ? "\n    \(required) different operators must each confirm with their id." : "")
                    + "\n")
        }
        output.write("    \(who): type your operator id to accept this hazard (or 'abort' to stop the run): ")
        guard let line = try await LineReader.shared.next() else { throw CancellationError() }
        if ["abort", "q", "quit", "no", "n"].contains(line.trimmingCharacters(in: .whitespaces).lowercased()) {
            throw OperatorDeclined(step: step.name)
        }
        return line
    }

    public func ask(
        _ text: String, input: String, pattern: String?, step: Step, problem: String?
    ) async throws -> String {
        LineReader.shared.discardTypeAhead()
        if let problem {
            output.write("    " + style.paint(problem.escapingControlCharacters, "33") + "\n    \(input): ")
        } else {
            output.write(
                "\n  " + style.paint("▶ OPERATOR", "1;36") + "  " + Self.shown(text) + "\n    \(input): ")
        }
        guard let line = try await LineReader.shared.next() else { throw CancellationError() }
        return line
    }
}
