/// `skip_if:` / `only_if:` and `retry:`: whether a step runs, and how often it is tried.
extension Runner {
    /// Why the step does not run (recorded as SKIPPED), or nil when it does. The condition reads the points it
    /// names now; a device that does not answer is the step's ERROR, as it would be in the step itself.
    func ruledOut(_ step: Step, by condition: Step.Condition) async throws -> String? {
        let context = StepContext(step: step, bus: bus, run: self)
        let values = try await context.values(for: [condition.expression])
        let holds: Bool
        switch try condition.expression.evaluate(values) {
        case .bool(let value): holds = value
        case let other:
            throw StationError(
                description: "\(step.location): \(condition.kind.rawValue) '\(condition.expression.source)' came to "
                    + "\(other), not true or false")
        }
        guard !condition.runs(holds) else { return nil }
        let readings = describeReadings(condition.expression, values)
        return "skipped: \(condition.kind.rawValue) \(condition.expression.source) is \(holds)\(readings)"
    }

    /// Runs the step's attempts: one without `retry:`; with it, again after each attempt whose verdict the retry
    /// names, up to its count, waiting its delay on the run's clock between them. Every attempt goes into the
    /// record (`attempts`) and the journal (`step_attempt`); the last one is the step's result.
    func attempts(of step: Step, into stepRecord: inout StepRecord) async throws -> StepResult {
        let context = StepContext(step: step, bus: bus, run: self)
        guard let retry = step.retry else { return try await step.executor.execute(context) }
        var attempts: [AttemptRecord] = []
        defer { stepRecord.attempts = attempts }
        for number in 1...retry.attempts {
            let started = clock.now()
            let result: StepResult
            do {
                result = try await step.executor.execute(context)
            } catch let error as DeviceError where !error.isCancellation {
                result = StepResult(verdict: .error, error: error.description)
            } catch let error as StationError {
                result = StepResult(verdict: .error, error: error.description)
            } catch let error as ExpressionError {
                result = StepResult(verdict: .error, error: "\(step.location): \(error.message)")
            }
            var attempt = AttemptRecord(
                attempt: number, verdict: result.verdict, started: stamp(started), ended: stamp(clock.now()),
                measurements: result.measurements, message: result.message, error: result.error)
            if attempt.verdict == .error, attempt.error == nil { attempt.error = result.message }
            attempts.append(attempt)
            guard number < retry.attempts, retry.on.contains(result.verdict), stop.reason == nil else {
                if number > 1 {
                    var last = result
                    let outcome =
                        result.verdict == .pass
                        ? "passed on attempt \(number) of \(retry.attempts)"
                        : "attempt "
                            + "\(number) of \(retry.attempts)"
                    last.message = [outcome, result.message].compactMap { $0 }.joined(separator: ": ")
                    return last
                }
                return result
            }
            let delay = try retry.delay.map { try Runner.duration($0, environment) } ?? .zero
            emit(.attemptFailed(step, attempt, of: retry.attempts, delay: delay.seconds))
            if delay > .zero { try await clock.sleep(until: clock.now() + delay) }
            // A stop while waiting to try again ends the step there (ABORTED), whether or not the wait noticed it.
            if stop.reason != nil { throw CancellationError() }
            try Task.checkCancellation()
        }
        // The loop returns from its last attempt.
        throw StationError(description: "\(step.location): retry ran no attempt")
    }
}
