import Foundation

public enum StepGroup: String, Sendable, Hashable, Codable, CaseIterable {
    case setup, main, cleanup
}

/// Inclusive limits `low ≤ value ≤ high`; either side may be absent. Expressions, so they can use parameters.
public struct Limits: Sendable {
    public var low: Expression?
    public var high: Expression?

    public init(low: Expression? = nil, high: Expression? = nil) {
        self.low = low
        self.high = high
    }

    public var isEmpty: Bool { low == nil && high == nil }
}

/// A statistic derived from a sampled series.
public enum SeriesStatistic: String, Sendable, Hashable, CaseIterable, Codable {
    case first, last, min, max, mean
    /// last − first.
    case delta
    /// first − last: how much a held pressure fell.
    case drop
    /// Least-squares slope, in the point's unit per minute.
    case slope

    /// The type of the statistic of a series of `type`.
    func resultType(of type: ValueType) -> ValueType {
        if self == .slope, case let .quantity(dimension) = type { return .quantity(.rate(of: dimension)) }
        return type
    }
}

/// A measurement derived from a sampled series, judged against limits.
public struct SeriesMeasurement: Sendable {
    public var name: String
    /// The sampled point (`cdu.loop_pressure`).
    public var point: String
    public var statistic: SeriesStatistic
    public var limits: Limits
    /// The unit to report in; defaults to the point's unit.
    public var unit: PhysicalUnit?
    public var location: SourceLocation
}

public struct Step: Sendable {
    /// For a prompt with a `pattern`, what the value looks like in words, for the technician who typed it wrong.
    public var patternHint: String?
    /// `retry:`: run the step again when an attempt ends FAIL (or ERROR), up to `attempts` in all; every attempt is
    /// recorded.
    public var retry: Retry?
    /// `skip_if:` / `only_if:`: a condition over parameters, inputs and readings, judged just before the step; a step
    /// it rules out is recorded SKIPPED with the reason, and the run goes on.
    public var condition: Condition?

    /// `retry: 3`, or `retry: {attempts: 3, on: [fail, error], delay: 10 s}`.
    public struct Retry: Sendable {
        /// Attempts in all, the first included (2 to 10).
        public var attempts: Int
        /// The verdicts that earn another attempt: FAIL by default; ERROR as well when a device may need a moment.
        /// ABORTED never: a stop is a stop.
        public var on: Set<Verdict>
        /// How long to wait before the next attempt (a time expression); none: at once.
        public var delay: Expression?

        public init(attempts: Int, on: Set<Verdict> = [.fail], delay: Expression? = nil) {
            self.attempts = attempts
            self.on = on
            self.delay = delay
        }
    }

    /// When a step runs at all.
    public struct Condition: Sendable {
        public enum Kind: String, Sendable {
            case skipIf = "skip_if"
            case onlyIf = "only_if"
        }

        public var kind: Kind
        /// A true/false expression over parameters, inputs and points.
        public var expression: Expression

        public init(kind: Kind, expression: Expression) {
            self.kind = kind
            self.expression = expression
        }

        /// Whether the step runs, given what the expression came to.
        public func runs(_ holds: Bool) -> Bool { kind == .skipIf ? !holds : holds }
    }

    public enum Kind: Sendable {
        /// An instruction to the operator; with `input`, a value (a serial number) checked against `pattern`.
        case prompt(text: String, input: String?, pattern: String?)
        /// Write a point.
        case set(point: String, value: Expression)
        /// Read a value, record it with its unit, judge it against limits.
        case measure(expression: Expression, limits: Limits, unit: PhysicalUnit?)
        case wait(Expression)
        /// Poll until a condition holds; FAIL if it does not within the timeout.
        case waitUntil(condition: Expression, timeout: Expression, poll: Expression)
        /// Record points every interval for a duration, then derive measurements. `failIf`, checked with every
        /// sample, ends the step at once as FAIL (a leak sensor tripping during a pressurised hold).
        case sample(
            points: [String], every: Expression, duration: Expression, measurements: [SeriesMeasurement],
            failIf: Expression?)
        /// A condition that must hold now.
        case check(Expression)
        /// Invoke a device action (`each.reset` with `On`).
        case action(action: String, value: Expression?)
        /// Read firmware-version points and compare each with the release manifest named by `release` (a text
        /// parameter or a quoted release name).
        case firmware(points: [String], release: Expression)

        public var keyword: String {
            switch self {
            case .prompt: "prompt"
            case .set: "set"
            case .measure: "measure"
            case .wait: "wait"
            case .waitUntil: "wait-until"
            case .sample: "sample"
            case .check: "check"
            case .action: "action"
            case .firmware: "firmware"
            }
        }
    }

    /// The step as written, shared by every copy: a step goes into every event and record about it, and copying
    /// one reference is cheaper than copying each of its fields (a trivial step costs a few microseconds in all).
    private final class Definition: Sendable {
        let name: String
        let group: StepGroup
        let number: Int
        let kind: Kind
        let location: SourceLocation
        let forEach: ForEach?
        let manualAction: String?
        let hazard: Hazard?
        let id: String
        let source: String

        init(
            name: String, group: StepGroup, number: Int, kind: Kind, location: SourceLocation, forEach: ForEach?,
            manualAction: String?, hazard: Hazard?
        ) {
            self.hazard = hazard
            self.name = name
            self.group = group
            self.number = number
            self.kind = kind
            self.location = location
            self.forEach = forEach
            self.manualAction = manualAction
            id = "\(group.rawValue).\(number)"
            source = location.description
        }
    }

    private let definition: Definition

    public var name: String { definition.name }
    public var group: StepGroup { definition.group }
    /// Position within its group, from 1.
    public var number: Int { definition.number }
    public var kind: Kind { definition.kind }
    public var location: SourceLocation { definition.location }
    /// Run once per member of a device group, in parallel.
    public var forEach: ForEach? { definition.forEach }
    /// For a prompt: what the operator physically does (`remove-supply 1`), so a simulated rack can do the same when
    /// the prompt is confirmed. Recorded, never sent to real hardware.
    public var manualAction: String? { definition.manualAction }
    /// What can go wrong when this step runs (`pressurises the loop to 300 kPa`): it waits for identified operators.
    public var hazard: Hazard? { definition.hazard }
    /// `main.3`: stable within a procedure version. (Made once: the runner writes it into every line about the step.)
    public var id: String { definition.id }
    /// `Procedures/leak-test.yaml:31:5`, where the step is written.
    public var source: String { definition.source }

    public init(
        name: String, group: StepGroup, number: Int, kind: Kind, location: SourceLocation, forEach: ForEach? = nil,
        manualAction: String? = nil, hazard: Hazard? = nil
    ) {
        definition = Definition(
            name: name, group: group, number: number, kind: kind, location: location, forEach: forEach,
            manualAction: manualAction, hazard: hazard)
    }

    /// `hazard: <what can go wrong>` with `confirm_by: N`: the step does not start until N different, identified
    /// operators have accepted the hazard (`--yes` confirms none on a real station).
    public struct Hazard: Sendable, Hashable {
        public var text: String
        public var confirmBy: Int

        public init(text: String, confirmBy: Int = 1) {
            self.text = text
            self.confirmBy = confirmBy
        }
    }

    /// The same step with another kind (its expressions bound and checked).
    public func with(kind: Kind) -> Step {
        var step = Step(
            name: name, group: group, number: number, kind: kind, location: location, forEach: forEach,
            manualAction: manualAction, hazard: hazard)
        step.patternHint = patternHint
        step.retry = retry
        step.condition = condition
        return step
    }

    /// `for_each: compute_trays` (with `as: tray`, default `each`): the step runs once per member, with
    /// `each.point` naming that member's point, at most `concurrency` members at a time.
    public struct ForEach: Sendable, Hashable {
        public var group: String
        public var alias: String
        public var concurrency: Int

        public init(group: String, alias: String = "each", concurrency: Int = 32) {
            self.group = group
            self.alias = alias
            self.concurrency = concurrency
        }
    }

    /// Does this step change the rack (as opposed to reading it or talking to the operator)?
    public var actuates: Bool {
        switch kind {
        case .set, .action: true
        default: false
        }
    }
}

/// A procedure parameter: always a quantity with a unit, with an optional allowed range.
public struct Parameter: Sendable {
    public var name: String
    /// For a text parameter (a release name), its default; `defaultValue` is then unused.
    public var text: String?
    /// A text parameter's allowed form.
    public var pattern: String?
    public var defaultValue: Quantity
    public var minimum: Quantity?
    public var maximum: Quantity?
    public var description: String
    public var location: SourceLocation
    /// Marked `limit: true`: a limit even where no `limits:` uses it (a release a firmware check compares with).
    public var markedLimit = false
}

/// A scripted acceptance procedure, as loaded from `Procedures/<id>.yaml`.
public struct Procedure: Sendable {
    public var id: String
    public var title: String
    public var version: String
    public var description: String
    /// The rack profile it applies to (`gb200-nvl72`).
    public var rack: String
    public var estimatedDuration: Quantity?
    public var parameters: [Parameter]
    public var setup: [Step]
    public var main: [Step]
    public var cleanup: [Step]
    public var file: String
    /// SHA-256 of the file's bytes, hex.
    public var sha256: String

    public func steps(in group: StepGroup) -> [Step] {
        switch group {
        case .setup: setup
        case .main: main
        case .cleanup: cleanup
        }
    }

    public var allSteps: [Step] { setup + main + cleanup }

    /// What each step takes by plan, in running order (setup, main, cleanup), with these parameter values: a wait
    /// its time, a sample its hold. A step whose time is the rack's or the operator's (a wait-until, a prompt, a
    /// read) plans none: the sum is the least the run can take, which for a test made of holds is most of it.
    public func plannedSeconds(parameters: [String: Quantity]) -> [(id: String, seconds: Double)] {
        let values = parameters.mapValues { Value.quantity($0) }
        return allSteps.map { step in
            let planned: Expression? =
                switch step.kind {
                case let .wait(duration): duration
                case let .sample(_, _, duration, _, _): duration
                default: nil
                }
            return (step.id, planned.flatMap { try? Runner.duration($0, values).seconds } ?? 0)
        }
    }

    /// Every operator input the procedure asks for, with its pattern.
    public var inputs: [(name: String, pattern: String?, step: Step)] {
        allSteps.compactMap { step in
            if case let .prompt(_, input?, pattern) = step.kind { return (input, pattern, step) }
            return nil
        }
    }

    public func parameter(named name: String) -> Parameter? { parameters.first { $0.name == name } }

    /// The device groups `for_each` steps run over, in order of first use.
    public var deviceGroups: [String] {
        var groups: [String] = []
        for step in allSteps {
            if let group = step.forEach?.group, !groups.contains(group) { groups.append(group) }
        }
        return groups
    }

    /// The device instances the procedure reads or writes, in order of first use.
    public var devices: [String] {
        var names: [String] = []
        for step in allSteps {
            for device in devices(of: step) where !names.contains(device) { names.append(device) }
        }
        return names
    }

    /// The device instances one step reads or writes (its condition and retry delay included; a `for_each` step's
    /// members are its group's, not named here), in the order written.
    public func devices(of step: Step) -> [String] {
        var names: [String] = []
        var alias: String?
        func note(_ reference: String) {
            guard let dot = reference.firstIndex(of: "."), parameter(named: reference) == nil else { return }
            let device = String(reference[..<dot])
            if device != alias, !names.contains(device) { names.append(device) }
        }
        step.condition?.expression.references.forEach(note)
        step.retry?.delay?.references.forEach(note)
        alias = step.forEach?.alias
        switch step.kind {
        case .prompt: break
        case let .set(point, value):
            note(point)
            value.references.forEach(note)
        case let .measure(expression, limits, _):
            ([expression] + [limits.low, limits.high].compactMap { $0 }).flatMap(\.references).forEach(note)
        case let .wait(duration): duration.references.forEach(note)
        case let .waitUntil(condition, timeout, poll):
            [condition, timeout, poll].flatMap(\.references).forEach(note)
        case let .sample(points, every, duration, _, failIf):
            points.forEach(note)
            ([every, duration] + [failIf].compactMap { $0 }).flatMap(\.references).forEach(note)
        case let .check(condition): condition.references.forEach(note)
        case let .action(action, value):
            note(action)
            value?.references.forEach(note)
        case let .firmware(points, release):
            points.forEach(note)
            release.references.forEach(note)
        }
        return names
    }

    /// The parameters that are limits: marked `limit: true`, or used in any step's or measurement's `limits:`.
    /// Overriding one is a deviation from the procedure (refused, or recorded and approved); the rest are tunable.
    public var limitParameters: Set<String> {
        var names = Set(parameters.filter(\.markedLimit).map(\.name))
        for step in allSteps {
            var limits: [Limits] = []
            switch step.kind {
            case let .measure(_, stepLimits, _): limits.append(stepLimits)
            case let .sample(_, _, _, measurements, _): limits += measurements.map(\.limits)
            default: break
            }
            for reference in limits.flatMap({ [$0.low, $0.high].compactMap { $0 } }).flatMap(\.references)
            where parameter(named: reference) != nil {
                names.insert(reference)
            }
        }
        return names
    }

    /// Parameter values: defaults, overridden by `name=value` pairs checked for unit and range.
    public func resolveParameters(_ overrides: [String: String]) throws(ParameterError) -> [String: Quantity] {
        var values: [String: Quantity] = [:]
        for parameter in parameters where parameter.text == nil { values[parameter.name] = parameter.defaultValue }
        for (name, text) in overrides.sorted(by: { $0.key < $1.key }) {
            guard let parameter = parameter(named: name) else {
                throw .unknown(name, known: parameters.map(\.name))
            }
            if parameter.text != nil { continue }
            let quantity: Quantity
            do {
                quantity = try Quantity.parse(text)
            } catch {
                throw .invalid(name, "\(error); the default is \(parameter.defaultValue)")
            }
            guard quantity.dimension == parameter.defaultValue.dimension else {
                throw .invalid(
                    name,
                    "\(quantity) is a \(quantity.dimension), but '\(name)' is a "
                        + "\(parameter.defaultValue.dimension) (default \(parameter.defaultValue))")
            }
            if let minimum = parameter.minimum, let converted = try? minimum.converted(to: quantity.unit),
                quantity.value < converted.value
            {
                throw .invalid(name, "\(quantity) is below the minimum \(minimum)")
            }
            if let maximum = parameter.maximum, let converted = try? maximum.converted(to: quantity.unit),
                quantity.value > converted.value
            {
                throw .invalid(name, "\(quantity) is above the maximum \(maximum)")
            }
            values[name] = quantity
        }
        return values
    }
}

extension Procedure {
    /// Text parameter values (a release name): defaults, overridden by `name=value` pairs checked against the
    /// parameter's pattern.
    public func resolveTextParameters(_ overrides: [String: String]) throws(ParameterError) -> [String: String] {
        var values: [String: String] = [:]
        for parameter in parameters {
            guard let text = parameter.text else { continue }
            let value = overrides[parameter.name] ?? text
            if let pattern = parameter.pattern, !Runner.matches(value, pattern) {
                throw .invalid(parameter.name, "'\(value)' does not match \(pattern)")
            }
            values[parameter.name] = value
        }
        return values
    }

    /// Names that `for_each` steps use for their members (`each`), so devices do not claim them.
    public var memberAliases: Set<String> { Set(allSteps.compactMap { $0.forEach?.alias }) }
}

public enum ParameterError: Error, Sendable, CustomStringConvertible {
    case unknown(String, known: [String])
    case invalid(String, String)

    public var description: String {
        switch self {
        case let .unknown(name, known):
            "unknown parameter '\(name)'; this procedure has \(known.isEmpty ? "none" : known.joined(separator: ", "))"
        case let .invalid(name, message):
            "parameter '\(name)': \(message)"
        }
    }
}
