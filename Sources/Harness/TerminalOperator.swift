import AcceptanceCore
import Foundation
import Synchronization

/// Reads lines from standard input on a dedicated thread, so a blocked read never holds a Swift task thread and a
/// waiting prompt can be cancelled by Ctrl-C.
final class LineReader: Sendable {
    struct State {
        var lines: [String?] = []
        var waiter: CheckedContinuation<String?, Never>?
        var started = false
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
            while true {
                let line = Swift.readLine(strippingNewline: true)
                deliver(line)
                if line == nil { return }
            }
        }
        thread.name = "acceptance.stdin"
        thread.start()
    }

    private func deliver(_ line: String?) {
        let waiter = state.withLock { state -> CheckedContinuation<String?, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.lines.append(line)
            return nil
        }
        waiter?.resume(returning: line)
    }

    /// The next line; nil at end of input. Throws `CancellationError` if the task is cancelled while waiting.
    func next() async throws -> String? {
        startIfNeeded()
        let line: String?? = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
                let buffered: String?? = state.withLock { state in
                    if !state.lines.isEmpty { return .some(state.lines.removeFirst()) }
                    state.waiter = continuation
                    return .none
                }
                if let buffered { continuation.resume(returning: buffered) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<String?, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
        try Task.checkCancellation()
        return line ?? nil
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

    public func confirm(_ text: String, step: Step) async throws -> Bool {
        output.write("\n  " + style.paint("▶ OPERATOR", "1;36") + "  " + text.trimmingCharacters(in: .whitespacesAndNewlines)
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

    public func ask(_ text: String, input: String, pattern: String?, step: Step, problem: String?) async throws -> String {
        if let problem {
            output.write("    " + style.paint(problem, "33") + "\n    \(input): ")
        } else {
            output.write("\n  " + style.paint("▶ OPERATOR", "1;36") + "  " + text.trimmingCharacters(in: .whitespacesAndNewlines)
                + "\n    \(input): ")
        }
        guard let line = try await LineReader.shared.next() else { throw CancellationError() }
        return line
    }
}
