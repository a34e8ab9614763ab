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
/// a line, such as its one terminal.)
public final class TurnTaking: Sendable {
    private struct State {
        var busy = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    public init() {}

    public func inTurn<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                guard state.busy else {
                    state.busy = true
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
        defer {
            let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard !state.waiting.isEmpty else {
                    state.busy = false
                    return nil
                }
                return state.waiting.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}
