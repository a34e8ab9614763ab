import AcceptanceCore
import Synchronization

/// One terminal shared by a line's bays: prompts take turns (one at a time, in the order asked) and each names its
/// bay ("Bay 3: scan the rack serial"), so a technician always knows which rack a question is about.
public struct BayConsole: OperatorConsole {
    let bay: Int
    let terminal: any OperatorConsole
    let turns: TurnTaking

    public init(bay: Int, terminal: any OperatorConsole, turns: TurnTaking) {
        self.bay = bay
        self.terminal = terminal
        self.turns = turns
    }

    public var isInteractive: Bool { terminal.isInteractive }

    public func confirm(_ text: String, step: Step) async throws -> Bool {
        try await turns.inTurn { try await terminal.confirm("Bay \(bay): \(text)", step: step) }
    }

    public func ask(
        _ text: String, input: String, pattern: String?, step: Step, problem: String?
    ) async throws
        -> String
    {
        try await turns.inTurn {
            try await terminal.ask("Bay \(bay): \(text)", input: input, pattern: pattern, step: step, problem: problem)
        }
    }

    public func confirmHazard(
        _ hazard: String, step: Step, number: Int, required: Int, problem: String?
    ) async throws -> String {
        try await turns.inTurn {
            try await terminal.confirmHazard(
                "Bay \(bay): \(hazard)", step: step, number: number, required: required, problem: problem)
        }
    }
}

/// Takes turns: whoever holds the turn works alone; the others wait, first come first served. (A shared resource of
/// a line: its one terminal, its one reference gauge.) A task stopped while it waits gives up its place.
public final class TurnTaking: Sendable {
    private struct State {
        var busy = false
        var waiting: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
        var next = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Whether someone holds the turn now.
    public var isBusy: Bool { state.withLock { $0.busy } }

    /// Waits for the turn; throws `CancellationError` (and holds nothing) if the task is cancelled first.
    public func acquire() async throws {
        let id = state.withLock { state -> Int in
            state.next += 1
            return state.next
        }
        let granted = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now = state.withLock { state -> Bool? in
                    if Task.isCancelled { return false }
                    guard state.busy else {
                        state.busy = true
                        return true
                    }
                    state.waiting.append((id, continuation))
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
                guard let index = state.waiting.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiting.remove(at: index).continuation
            }
            waiter?.resume(returning: false)
        }
        if !granted { throw CancellationError() }
    }

    /// Hands the turn to the next in line (or frees it).
    public func release() {
        let next = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard !state.waiting.isEmpty else {
                state.busy = false
                return nil
            }
            return state.waiting.removeFirst().continuation
        }
        next?.resume(returning: true)
    }

    public func inTurn<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await acquire()
        defer { release() }
        return try await body()
    }
}

/// The question a Ctrl-C asks on a line's terminal: which bays to stop.
public enum LineStopQuestion {
    /// Asks, in turn with the bays' prompts and with the live table out of the way, which of `running` to stop:
    /// nil for every bay (Enter, 'all', no answer, or a bay's prompt already on screen), an empty list for none.
    public static func ask(
        _ running: [Int], line: LineConfiguration, turns: TurnTaking, table: LineLiveTable?, style: ConsoleStyle,
        output: ConsoleOutput = .standardOutput
    ) async -> [Int]? {
        // A bay's question is on screen: the operator's Ctrl-C there means stop, and they cannot be asked twice.
        if turns.isBusy { return nil }
        let list = running.map(String.init).joined(separator: ", ")
        let chosen = try? await turns.inTurn { () -> [Int]? in
            table?.pause()
            defer { table?.resume() }
            LineReader.shared.discardTypeAhead()
            while true {
                output.write(
                    "\n  " + style.paint("■ Ctrl-C", "1;35") + "  Stop which bays? Running: \(list).\n"
                        + "    Enter (or 'all') stops every bay; bay numbers (3, or 2,5-6) stop those; "
                        + "'none' stops nothing: ")
                guard let answer = try await LineReader.shared.next() else { return nil }
                let text = answer.trimmingCharacters(in: .whitespaces).lowercased()
                if text.isEmpty || text == "all" { return nil }
                if text == "none" { return [] }
                do {
                    return try line.select(text).map(\.number)
                } catch {
                    output.write("    \(String(describing: error).escapingControlCharacters)\n")
                }
            }
        }
        return chosen ?? nil
    }
}
