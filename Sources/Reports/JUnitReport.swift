import AcceptanceCore
import Foundation

/// The run as JUnit XML (Jenkins/Ant dialect) for CI dashboards: one `testsuite`, a `testcase` per measurement (per
/// for_each member), named by step name. FAIL is a `failure`, ERROR and ABORTED are `error`s, SKIPPED is `skipped`;
/// times are wall-clock seconds.
public enum JUnitReport {
    public static func xml(_ record: RunRecord) -> String { xml([record]) }

    /// A procedure of a suite that did not run (it could not start, or the suite stopped before it), with why.
    public struct NotRun: Sendable {
        public var procedure: String
        public var verdict: Verdict
        public var message: String

        public init(procedure: String, verdict: Verdict, message: String) {
            self.procedure = procedure
            self.verdict = verdict
            self.message = message
        }
    }

    /// Several runs (a suite's procedures) as one document: a `testsuite` per run, and one per procedure that did
    /// not run, so a dashboard never shows a suite green that skipped or could not start a procedure.
    public static func xml(_ records: [RunRecord], name: String = "acceptance", notRun: [NotRun] = []) -> String {
        let suites = records.map(testsuite) + notRun.map(testsuite)
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out +=
            "<testsuites name=\(attribute(name)) tests=\"\(suites.map(\.tests).reduce(0, +))\" "
            + "failures=\"\(suites.map(\.failures).reduce(0, +))\" errors=\"\(suites.map(\.errors).reduce(0, +))\" "
            + "skipped=\"\(suites.map(\.skipped).reduce(0, +))\" time=\"\(seconds(suites.map(\.time).reduce(0, +)))\">\n"
        for suite in suites { out += suite.xml }
        out += "</testsuites>\n"
        return out
    }

    /// A procedure that did not run: one case, an error (it could not start) or skipped (the suite stopped first).
    static func testsuite(
        _ missing: NotRun
    ) -> (
        xml: String, tests: Int, failures: Int, errors: Int, skipped: Int, time: Double
    ) {
        let error = missing.verdict != .skipped
        var out =
            "  <testsuite name=\(attribute("\(missing.procedure) (not run)")) tests=\"1\" failures=\"0\" "
            + "errors=\"\(error ? 1 : 0)\" skipped=\"\(error ? 0 : 1)\" time=\"0.000\">\n"
        out += "    <testcase classname=\(attribute(missing.procedure)) name=\"run\" time=\"0.000\">\n"
        out +=
            error
            ? "      <error message=\(attribute(missing.message)) type=\"\(missing.verdict.rawValue)\"/>\n"
            : "      <skipped message=\(attribute(missing.message))/>\n"
        out += "    </testcase>\n  </testsuite>\n"
        return (out, 1, 0, error ? 1 : 0, error ? 0 : 1, 0)
    }

    /// One run's `testsuite` element, with its counts for the document's totals.
    static func testsuite(
        _ record: RunRecord
    ) -> (
        xml: String, tests: Int, failures: Int, errors: Int, skipped: Int, time: Double
    ) {
        var steps = record.steps
        // A run can end in ERROR or ABORTED with no step saying so (a record that could not be written, a stop
        // between steps): a dashboard must not show it green.
        if [.error, .aborted].contains(record.verdict), !steps.contains(where: { $0.verdict == record.verdict }) {
            steps.append(
                StepRecord(
                    id: "run", group: .cleanup, number: 0, name: "run verdict", kind: "run",
                    verdict: record.verdict, started: record.started, ended: record.ended,
                    error: record.message, source: record.procedure.file))
        }
        // Safety outcomes are test cases of their own: an interlock that tripped, and the safe-state check.
        for interlock in record.interlocks ?? [] {
            guard let trip = interlock.trip else { continue }
            steps.append(
                StepRecord(
                    id: "safety.interlock", group: .cleanup, number: 0, name: interlock.name, kind: "safety",
                    verdict: trip.verdict, started: trip.at, message: trip.summary,
                    error: trip.verdict == .error ? trip.summary : nil, source: "interlocks"))
        }
        if let safe = record.safeState {
            steps.append(
                StepRecord(
                    id: "safety", group: .cleanup, number: 0, name: "safe state", kind: "safety",
                    verdict: safe.verified ? .pass : .error, started: safe.at,
                    message: safe.devices.map {
                        "\($0.device): \($0.outcome.rawValue) (\($0.readings.joined(separator: ", ")))"
                    }
                    .joined(separator: "\n"),
                    error: safe.verified ? nil : safe.summary, source: "safe_state"))
        }
        let cases = steps.flatMap { Self.cases(of: $0, procedure: record.procedure.id) }
        let failures = cases.count { $0.verdict == .fail }
        let errors = cases.count { $0.verdict == .error || $0.verdict == .aborted }
        let skipped = cases.count { $0.verdict == .skipped }
        let time = record.clock.wallSeconds
        var out = ""
        out +=
            "  <testsuite name=\(attribute("\(record.procedure.id) \(record.procedure.version)\(record.isSimulated ? " SIMULATED" : "")")) "
            + "tests=\"\(cases.count)\" failures=\"\(failures)\" errors=\"\(errors)\" skipped=\"\(skipped)\" "
            + "time=\"\(seconds(time))\" timestamp=\(attribute(String(record.started.prefix(19)))) "
            + "hostname=\(attribute(record.station))>\n"
        out += "    <properties>\n"
        var properties: [(String, String)] = [
            ("run_id", record.runID), ("verdict", record.verdict.rawValue),
            ("rack_serial", record.rackSerial ?? ""), ("station", record.station),
            ("operator", record.operator ?? ""), ("procedure_sha256", record.procedure.sha256),
            ("clock", record.clock.kind.rawValue),
            // A dashboard must be able to tell a run on the built-in simulated rack from one on a real rack.
            ("simulated", record.isSimulated ? "true" : "false"),
        ]
        if let scenario = record.scenario { properties.append(("scenario", scenario)) }
        if let set = record.limitSet { properties.append(("limit_set", "\(set.name) sha256:\(set.sha256)")) }
        for (name, value) in record.parameters.sorted(by: { $0.key < $1.key }) {
            properties.append(("parameter.\(name)", value))
        }
        for deviation in record.deviations ?? [] {
            properties.append(("deviation.\(deviation.parameter)", deviation.summary))
        }
        for (name, value) in properties {
            out += "      <property name=\(attribute(name)) value=\(attribute(value))/>\n"
        }
        out += "    </properties>\n"
        for item in cases {
            out +=
                "    <testcase classname=\(attribute(item.classname)) name=\(attribute(item.name)) "
                + "time=\"\(seconds(item.time))\">\n"
            switch item.verdict {
            case .fail:
                out +=
                    "      <failure message=\(attribute(item.message ?? "FAIL")) type=\"FAIL\">\(text(item.detail))</failure>\n"
            case .error, .aborted:
                out +=
                    "      <error message=\(attribute(item.message ?? item.verdict.rawValue)) "
                    + "type=\"\(item.verdict.rawValue)\">\(text(item.detail))</error>\n"
            case .skipped:
                out += "      <skipped message=\(attribute(item.message ?? "skipped"))/>\n"
            case .pass:
                if !item.detail.isEmpty { out += "      <system-out>\(text(item.detail))</system-out>\n" }
            }
            out += "    </testcase>\n"
        }
        out += "  </testsuite>\n"
        return (out, cases.count, failures, errors, skipped, time)
    }

    /// One JUnit test case.
    struct Case {
        var classname: String
        var name: String
        var time: Double
        var verdict: Verdict
        var message: String?
        var detail: String
    }

    /// A step's test cases, named by the step's name (stable when steps are inserted or moved, unlike their
    /// numbers): one per measurement it judged, one per `for_each` member (and per member's measurement), else one
    /// for the step. Each carries its share of the step's wall-clock time; a failure's message is the value, the
    /// limit and the unit.
    static func cases(of step: StepRecord, procedure: String) -> [Case] {
        let classname = step.kind == "safety" ? "\(procedure).safety" : "\(procedure).\(step.name)"
        var cases: [Case] = []
        // Measurements: what a measure or sample step records, and anything judged against limits. The readings a
        // check or a wait records are its evidence, shown with the step's case.
        func isMeasurement(_ measurement: MeasurementRecord) -> Bool {
            step.kind == "measure" || step.kind == "sample" || measurement.displayLimits != nil
        }
        for measurement in step.measurements where isMeasurement(measurement) {
            cases.append(
                Case(
                    classname: classname, name: measurement.name, time: 0, verdict: measurement.verdict,
                    message: measurement.verdict == .pass ? nil : judged(measurement), detail: line(measurement)))
        }
        for member in step.members ?? [] {
            let measured = member.measurements.filter(isMeasurement)
            if measured.isEmpty {
                cases.append(
                    Case(
                        classname: classname, name: "\(step.name) [\(member.device)]", time: 0, verdict: member.verdict,
                        message: member.error ?? (member.verdict == .pass ? nil : member.verdict.rawValue), detail: ""))
            }
            for measurement in measured {
                cases.append(
                    Case(
                        classname: classname, name: "\(measurement.name) [\(member.device)]", time: 0,
                        verdict: measurement.verdict,
                        message: measurement.verdict == .pass ? nil : "\(member.device): " + judged(measurement),
                        detail: line(measurement)))
            }
        }
        // The step itself, when nothing above carries its verdict (no measurements; or an error after them).
        if cases.isEmpty || (step.verdict != .pass && !cases.contains { $0.verdict == step.verdict }) {
            cases.append(
                Case(
                    classname: step.kind == "safety" ? classname : "\(procedure).\(step.group.rawValue)",
                    name: step.name, time: 0, verdict: step.verdict,
                    message: step.verdict == .error || step.verdict == .aborted
                        ? (step.error ?? step.message) : step.message,
                    detail: details(step)))
        }
        let share = (step.wallSeconds ?? 0) / Double(cases.count)
        return cases.map { item in
            var item = item
            item.time = share
            return item
        }
    }

    /// `Pressure decay over hold = 12.3 kPa, limit ≤ 2 kPa`.
    static func judged(_ measurement: MeasurementRecord) -> String {
        "\(measurement.name) = \(measurement.displayValue)"
            + (measurement.displayLimits.map { ", limit \($0)" } ?? "") + " (\(measurement.verdict.rawValue))"
    }

    static func details(_ step: StepRecord) -> String {
        var lines: [String] = []
        if let message = step.message { lines.append(message) }
        for measurement in step.measurements { lines.append(line(measurement)) }
        for member in step.members ?? [] {
            lines.append("\(member.device): \(member.verdict.rawValue)\(member.error.map { " \($0)" } ?? "")")
            for measurement in member.measurements { lines.append("  " + line(measurement)) }
        }
        for attempt in step.attempts ?? [] where step.attempts?.count ?? 0 > 1 {
            lines.append(
                "attempt \(attempt.attempt): \(attempt.verdict.rawValue)"
                    + ((attempt.error ?? attempt.message).map { " \($0)" } ?? ""))
        }
        for retry in step.retries ?? [] { lines.append("retry: \(retry)") }
        return lines.joined(separator: "\n")
    }

    static func line(_ measurement: MeasurementRecord) -> String {
        let value = measurement.value.map { Quantity.format($0) } ?? measurement.text ?? "-"
        return "\(measurement.name) = \(value)\(measurement.unit.map { " \($0)" } ?? "")"
            + (measurement.limits.map { "  limits \($0)" } ?? "") + "  \(measurement.verdict.rawValue)"
    }

    static func seconds(_ value: Double) -> String { String(format: "%.3f", value.isFinite ? value : 0) }

    /// A quoted, escaped XML attribute value.
    static func attribute(_ value: String) -> String { "\"" + escape(value, quotes: true) + "\"" }
    static func text(_ value: String) -> String { escape(value, quotes: false) }

    static func escape(_ value: String, quotes: Bool) -> String {
        var out = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"" where quotes: out += "&quot;"
            case "\n" where quotes: out += "&#10;"
            case "\n", "\t": out.unicodeScalars.append(scalar)
            // XML 1.0 has no place for most control characters, and a report must not carry terminal escapes or
            // bidirectional overrides from a device: shown as visible escapes (`\e`, `\x07`, `\u{202e}`).
            case _ where String.needsEscape(scalar): out += String(scalar).escapingControlCharacters
            case "\u{FFFE}", "\u{FFFF}": out += "?"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
