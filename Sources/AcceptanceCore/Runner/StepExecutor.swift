import Foundation

/// Runs one kind of step. Each kind is a small value made from the step's definition (`Step.executor`); the runner
/// records whatever it returns or throws.
protocol StepExecutor: Sendable {
    func execute(_ context: StepContext) async throws -> StepResult
}

/// What a step's executor works with: the step, the devices as it sees them (a `for_each` member's alias included),
/// and the run it belongs to (clock, console, journal, parameter values).
struct StepContext: Sendable {
    let step: Step
    let bus: DeviceBus
    let run: Runner

    var clock: any RunClock { run.clock }

    /// The values expressions read: parameters, inputs, and the current readings of the points they name.
    func values(for expressions: [Expression]) async throws -> [String: Value] {
        var values = run.environment
        let points = expressions.flatMap(\.references).filter { values[$0] == nil }
        if !points.isEmpty {
            var unique: [String] = []
            for point in points where !unique.contains(point) { unique.append(point) }
            for (name, value) in try await bus.read(unique) { values[name] = value }
        }
        return values
    }

    /// An expression that must be a non-negative time.
    func duration(_ expression: Expression, _ values: [String: Value]) throws -> Duration {
        try Runner.duration(expression, values)
    }

    /// Sends an event to the console and the journal.
    func emit(_ event: RunEvent) { run.emit(event) }

    func progress(elapsed: Double, total: Double, detail: String) {
        run.emit(.progress(step, elapsed: elapsed, total: total, detail: detail))
    }
}

/// What a step came to, before the runner turns it into a record.
struct StepResult: Sendable {
    var verdict = Verdict.pass
    var measurements: [MeasurementRecord] = []
    var message: String?
    var confirmedBy: String?
    var series: SeriesRecord?
    var members: [MemberRecord]?
    var error: String?
}

/// A step's problem that is the station's, not the rack's.
struct StationError: Error, CustomStringConvertible {
    var description: String
}

/// The operator said no to a prompt: the run stops.
/// The operator refused a prompt or a hazard: the run stops (ABORTED) and cleans up.
public struct OperatorDeclined: Error, Sendable, CustomStringConvertible {
    public var step: String
    public var description: String { "the operator declined '\(step)'" }

    public init(step: String) { self.step = step }
}

extension Step {
    /// The executor for this step: its kind's, run once per member for a `for_each` step.
    var executor: any StepExecutor {
        let single: any StepExecutor =
            switch kind {
            case let .prompt(text, input, pattern): PromptStep(text: text, input: input, pattern: pattern)
            case let .set(point, value): SetStep(point: point, value: value)
            case let .measure(expression, limits, unit): MeasureStep(expression: expression, limits: limits, unit: unit)
            case let .wait(duration): WaitStep(duration: duration)
            case let .waitUntil(condition, timeout, poll):
                WaitUntilStep(condition: condition, timeout: timeout, poll: poll)
            case let .sample(points, every, duration, measurements, failIf):
                SampleStep(points: points, every: every, duration: duration, measurements: measurements, failIf: failIf)
            case let .check(condition): CheckStep(condition: condition)
            case let .action(action, value): ActionStep(action: action, value: value)
            case let .firmware(points, release): FirmwareStep(points: points, release: release)
            }
        guard let each = forEach else { return single }
        return ForEachStep(each: each, member: single)
    }
}

extension Runner {
    /// Parameter and input values visible to expressions, as they are now.
    var environment: [String: Value] { state.withLock { $0.environment } }

    /// Records a value an operator gave, for the expressions of later steps.
    func setEnvironment(_ name: String, _ value: Value) {
        state.withLock { $0.environment[name] = value }
    }

    static func duration(_ expression: Expression, _ values: [String: Value]) throws -> Duration {
        let value = try expression.evaluate(values)
        guard case let .quantity(quantity) = value, let duration = quantity.duration, duration >= .zero else {
            throw StationError(description: "'\(expression.source)' must be a non-negative time, got \(value)")
        }
        return duration
    }
}

/// Point readings an expression used, as unjudged measurements for the record.
func readingMeasurements(_ expression: Expression, _ values: [String: Value]) -> [MeasurementRecord] {
    expression.references.filter { $0.contains(".") }.compactMap { name in
        guard let value = values[name] else { return nil }
        return Judging.measurementRecord(name: name, value, verdict: .pass)
    }
}

/// ` (cdu.loop_pressure = 301.2 kPa, ...)`: the readings behind a verdict, for its message.
func describeReadings(_ expression: Expression, _ values: [String: Value]) -> String {
    let readings = expression.references.compactMap { name in values[name].map { "\(name) = \($0)" } }
    return readings.isEmpty ? "" : " (\(readings.joined(separator: ", ")))"
}
