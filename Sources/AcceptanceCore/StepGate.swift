/// Equipment several runs share (a line's one reference gauge, its one chiller): a step that uses it waits its
/// turn, and holds it until the step has ended.
public protocol StepGate: Sendable {
    /// Waits until `step` (of `procedure`) may run, calling `waiting` with what it waits for if it must; returns
    /// what to call once the step has ended, and what the step waited for (nil: nothing). Throws
    /// `CancellationError` if the run is stopped while it waits.
    func enter(
        _ step: Step, of procedure: Procedure, waiting: @Sendable (String) -> Void
    ) async throws -> (release: @Sendable () -> Void, waited: String?)
}
