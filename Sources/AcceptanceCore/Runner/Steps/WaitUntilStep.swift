/// `wait_until:`: polls a condition until it holds; FAIL if it does not within the timeout.
struct WaitUntilStep: StepExecutor {
    let condition: Expression
    let timeout: Expression
    let poll: Expression

    func execute(_ context: StepContext) async throws -> StepResult {
        let environment = try await context.values(for: [])
        let limit = try context.duration(timeout, environment)
        let interval = try context.duration(poll, environment)
        guard interval > .zero else { throw StationError(description: "poll interval must be above zero") }
        let clock = context.clock
        let start = clock.now()
        while true {
            let values = try await context.values(for: [condition])
            let elapsed = clock.now() - start
            let readings = describeReadings(condition, values)
            if case .bool(true) = try condition.evaluate(values) {
                var measurements = readingMeasurements(condition, values)
                measurements.append(
                    MeasurementRecord(
                        name: "time to condition", value: elapsed.seconds, unit: "s",
                        verdict: .pass))
                return StepResult(
                    measurements: measurements,
                    message: "held after \(Quantity.format(elapsed.seconds)) s\(readings)")
            }
            context.progress(elapsed: elapsed.seconds, total: limit.seconds, detail: readings)
            if elapsed >= limit {
                return StepResult(
                    verdict: .fail, measurements: readingMeasurements(condition, values),
                    message: "not reached within \(timeout.source): \(condition.source)\(readings)")
            }
            try await clock.sleep(until: min(clock.now() + interval, start + limit))
        }
    }
}
