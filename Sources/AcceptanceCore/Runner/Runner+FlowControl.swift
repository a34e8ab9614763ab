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
        // A stopped run's cleanup still retries: returning the rack to its safe state is when it matters most.
        var stopped: Bool { stop.reason != nil && step.group != .cleanup }
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
            } catch {
                // Stopped (or declined) during this attempt: it is recorded, ABORTED, and the stop goes on up.
                attempts.append(
                    AttemptRecord(
                        attempt: number, verdict: .aborted, started: stamp(started), ended: stamp(clock.now()),
                        measurements: [], message: "stopped during this attempt"))
                throw error
            }
            var attempt = AttemptRecord(
                attempt: number, verdict: result.verdict, started: stamp(started), ended: stamp(clock.now()),
                measurements: result.measurements, message: result.message, error: result.error)
            attempt.members = result.members
            if attempt.verdict == .error, attempt.error == nil { attempt.error = result.message }
            attempts.append(attempt)
            guard number < retry.attempts, retry.on.contains(result.verdict), !stopped else {
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
            // The delay may read a point (a settling time the device reports): read now, as a wait reads it.
            var delay = Duration.zero
            if let expression = retry.delay {
                delay = try Runner.duration(expression, try await context.values(for: [expression]))
            }
            emit(.attemptFailed(step, attempt, of: retry.attempts, delay: delay.seconds))
            if delay > .zero { try await clock.sleep(until: clock.now() + delay) }
            // A stop while waiting to try again ends the step there (ABORTED), whether or not the wait noticed it.
            if stopped { throw CancellationError() }
            try Task.checkCancellation()
        }
        // The loop returns from its last attempt.
        throw StationError(description: "\(step.location): retry ran no attempt")
    }
}
