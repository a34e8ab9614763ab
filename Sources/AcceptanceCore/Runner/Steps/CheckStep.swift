/// `check:`: a condition that must hold now; FAIL with the readings behind it if it does not.
struct CheckStep: StepExecutor {
    let condition: Expression

    func execute(_ context: StepContext) async throws -> StepResult {
        let values = try await context.values(for: [condition])
        let holds = try condition.evaluate(values)
        let readings = describeReadings(condition, values)
        guard case .bool(true) = holds else {
            return StepResult(
                verdict: .fail, measurements: readingMeasurements(condition, values),
                message: "not true: \(condition.source)\(readings)")
        }
        return StepResult(measurements: readingMeasurements(condition, values), message: "holds\(readings)")
    }
}
