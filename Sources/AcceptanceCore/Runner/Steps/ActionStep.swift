/// `action: each.reset` with a value: invokes a device action (a Redfish `ComputerSystem.Reset`).
struct ActionStep: StepExecutor {
    let action: String
    let value: Expression?

    func execute(_ context: StepContext) async throws -> StepResult {
        var text: String?
        if let value {
            let chosen = try value.evaluate(try await context.values(for: [value]))
            guard case let .text(name) = chosen else {
                throw StationError(description: "the value of \(action) must be text, got \(chosen)")
            }
            text = name
        }
        try Task.checkCancellation()
        context.run.noteActuation(action, on: context.bus, text ?? "", step: context.step)
        try await context.bus.perform(action, value: text)
        return StepResult(message: "\(action)\(text.map { " \($0)" } ?? "") accepted")
    }
}
