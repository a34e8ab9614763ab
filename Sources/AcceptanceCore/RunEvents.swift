/// What the runner reports as it goes, to the console and to the journal.
public enum RunEvent: Sendable {
    case runStarted(RunRecord)
    case groupStarted(StepGroup, stepCount: Int)
    case stepStarted(Step)
    /// A wait, poll or sample in progress: clock seconds elapsed of total, and the latest reading.
    case progress(Step, elapsed: Double, total: Double, detail: String)
    /// One sample of a series: clock seconds since the step started, values in the units of `units`.
    case sample(Step, index: Int, elapsed: Double, values: [Double], units: [String])
    case stepFinished(Step, StepRecord)
    /// Cleanup is starting; the reason it runs (always, but the operator should know why now).
    case cleanupStarted(reason: String)
    case notice(String)
    /// A device transaction failed and is being retried (the run goes on if a retry succeeds).
    case retry(device: String, message: String)
    case runFinished(RunRecord)
}

/// Receives run events; the console and tests implement it.
public protocol RunObserver: Sendable {
    func handle(_ event: RunEvent)
}

/// Discards events.
public struct SilentObserver: RunObserver {
    public init() {}
    public func handle(_ event: RunEvent) {}
}

/// The person at the station, or a stand-in for one when nobody is there.
public protocol OperatorConsole: Sendable {
    /// False when nobody can answer (no terminal, or --yes): prompts are confirmed automatically and any value a
    /// prompt needs must have been given on the command line.
    var isInteractive: Bool { get }
    /// Shows an instruction and waits for the operator to confirm it. Returns false if the operator declined.
    func confirm(_ text: String, step: Step) async throws -> Bool
    /// Asks for a value; the answer is checked against the pattern by the runner, which may ask again.
    func ask(_ text: String, input: String, pattern: String?, step: Step, problem: String?) async throws -> String
}

/// Confirms every prompt without a person, as `--yes` or a missing terminal does. The record says so.
public struct AutomaticOperator: OperatorConsole {
    public init() {}
    public var isInteractive: Bool { false }
    public func confirm(_ text: String, step: Step) async throws -> Bool { true }
    public func ask(_ text: String, input: String, pattern: String?, step: Step, problem: String?) async throws -> String {
        throw CancellationError()
    }
}
