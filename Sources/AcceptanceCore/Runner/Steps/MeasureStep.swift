/// `measure:`: reads a value, records it with its unit, and judges it against its limits.
struct MeasureStep: StepExecutor {
    let expression: Expression
    let limits: Limits
    let unit: PhysicalUnit?

    func execute(_ context: StepContext) async throws -> StepResult {
        let values = try await context.values(for: [expression] + [limits.low, limits.high].compactMap { $0 })
        let measured = try expression.evaluate(values)
        let measurement = try Judging.judge(
            name: context.step.name, measured, unit: unit, limits: limits,
            isInterval: false, values: values)
        return StepResult(verdict: measurement.verdict, measurements: [measurement])
    }
}
