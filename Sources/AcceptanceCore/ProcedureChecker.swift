/// Checks a parsed procedure against the rack and device profiles: names, access, types and units.
///
/// It also binds every expression (bare enumeration states become values), so the procedure it leaves behind is
/// the one the runner executes.
struct ProcedureChecker {
    var procedure: Procedure
    let configuration: RackConfiguration?
    var sink: DiagnosticSink
    let referenceLocations: [String: SourceLocation]
    /// While checking a `for_each` step: its member name and a member device standing for all of them.
    var aliases: [String: String] = [:]
    /// The operator inputs' names, found once: looked up for every name in every expression.
    let inputNames: Set<String>

    init(
        procedure: Procedure, configuration: RackConfiguration?, sink: DiagnosticSink,
        referenceLocations: [String: SourceLocation]
    ) {
        self.procedure = procedure
        self.configuration = configuration
        self.sink = sink
        self.referenceLocations = referenceLocations
        self.inputNames = Set(procedure.inputs.map(\.name))
    }

    mutating func error(_ message: String, at location: SourceLocation?) {
        report(.error, message, at: location)
    }

    mutating func report(_ severity: Diagnostic.Severity, _ message: String, at location: SourceLocation?) {
        let location = location ?? SourceLocation(file: procedure.file, line: 1, column: 1)
        sink.report(severity, message, line: location.line, column: location.column)
    }

    /// The static type of a name: a parameter, an operator input, or a point.
    func type(of name: String) -> ValueType? {
        if let parameter = procedure.parameter(named: name) {
            return parameter.text != nil ? .text(choices: nil) : .quantity(parameter.defaultValue.dimension)
        }
        if inputNames.contains(name) { return .text(choices: nil) }
        guard name.contains("."), let configuration else { return nil }
        if let (_, point) = configuration.resolve(name, aliases: aliases) { return point.valueType }
        // An unknown point; the binder reports it (with a suggestion added below).
        return nil
    }

    /// Binds an expression, reporting type and name errors at their columns.
    mutating func bind(
        _ expression: Expression, expecting expected: ValueType? = nil, what: String
    ) -> (Expression, ValueType) {
        // Without the rack's profiles (they failed to load, and said why), points cannot be checked: say nothing more.
        if configuration == nil { return (expression, .unknown) }
        let checker = self
        let rack = configuration?.rack
        let (bound, type, errors) = expression.bind(
            expecting: expected, types: { checker.type(of: $0) }, groups: { rack?.group(named: $0)?.members })
        for error in errors {
            var message = "\(what): \(error.message)"
            if message.contains("unknown point"), let configuration {
                let name = error.message.split(separator: "'").dropFirst().first.map(String.init) ?? ""
                if let alias = aliases.keys.first(where: { name.hasPrefix("\($0).") }), let member = aliases[alias],
                    let profile = configuration.profile(of: member)
                {
                    if let suggestion = closest(to: name, in: profile.points.map { "\(alias).\($0.name)" }) {
                        message += "; did you mean '\(suggestion)'?"
                    } else {
                        message += " (\(profile.model) has \(profile.points.map(\.name).joined(separator: ", ")))"
                    }
                } else if configuration.rack.devices.contains(where: { name.hasPrefix("\($0.name).") }) {
                    if let suggestion = closest(to: name, in: configuration.allPointNames) {
                        message += "; did you mean '\(suggestion)'?"
                    }
                } else {
                    message +=
                        " (rack '\(configuration.rack.id)' has devices "
                        + "\(configuration.rack.devices.map(\.name).joined(separator: ", ")))"
                }
            }
            self.error(message, at: expression.location(ofOffset: error.offset))
        }
        if let expected, type != .unknown, errors.isEmpty, !Self.matches(type, expected) {
            self.error("\(what) must be \(expected), but '\(expression.source)' is \(type)", at: expression.location)
            return (bound, .unknown)
        }
        return (bound, type)
    }

    static func matches(_ type: ValueType, _ expected: ValueType) -> Bool {
        switch (type, expected) {
        case (.text, .text): true
        default: type == expected
        }
    }

    mutating func check() {
        var names = Set<String>()
        for parameter in procedure.parameters {
            if !names.insert(parameter.name).inserted {
                error("parameter '\(parameter.name)' is defined twice", at: parameter.location)
            }
            if let configuration, configuration.rack.devices.contains(where: { $0.name == parameter.name }) {
                error("parameter '\(parameter.name)' has the name of a device", at: parameter.location)
            }
            if let minimum = parameter.minimum, let maximum = parameter.maximum,
                let converted = try? maximum.converted(to: minimum.unit), minimum.value > converted.value
            {
                error("parameter '\(parameter.name)': min \(minimum) is above max \(maximum)", at: parameter.location)
            }
            let value = parameter.defaultValue
            if let minimum = parameter.minimum, let bound = try? minimum.converted(to: value.unit),
                value.value < bound.value
            {
                error(
                    "parameter '\(parameter.name)': default \(value) is below its min \(minimum)",
                    at: parameter.location)
            }
            if let maximum = parameter.maximum, let bound = try? maximum.converted(to: value.unit),
                value.value > bound.value
            {
                error(
                    "parameter '\(parameter.name)': default \(value) is above its max \(maximum)",
                    at: parameter.location)
            }
        }
        if procedure.main.isEmpty, procedure.setup.isEmpty {
            report(.warning, "procedure has no steps", at: nil)
        }
        procedure.setup = procedure.setup.map { check($0) }
        procedure.main = procedure.main.map { check($0) }
        procedure.cleanup = procedure.cleanup.map { check($0) }
    }

    mutating func checkTime(_ expression: Expression, what: String) -> Expression {
        let (bound, type) = bind(expression, what: what)
        if type != .unknown, type != .quantity(.time) {
            error(
                "\(what) must be a time such as '30 s' or '10 min', but '\(expression.source)' is \(type)",
                at: expression.location)
        } else if type == .quantity(.time) {
            // A time made of literals and parameters is known now: one beyond any step's reach (`wait: 1e30 h`) or
            // below zero is refused here, not found out at run time.
            var values: [String: Value] = [:]
            for name in bound.references {
                guard let parameter = procedure.parameter(named: name), parameter.text == nil else { return bound }
                values[name] = .quantity(parameter.defaultValue)
            }
            if case let .quantity(quantity)? = try? bound.evaluate(values), let seconds = quantity.duration?.seconds {
                if seconds < 0 {
                    error("\(what) is \(quantity), below zero", at: expression.location)
                } else if seconds > Self.longestStepTime {
                    error(
                        "\(what) is \(quantity); no step may take longer than 7 days", at: expression.location)
                }
            } else if case let .quantity(quantity)? = try? bound.evaluate(values), quantity.duration == nil {
                error("\(what) is \(quantity), beyond any time a run can measure", at: expression.location)
            }
        }
        return bound
    }

    /// The longest wait, timeout, poll interval or sampling period a procedure may ask for, in seconds.
    static let longestStepTime = 7.0 * 24 * 3600

    mutating func checkPoint(_ reference: String, step: Step) -> PointDefinition? {
        let location = referenceLocations["\(step.id):\(reference)"] ?? step.location
        guard let configuration else { return nil }
        if let (_, point) = configuration.resolve(reference, aliases: aliases) { return point }
        var message = "unknown point '\(reference)'"
        if let alias = aliases.keys.first, reference.hasPrefix("\(alias)."), let member = aliases[alias],
            let profile = configuration.profile(of: member)
        {
            let names = profile.points.map { "\(alias).\($0.name)" }
            if let suggestion = closest(to: reference, in: names) {
                error(message + "; did you mean '\(suggestion)'?", at: location)
                return nil
            }
        }
        if let suggestion = closest(to: reference, in: configuration.allPointNames) {
            message += "; did you mean '\(suggestion)'?"
        }
        error(message, at: location)
        return nil
    }

    mutating func checkLimits(_ limits: Limits, for type: ValueType, what: String) -> Limits {
        var bound = Limits()
        if limits.isEmpty { return bound }
        switch type {
        case .bool, .text:
            error(
                "\(what) is \(type): it cannot have low/high limits; use a check step instead",
                at: (limits.low ?? limits.high)?.location)
            return limits
        default: break
        }
        if let low = limits.low { bound.low = bind(low, expecting: type == .unknown ? nil : type, what: "low limit").0 }
        if let high = limits.high {
            bound.high = bind(high, expecting: type == .unknown ? nil : type, what: "high limit").0
        }
        // low > high can only be judged when both are known before the run: constants and parameters.
        if let low = bound.low, let high = bound.high, let lowValue = constantValue(low),
            let highValue = constantValue(high),
            case .bool(true)? = try? ExpressionNode.apply(.greater, lowValue, highValue, offset: 0)
        {
            error("low limit \(lowValue) is above high limit \(highValue): nothing can pass", at: low.location)
        }
        return bound
    }

    /// The value of an expression that reads only parameters (at their defaults).
    func constantValue(_ expression: Expression) -> Value? {
        var values: [String: Value] = [:]
        for name in expression.references {
            guard let parameter = procedure.parameter(named: name) else { return nil }
            values[name] = parameter.text.map { .text($0) } ?? .quantity(parameter.defaultValue)
        }
        return try? expression.evaluate(values)
    }

    mutating func check(_ step: Step) -> Step {
        aliases = [:]
        if let each = step.forEach, let configuration {
            guard let group = configuration.rack.group(named: each.group), let first = group.members.first else {
                let known = configuration.rack.groups.map(\.name)
                error(
                    "rack '\(configuration.rack.id)' has no device group '\(each.group)'"
                        + (known.isEmpty ? "" : "; it has \(known.joined(separator: ", "))"), at: step.location)
                return step
            }
            if configuration.rack.devices.contains(where: { $0.name == each.alias }) {
                error("'as: \(each.alias)' is the name of a device; pick another member name", at: step.location)
            }
            switch step.kind {
            case .prompt, .wait, .sample:
                error(
                    "a \(step.kind.keyword) step cannot run for_each member; only set, measure, check, wait-until, "
                        + "action and firmware can", at: step.location)
            default: break
            }
            aliases = [each.alias: first]
        }
        defer { aliases = [:] }
        var step = step
        // Judged once, before the step (and before any member of a for_each step): parameters, inputs and points.
        if let condition = step.condition {
            let members = aliases
            aliases = [:]
            step.condition?.expression =
                bind(condition.expression, expecting: .bool, what: condition.kind.rawValue).0
            aliases = members
        }
        if let delay = step.retry?.delay {
            step.retry?.delay = checkTime(delay, what: "retry delay")
        }
        switch step.kind {
        case let .prompt(text, input, pattern):
            if step.group == .cleanup, input != nil {
                report(
                    .warning, "cleanup asks the operator for a value: cleanup must be able to run unattended",
                    at: step.location)
            }
            if let input, procedure.parameter(named: input) != nil {
                error("input '\(input)' has the name of a parameter", at: step.location)
            }
            step = step.with(kind: .prompt(text: text, input: input, pattern: pattern))
        case let .set(reference, value):
            let point = checkPoint(reference, step: step)
            if let point, point.access != .readWrite {
                error(
                    "'\(reference)' is read-only (\(point.whereabouts)); it cannot be set",
                    at: referenceLocations["\(step.id):\(reference)"] ?? step.location)
            }
            let (bound, _) = bind(value, expecting: point?.valueType, what: "value for \(reference)")
            step = step.with(kind: .set(point: reference, value: bound))
        case let .measure(expression, limits, unit):
            let (bound, type) = bind(expression, what: "measure")
            if let unit, case let .quantity(dimension) = type, unit.dimension != dimension {
                error(
                    "unit \(unit) is a \(unit.dimension), but '\(expression.source)' is a \(dimension)",
                    at: step.location)
            }
            step = step.with(
                kind: .measure(
                    expression: bound, limits: checkLimits(limits, for: type, what: "'\(expression.source)'"),
                    unit: unit))
        case let .wait(duration):
            step = step.with(kind: .wait(checkTime(duration, what: "wait")))
        case let .waitUntil(condition, timeout, poll):
            let (bound, _) = bind(condition, expecting: .bool, what: "wait-until")
            step = step.with(
                kind: .waitUntil(
                    condition: bound, timeout: checkTime(timeout, what: "timeout"),
                    poll: checkTime(poll, what: "poll")))
        case let .sample(points, every, duration, measurements, failIf):
            var types: [String: ValueType] = [:]
            for reference in points {
                guard let point = checkPoint(reference, step: step) else { continue }
                switch point.valueType {
                case .number, .quantity: types[reference] = point.valueType
                default:
                    error(
                        "'\(reference)' is \(point.valueType); only numeric points can be sampled",
                        at: referenceLocations["\(step.id):\(reference)"] ?? step.location)
                }
            }
            var checked: [SeriesMeasurement] = []
            for var measurement in measurements {
                let type = types[measurement.point].map { measurement.statistic.resultType(of: $0) } ?? .unknown
                if let unit = measurement.unit, case let .quantity(dimension) = type, unit.dimension != dimension {
                    error(
                        "unit \(unit) is a \(unit.dimension), but the \(measurement.statistic.rawValue) of "
                            + "\(measurement.point) is a \(dimension)", at: measurement.location)
                }
                // Limits of a series are judged after sampling, from parameters and inputs only.
                for limit in [measurement.limits.low, measurement.limits.high].compactMap({ $0 }) {
                    for name in limit.references where name.contains(".") && procedure.parameter(named: name) == nil {
                        error(
                            "limits of a sampled series may use parameters and inputs, not the point '\(name)'",
                            at: limit.location)
                    }
                }
                measurement.limits = checkLimits(measurement.limits, for: type, what: measurement.name)
                checked.append(measurement)
            }
            step = step.with(
                kind: .sample(
                    points: points, every: checkTime(every, what: "every"),
                    duration: checkTime(duration, what: "for"), measurements: checked,
                    failIf: failIf.map { bind($0, expecting: .bool, what: "fail_if").0 }))
        case let .check(condition):
            step = step.with(kind: .check(bind(condition, expecting: .bool, what: "check").0))
        case let .action(reference, value):
            let location = referenceLocations["\(step.id):\(reference)"] ?? step.location
            guard let configuration else { break }
            guard let (_, action) = configuration.resolveAction(reference, aliases: aliases) else {
                var message = "unknown action '\(reference)'"
                if let (_, profile, _) = configuration.split(reference, aliases: aliases) {
                    message +=
                        profile.actions.isEmpty
                        ? " (\(profile.model) has no actions)"
                        : "; \(profile.model) has \(profile.actions.map(\.name).joined(separator: ", "))"
                }
                error(message, at: location)
                break
            }
            switch (action.parameter, value) {
            case (nil, nil): break
            case (nil, let value?):
                error("action '\(reference)' takes no value", at: value.location)
            case (let parameter?, nil):
                error(
                    "action '\(reference)' needs a 'value' for \(parameter): \(action.values.joined(separator: ", "))",
                    at: location)
            case (let parameter?, let value?):
                let (bound, _) = bind(value, expecting: .text(choices: action.values), what: "\(parameter)")
                step = step.with(kind: .action(action: reference, value: bound))
            }
        case let .firmware(points, release):
            for reference in points {
                guard let point = checkPoint(reference, step: step) else { continue }
                if case .text = point.valueType {
                } else {
                    error(
                        "'\(reference)' is \(point.valueType); firmware versions are text points",
                        at: referenceLocations["\(step.id):\(reference)"] ?? step.location)
                }
            }
            step = step.with(
                kind: .firmware(
                    points: points, release: bind(release, expecting: .text(choices: nil), what: "release").0))
        }
        return step
    }
}
