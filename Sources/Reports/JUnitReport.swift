import AcceptanceCore
import Foundation

/// The run as JUnit XML (Jenkins/Ant dialect) for CI dashboards: one `testsuite`, a `testcase` per step.
/// FAIL is a `failure`, ERROR and ABORTED are `error`s, SKIPPED is `skipped`.
public enum JUnitReport {
    public static func xml(_ record: RunRecord) -> String {
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
        let failures = steps.count { $0.verdict == .fail }
        let errors = steps.count { $0.verdict == .error || $0.verdict == .aborted }
        let skipped = steps.count { $0.verdict == .skipped }
        let time = steps.compactMap(\.durationSeconds).reduce(0, +)
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out +=
            "<testsuites name=\"acceptance\" tests=\"\(steps.count)\" failures=\"\(failures)\" errors=\"\(errors)\" "
            + "skipped=\"\(skipped)\" time=\"\(seconds(time))\">\n"
        out +=
            "  <testsuite name=\(attribute("\(record.procedure.id) \(record.procedure.version)")) tests=\"\(steps.count)\" "
            + "failures=\"\(failures)\" errors=\"\(errors)\" skipped=\"\(skipped)\" time=\"\(seconds(time))\" "
            + "timestamp=\(attribute(String(record.started.prefix(19)))) hostname=\(attribute(record.station))>\n"
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
        for (name, value) in record.parameters.sorted(by: { $0.key < $1.key }) {
            properties.append(("parameter.\(name)", value))
        }
        for (name, value) in properties {
            out += "      <property name=\(attribute(name)) value=\(attribute(value))/>\n"
        }
        out += "    </properties>\n"
        for step in steps {
            out +=
                "    <testcase classname=\(attribute("\(record.procedure.id).\(step.kind == "safety" ? "safety" : step.group.rawValue)")) "
                + "name=\(attribute("\(step.id) \(step.name)")) time=\"\(seconds(step.durationSeconds ?? 0))\">\n"
            let detail = details(step)
            switch step.verdict {
            case .fail:
                out +=
                    "      <failure message=\(attribute(step.message ?? "FAIL")) type=\"FAIL\">\(text(detail))</failure>\n"
            case .error, .aborted:
                out +=
                    "      <error message=\(attribute(step.error ?? step.message ?? step.verdict.rawValue)) "
                    + "type=\"\(step.verdict.rawValue)\">\(text(detail))</error>\n"
            case .skipped:
                out += "      <skipped message=\(attribute(step.message ?? "skipped"))/>\n"
            case .pass:
                break
            }
            if !detail.isEmpty, step.verdict == .pass { out += "      <system-out>\(text(detail))</system-out>\n" }
            out += "    </testcase>\n"
        }
        out += "  </testsuite>\n</testsuites>\n"
        return out
    }

    static func details(_ step: StepRecord) -> String {
        var lines: [String] = []
        if let message = step.message { lines.append(message) }
        for measurement in step.measurements { lines.append(line(measurement)) }
        for member in step.members ?? [] {
            lines.append("\(member.device): \(member.verdict.rawValue)\(member.error.map { " \($0)" } ?? "")")
            for measurement in member.measurements { lines.append("  " + line(measurement)) }
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
