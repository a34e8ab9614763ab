import Foundation

/// `prompt:`: an instruction the operator confirms, or a value (a serial number) checked against a pattern. Without a
/// terminal, a value comes from the command line or the simulated rack, and instructions are confirmed automatically
/// (the record says so).
struct PromptStep: StepExecutor {
    let text: String
    let input: String?
    let pattern: String?

    func execute(_ context: StepContext) async throws -> StepResult {
        let console = context.run.console
        let settings = context.run.settings
        let step = context.step
        guard let input else {
            if console.isInteractive {
                guard try await console.confirm(text, step: step) else { throw OperatorDeclined(step: step.name) }
                return StepResult(message: "confirmed by the operator", confirmedBy: "operator")
            }
            return StepResult(message: "confirmed automatically (no terminal, or --yes)", confirmedBy: "auto")
        }
        var value: String
        var confirmedBy = "command-line"
        if let given = settings.inputs[input] {
            value = given
        } else if !console.isInteractive, let simulated = settings.simulatedInputs[input] {
            value = simulated
            confirmedBy = "scenario"
        } else {
            confirmedBy = "operator"
            var problem: String?
            while true {
                value = try await console.ask(text, input: input, pattern: pattern, step: step, problem: problem)
                value = value.trimmingCharacters(in: .whitespaces)
                if let pattern, !Runner.matches(value, pattern) {
                    problem = "'\(value)' is not \(Self.expected(step, pattern)); try again"
                    continue
                }
                break
            }
        }
        if let pattern, !Runner.matches(value, pattern) {
            throw StationError(description: "\(input) '\(value)' is not \(Self.expected(step, pattern))")
        }
        context.run.setEnvironment(input, .text(value))
        return StepResult(
            measurements: [MeasurementRecord(name: input, value: nil, text: value, unit: nil, verdict: .pass)],
            message: "\(input) = \(value)", confirmedBy: confirmedBy)
    }

    /// What the value should be, in the procedure's words (`pattern_hint`), else in the pattern's.
    static func expected(_ step: Step, _ pattern: String) -> String {
        step.patternHint ?? "in the form the procedure asks for (the pattern \(pattern))"
    }
}
