/// `set: {cdu.mode: manual}`: writes a point.
struct SetStep: StepExecutor {
    let point: String
    let value: Expression

    func execute(_ context: StepContext) async throws -> StepResult {
        let written = try value.evaluate(try await context.values(for: [value]))
        try Task.checkCancellation()
        context.run.noteActuation(point, on: context.bus, "← \(written)", step: context.step)
        try await context.bus.write(point, written)
        return StepResult(message: "\(point) ← \(written)")
    }
}
