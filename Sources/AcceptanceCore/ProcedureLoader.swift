import Crypto
import Foundation
import Yams

/// Loads procedure files and checks them against the rack and device profiles, reporting every problem at once.
public struct ProcedureLoader: Sendable {
    /// Where rack and device profiles live (`Fixtures/`).
    public var fixtures: String
    /// Group sizes that differ from the rack profile's (a station's or scenario's rack has 6 power shelves).
    public var groupCounts: [String: Int]
    /// Models a station says are fitted, by device or group name, instead of the rack profile's.
    public var models: [String: String]
    /// The device protocols profiles may use.
    public var protocols: DeviceProtocols

    public init(
        fixtures: String, protocols: DeviceProtocols, groupCounts: [String: Int] = [:],
        models: [String: String] = [:]
    ) {
        self.fixtures = fixtures
        self.protocols = protocols
        self.groupCounts = groupCounts
        self.models = models
    }

    public struct Result: Sendable {
        public var procedure: Procedure?
        public var diagnostics: [Diagnostic]
        public var configuration: RackConfiguration?

        public var hasErrors: Bool { procedure == nil || diagnostics.contains { $0.severity == .error } }
    }

    /// Loads and validates; throws all diagnostics if there is any error.
    public func load(path: String) throws(DiagnosticsError) -> (Procedure, RackConfiguration) {
        let result = check(path: path)
        guard let procedure = result.procedure, let configuration = result.configuration, !result.hasErrors else {
            throw DiagnosticsError(result.diagnostics)
        }
        return (procedure, configuration)
    }

    /// Parses and validates one file, collecting every diagnostic.
    public func check(path: String) -> Result {
        var unread = DiagnosticSink(file: path, text: "")
        guard let (data, text) = YAMLSource.read(path: path, into: &unread) else {
            return Result(procedure: nil, diagnostics: unread.diagnostics)
        }
        var sink = DiagnosticSink(file: path, text: text)
        let source = YAMLSource.parse(text, path: path, into: &sink)
        var reader = YAMLReader(sink: sink)
        guard let tree = source.treeForChecking else {
            return Result(procedure: nil, diagnostics: reader.sink.diagnostics)
        }
        var parser = ProcedureParser(reader: reader, file: path)
        let parsed = parser.parseProcedure(tree)
        reader = parser.reader
        var configuration: RackConfiguration?
        if var procedure = parsed {
            procedure.sha256 = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
            if !procedure.rack.isEmpty {
                do {
                    configuration = try RackConfiguration.load(
                        rackID: procedure.rack, fixtures: fixtures, protocols: protocols,
                        counts: groupCounts, models: models)
                } catch {
                    for diagnostic in error.diagnostics { reader.sink.append(diagnostic) }
                }
            }
            var checker = ProcedureChecker(
                procedure: procedure, configuration: configuration, sink: reader.sink,
                referenceLocations: parser.referenceLocations)
            checker.check()
            reader.sink = checker.sink
            // Only a file that parsed cleanly can run: a recovered tree is for diagnostics only.
            return Result(
                procedure: source.root == nil ? nil : checker.procedure, diagnostics: sortedDiagnostics(reader.sink),
                configuration: configuration)
        }
        return Result(procedure: nil, diagnostics: sortedDiagnostics(reader.sink), configuration: configuration)
    }

    func sortedDiagnostics(_ sink: DiagnosticSink) -> [Diagnostic] {
        sink.diagnostics.sorted {
            ($0.location.file, $0.location.line, $0.location.column) < (
                $1.location.file, $1.location.line, $1.location.column
            )
        }
    }
}

/// Turns the YAML tree into a `Procedure`, reporting structural problems.
struct ProcedureParser {
    var reader: YAMLReader
    let file: String
    /// Where points named outside expressions (set targets, sampled points) are written, by step.
    var referenceLocations: [String: SourceLocation] = [:]

    init(reader: YAMLReader, file: String) {
        self.reader = reader
        self.file = file
    }

    static let topKeys = [
        "id", "title", "version", "description", "rack", "estimated_duration", "parameters", "setup",
        "main", "cleanup",
    ]
    static let stepKinds = ["prompt", "set", "measure", "wait", "wait-until", "sample", "check", "action", "firmware"]
    static let commonStepKeys = [
        "name", "note", "for_each", "as", "concurrency", "hazard", "confirm_by", "retry", "skip_if", "only_if",
    ]
    static let kindKeys: [String: [String]] = [
        "prompt": ["input", "pattern", "pattern_hint", "manual_action"],
        "set": ["value"],
        "measure": ["limits", "unit"],
        "wait": [],
        "wait-until": ["timeout", "poll"],
        "sample": ["every", "for", "measurements", "fail_if"],
        "check": [],
        "action": ["value"],
        "firmware": ["release"],
    ]

    mutating func parseProcedure(_ root: Node) -> Procedure? {
        guard let entries = reader.mapping(root, "procedure") else { return nil }
        reader.rejectUnknownKeys(entries, allowed: Self.topKeys, in: "procedure")
        var procedure = Procedure(
            id: "", title: "", version: "", description: "", rack: "", estimatedDuration: nil,
            parameters: [], setup: [], main: [], cleanup: [], file: file, sha256: "")
        for (key, _, value) in entries {
            switch key {
            case "id":
                procedure.id = reader.scalar(value, "id") ?? ""
                let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))
                if procedure.id.unicodeScalars.contains(where: { !allowed.contains($0) }) || procedure.id.hasPrefix(".")
                {
                    reader.error("id may use letters, digits, '-', '_' and '.', and not start with '.'", at: value)
                }
            case "title": procedure.title = reader.scalar(value, "title") ?? ""
            case "version": procedure.version = reader.scalar(value, "version") ?? ""
            case "description": procedure.description = reader.scalar(value, "description") ?? ""
            case "rack": procedure.rack = reader.scalar(value, "rack") ?? ""
            case "estimated_duration":
                if let quantity = reader.quantity(value, "estimated_duration") {
                    if quantity.dimension == .time {
                        procedure.estimatedDuration = quantity
                    } else {
                        reader.error("estimated_duration must be a time (for example 15 min)", at: value)
                    }
                }
            case "parameters": procedure.parameters = parseParameters(value)
            case "setup": procedure.setup = parseSteps(value, group: .setup)
            case "main": procedure.main = parseSteps(value, group: .main)
            case "cleanup": procedure.cleanup = parseSteps(value, group: .cleanup)
            default: break
            }
        }
        for required in ["id", "title", "version", "rack"] where !entries.contains(where: { $0.key == required }) {
            reader.error("procedure needs '\(required)'", at: root)
        }
        if !entries.contains(where: { $0.key == "main" }) {
            reader.error("procedure needs a 'main' list of steps", at: root)
        }
        return procedure
    }

    /// The most steps one group may list (the shipped procedures have under 30; a 10,000-step file loads in
    /// well under a second).
    static let maximumSteps = 50_000

    mutating func parseSteps(_ node: Node, group: StepGroup) -> [Step] {
        if case let .scalar(scalar) = node, scalar.style == .plain,
            ["", "~", "null", "Null", "NULL"].contains(scalar.string)
        {
            return []
        }
        guard let items = reader.sequence(node, "'\(group.rawValue)'") else { return [] }
        guard items.count <= Self.maximumSteps else {
            reader.error(
                "'\(group.rawValue)' has \(items.count) steps; a group is limited to \(Self.maximumSteps)", at: node)
            return []
        }
        var steps: [Step] = []
        for item in items {
            if let step = parseStep(item, group: group, number: steps.count + 1) { steps.append(step) }
        }
        return steps
    }

    mutating func expression(_ node: Node, _ what: String) -> Expression? {
        reader.expression(node, what)
    }

    mutating func parseLimits(_ node: Node) -> Limits? {
        guard let fields = reader.mapping(node, "limits") else { return nil }
        reader.rejectUnknownKeys(fields, allowed: ["low", "high"], in: "limits")
        var limits = Limits()
        for (key, _, value) in fields {
            switch key {
            case "low": limits.low = expression(value, "low limit")
            case "high": limits.high = expression(value, "high limit")
            default: break
            }
        }
        if limits.isEmpty { reader.error("limits need 'low', 'high' or both", at: node) }
        return limits
    }

    mutating func parseUnit(_ node: Node) -> PhysicalUnit? {
        guard let symbol = reader.scalar(node, "unit") else { return nil }
        guard let unit = PhysicalUnit.named(symbol) else {
            reader.error("unknown unit '\(symbol)'", at: node)
            return nil
        }
        return unit
    }

    mutating func parseStep(_ node: Node, group: StepGroup, number: Int) -> Step? {
        guard let fields = reader.mapping(node, "a step") else { return nil }
        let kinds = fields.filter { Self.stepKinds.contains($0.key) }
        guard let kindEntry = kinds.first else {
            var message = "a step needs one of: \(Self.stepKinds.joined(separator: ", "))"
            if let unknown = fields.first(where: { !Self.commonStepKeys.contains($0.key) }),
                let suggestion = closest(to: unknown.key, in: Self.stepKinds)
            {
                message += "; did you mean '\(suggestion)' instead of '\(unknown.key)'?"
            }
            reader.error(message, at: node)
            return nil
        }
        if kinds.count > 1 {
            reader.error(
                "a step has exactly one kind, but this one has \(kinds.map(\.key).joined(separator: " and "))",
                at: kinds[1].keyNode)
        }
        let kindName = kindEntry.key
        reader.rejectUnknownKeys(
            fields, allowed: Self.commonStepKeys + [kindName] + (Self.kindKeys[kindName] ?? []),
            in: "a \(kindName) step")
        func field(_ key: String) -> Node? { fields.first { $0.key == key }?.value }
        let location = reader.location(of: kindEntry.keyNode)
        let value = kindEntry.value
        var name = field("name").flatMap { reader.scalar($0, "name") }
        let kind: Step.Kind
        switch kindName {
        case "prompt":
            guard let text = reader.scalar(value, "prompt") else { return nil }
            let input = field("input").flatMap { reader.scalar($0, "input") }
            let pattern = field("pattern").flatMap { reader.scalar($0, "pattern") }
            if let pattern, let patternNode = field("pattern"), (try? NSRegularExpression(pattern: pattern)) == nil {
                reader.error("pattern is not a valid regular expression", at: patternNode)
            }
            if pattern != nil, input == nil, let patternNode = field("pattern") {
                reader.error("'pattern' needs 'input' (the name the value is stored under)", at: patternNode)
            }
            kind = .prompt(text: text, input: input, pattern: pattern)
            name = name ?? (input.map { "Enter \($0)" } ?? String(text.prefix(60)))
        case "set":
            guard let point = reader.scalar(value, "set") else { return nil }
            guard let valueNode = field("value") else {
                reader.error("a set step needs a 'value'", at: kindEntry.keyNode)
                return nil
            }
            guard let expression = expression(valueNode, "value") else { return nil }
            referenceLocations["\(group.rawValue).\(number):\(point)"] = reader.location(of: value)
            kind = .set(point: point, value: expression)
            name = name ?? "Set \(point) to \(expression.source)"
        case "measure":
            guard let expression = expression(value, "measure") else { return nil }
            let limits = field("limits").flatMap { parseLimits($0) } ?? Limits()
            let unit = field("unit").flatMap { parseUnit($0) }
            kind = .measure(expression: expression, limits: limits, unit: unit)
            name = name ?? expression.source
        case "wait":
            guard let duration = expression(value, "wait") else { return nil }
            kind = .wait(duration)
            name = name ?? "Wait \(duration.source)"
        case "wait-until":
            guard let condition = expression(value, "wait-until") else { return nil }
            guard let timeoutNode = field("timeout") else {
                reader.error("wait-until needs a 'timeout' (for example 'timeout: 5 min')", at: kindEntry.keyNode)
                return nil
            }
            guard let timeout = expression(timeoutNode, "timeout") else { return nil }
            let poll =
                field("poll").flatMap { expression($0, "poll") }
                ?? Expression.constant(.quantity(.seconds(1)), source: "1 s")
            kind = .waitUntil(condition: condition, timeout: timeout, poll: poll)
            name = name ?? "Wait until \(condition.source)"
        case "sample":
            let pointNodes: [Node]
            if case .sequence = value {
                pointNodes = reader.sequence(value, "sample") ?? []
            } else {
                pointNodes = [value]
            }
            var points: [String] = []
            for pointNode in pointNodes {
                if let point = reader.scalar(pointNode, "sampled point") {
                    points.append(point)
                    referenceLocations["\(group.rawValue).\(number):\(point)"] = reader.location(of: pointNode)
                }
            }
            guard let everyNode = field("every"), let forNode = field("for") else {
                reader.error(
                    "a sample step needs 'every' (the interval) and 'for' (the duration)", at: kindEntry.keyNode)
                return nil
            }
            guard let every = expression(everyNode, "every"), let duration = expression(forNode, "for") else {
                return nil
            }
            var measurements: [SeriesMeasurement] = []
            if let listNode = field("measurements") {
                for item in reader.sequence(listNode, "measurements") ?? [] {
                    if let measurement = parseSeriesMeasurement(item, sampled: points) {
                        measurements.append(measurement)
                    }
                }
            }
            let failIf = field("fail_if").flatMap { expression($0, "fail_if") }
            kind = .sample(points: points, every: every, duration: duration, measurements: measurements, failIf: failIf)
            name = name ?? "Sample \(points.joined(separator: ", "))"
        case "check":
            guard let condition = expression(value, "check") else { return nil }
            kind = .check(condition)
            name = name ?? "Check \(condition.source)"
        case "action":
            guard let action = reader.scalar(value, "action") else { return nil }
            referenceLocations["\(group.rawValue).\(number):\(action)"] = reader.location(of: value)
            let argument = field("value").flatMap { expression($0, "value") }
            kind = .action(action: action, value: argument)
            name = name ?? "\(action)\(argument.map { " \($0.source)" } ?? "")"
        case "firmware":
            let pointNodes: [Node]
            if case .sequence = value {
                pointNodes = reader.sequence(value, "firmware") ?? []
            } else {
                pointNodes = [value]
            }
            var points: [String] = []
            for pointNode in pointNodes {
                if let point = reader.scalar(pointNode, "firmware point") {
                    points.append(point)
                    referenceLocations["\(group.rawValue).\(number):\(point)"] = reader.location(of: pointNode)
                }
            }
            guard let releaseNode = field("release") else {
                reader.error(
                    "a firmware step needs 'release': a text parameter or a quoted release name", at: kindEntry.keyNode)
                return nil
            }
            guard let release = expression(releaseNode, "release") else { return nil }
            kind = .firmware(points: points, release: release)
            name = name ?? "Firmware of \(points.joined(separator: ", ")) matches release"
        default:
            return nil
        }
        var forEach: Step.ForEach?
        if let groupNode = field("for_each") {
            if let groupName = reader.scalar(groupNode, "for_each") {
                var each = Step.ForEach(group: groupName)
                if let aliasNode = field("as"), let alias = reader.scalar(aliasNode, "as") {
                    if alias.isEmpty || alias.contains(".") || alias.contains(" ") {
                        reader.error("'as' names the member: a single word such as 'tray'", at: aliasNode)
                    }
                    each.alias = alias
                }
                if let limitNode = field("concurrency"), let limit = reader.integer(limitNode, "concurrency") {
                    if (1...256).contains(limit) {
                        each.concurrency = limit
                    } else {
                        reader.error("concurrency must be 1 to 256", at: limitNode)
                    }
                }
                forEach = each
            }
        } else if let stray = field("as") ?? field("concurrency") {
            reader.error("'as' and 'concurrency' go with 'for_each'", at: stray)
        }
        var hazard: Step.Hazard?
        if let hazardNode = field("hazard"), let text = reader.scalar(hazardNode, "hazard") {
            if text.trimmingCharacters(in: .whitespaces).isEmpty {
                reader.error("'hazard' says what can go wrong (pressurises the loop to 300 kPa)", at: hazardNode)
            } else if group == .cleanup {
                reader.error(
                    "cleanup must run with nobody at the station (after Ctrl-C, a trip): a cleanup step cannot wait "
                        + "for a hazard confirmation", at: hazardNode)
            }
            hazard = Step.Hazard(text: text.trimmingCharacters(in: .whitespacesAndNewlines))
            if let countNode = field("confirm_by"), let count = reader.integer(countNode, "confirm_by") {
                if (1...3).contains(count) {
                    hazard?.confirmBy = count
                } else {
                    reader.error("confirm_by is how many different operators confirm: 1 to 3", at: countNode)
                }
            }
        } else if let stray = field("confirm_by") {
            reader.error("'confirm_by' goes with 'hazard'", at: stray)
        }
        var step = Step(
            name: name ?? kindName, group: group, number: number, kind: kind, location: location, forEach: forEach,
            manualAction: field("manual_action").flatMap { reader.scalar($0, "manual_action") }, hazard: hazard)
        step.retry = field("retry").flatMap { parseRetry($0, kind: kindName) }
        switch (field("skip_if"), field("only_if")) {
        case (_?, let only?):
            reader.error("a step has 'skip_if' or 'only_if', not both", at: only)
        case let (skip?, nil):
            step.condition = expression(skip, "skip_if").map { .init(kind: .skipIf, expression: $0) }
        case let (nil, only?):
            step.condition = expression(only, "only_if").map { .init(kind: .onlyIf, expression: $0) }
        case (nil, nil): break
        }
        if step.condition != nil, group == .cleanup {
            reader.error(
                "cleanup returns the rack to its safe state whatever happened: its steps always run (no skip_if or "
                    + "only_if)", at: field("skip_if") ?? field("only_if") ?? node)
        }
        if let hintNode = field("pattern_hint") {
            step.patternHint = reader.scalar(hintNode, "pattern_hint")
            if field("pattern") == nil { reader.error("'pattern_hint' describes a 'pattern' in words", at: hintNode) }
        }
        return step
    }

    mutating func parseSeriesMeasurement(_ node: Node, sampled: [String]) -> SeriesMeasurement? {
        guard let fields = reader.mapping(node, "a measurement") else { return nil }
        reader.rejectUnknownKeys(fields, allowed: ["name", "of", "statistic", "limits", "unit"], in: "a measurement")
        func field(_ key: String) -> Node? { fields.first { $0.key == key }?.value }
        guard let statisticNode = field("statistic"), let statisticText = reader.scalar(statisticNode, "statistic")
        else {
            reader.error(
                "a measurement needs a 'statistic' (\(SeriesStatistic.allCases.map(\.rawValue).joined(separator: ", ")))",
                at: node)
            return nil
        }
        guard let statistic = SeriesStatistic(rawValue: statisticText) else {
            var message =
                "unknown statistic '\(statisticText)'; use \(SeriesStatistic.allCases.map(\.rawValue).joined(separator: ", "))"
            if let suggestion = closest(to: statisticText, in: SeriesStatistic.allCases.map(\.rawValue)) {
                message += " (did you mean '\(suggestion)'?)"
            }
            reader.error(message, at: statisticNode)
            return nil
        }
        let point: String
        if let ofNode = field("of") {
            guard let text = reader.scalar(ofNode, "of") else { return nil }
            if !sampled.contains(text) {
                reader.error(
                    "'\(text)' is not sampled by this step (it samples \(sampled.joined(separator: ", ")))", at: ofNode)
            }
            point = text
        } else if sampled.count == 1 {
            point = sampled[0]
        } else {
            reader.error("a measurement of a step that samples several points needs 'of'", at: node)
            return nil
        }
        let limits = field("limits").flatMap { parseLimits($0) } ?? Limits()
        let unit = field("unit").flatMap { parseUnit($0) }
        let name = field("name").flatMap { reader.scalar($0, "name") } ?? "\(point) \(statistic.rawValue)"
        return SeriesMeasurement(
            name: name, point: point, statistic: statistic, limits: limits, unit: unit,
            location: reader.location(of: node))
    }
}
