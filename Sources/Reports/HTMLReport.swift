import AcceptanceCore
import Foundation

/// `report.html`: one self-contained page (no scripts, no external files), readable on screen and on paper:
/// the verdict first, rack and station identity, every step with its measurements against limits, an SVG plot of
/// every sampled series with its limits drawn, and the signature block.
enum HTMLReport {
    static func html(
        _ record: RunRecord, series: [String: SeriesData], signature: ReportBundle.SignatureBlock?,
        history: RackHistory? = nil
    ) -> String {
        document(
            title: "\(record.procedure.id) \(record.verdict.rawValue) · rack \(record.rackSerial ?? "(no serial)")",
            runID: record.runID, rackSerial: record.rackSerial, simulated: record.isSimulated
        ) {
            runSections(record, series: series) + (history.map { previousRuns($0, of: record) } ?? "")
                + signatureSection(signature)
        }
    }

    /// The page around a report's sections: the styles for screen and paper, and on paper a header on every page
    /// (run id, rack serial) with "page x of y", and the SIMULATED watermark on every page.
    static func document(
        title: String, runID: String, rackSerial: String?, simulated: Bool, body: () -> String
    ) -> String {
        let running = "run \(runID) · rack \(rackSerial ?? "(no serial)")" + (simulated ? " · SIMULATED" : "")
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>\(e(title))</title>
            <style>
            body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2328;max-width:1100px;margin:24px auto;padding:0 16px}
            h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
            .verdict{border:3px solid #57606a;color:#57606a;padding:14px 18px;margin:16px 0;font-size:28px;font-weight:700}
            .verdict.PASS{border-color:#1a7f37;color:#1a7f37} .verdict.FAIL{border-color:#cf222e;color:#cf222e} .verdict.ERROR{border-color:#9a6700;color:#9a6700}
            .verdict small{display:block;font-size:14px;font-weight:400;color:#1f2328}
            table{border-collapse:collapse;width:100%;margin:6px 0} th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
            th{background:#f6f8fa} td.PASS{color:#1a7f37;font-weight:600} td.FAIL{color:#cf222e;font-weight:700}
            td.ERROR{color:#9a6700;font-weight:700} td.ABORTED,td.SKIPPED{color:#57606a}
            .kv td:first-child{width:220px;color:#57606a} .num{text-align:right;font-variant-numeric:tabular-nums}
            td.limits,td.num{white-space:nowrap} .member{color:#57606a;font-size:12px} figure{margin:12px 0;page-break-inside:avoid} figcaption{color:#57606a}
            .signature{border:1px solid #d0d7de;padding:10px 14px;background:#f6f8fa} .unsigned{border-color:#cf222e;color:#cf222e}
            .deviation,.deviation td,.deviation th{color:#cf222e;border-color:#cf222e;font-weight:600}
            .watermark{position:fixed;top:42%;left:0;right:0;text-align:center;transform:rotate(-30deg);font-size:120px;font-weight:800;letter-spacing:12px;color:rgba(207,34,46,.13);pointer-events:none;z-index:10}
            section.procedure{break-before:page} section.procedure:first-of-type{break-before:auto}
            @page{size:A4;margin:18mm 12mm 16mm;
              @top-left{content:"\(cssString(running))";font:9px system-ui,sans-serif;color:#57606a}
              @bottom-right{content:"page " counter(page) " of " counter(pages);font:9px system-ui,sans-serif;color:#57606a}}
            @media print{table.steps{table-layout:fixed;font-size:10px} table.steps td{overflow-wrap:anywhere}
              table.steps th,table.steps td{box-sizing:border-box;padding:3px 5px}
              table.steps th:nth-child(1){width:17%} table.steps th:nth-child(2){width:9%} table.steps th:nth-child(3){width:7%}
              table.steps th:nth-child(4){width:8%} table.steps th:nth-child(5){width:15%} table.steps th:nth-child(6){width:11%}
              table.steps th:nth-child(7){width:12%} td.limits,td.num{white-space:normal}}
            @media print{body{margin:0;max-width:none;font-size:11px} .verdict{break-after:avoid} tr,figure{break-inside:avoid} h2{break-after:avoid}}
            </style></head><body>
            \(simulated ? "<div class=\"watermark\" id=\"simulated\">SIMULATED</div>" : "")
            \(body())</body></html>

            """
    }

    /// Text for a CSS string literal: quotes and backslashes escaped, no line breaks.
    static func cssString(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n", "\r": out += " "
            // Inside <style>, HTML entities mean nothing: a "<" is escaped the CSS way, so no "</style>" ends it.
            case "<": out += "\\3c "
            default: out.append(character)
            }
        }
        return out
    }

    /// A run's heading, verdict, identity, safety, plots and steps: the whole report but the signature.
    static func runSections(_ record: RunRecord, series: [String: SeriesData], heading: String = "h1") -> String {
        var out = """
            <\(heading)>\(e(record.procedure.title))</\(heading)>
            <div>\(e(record.procedure.id)) \(e(record.procedure.version)) · run \(e(record.runID))</div>
            <div class="verdict \(record.verdict.rawValue)" id="verdict-\(e(record.procedure.id))">\(e(record.verdict.rawValue))\(record.isSimulated ? " · SIMULATED" : "")<small>\(e(verdictText(record)))</small></div>

            """
        out += "<h2>Rack and station</h2>\n<table class=\"kv\">\n"
        var identity: [(String, String)] = [
            ("Rack serial", record.rackSerial ?? "(none entered)"), ("Rack profile", record.rackProfile),
            ("Station", record.station), ("Operator", record.operator ?? "-"),
            ("Started", record.started), ("Ended", record.ended ?? "-"),
            ("Clock", "\(record.clock.kind.rawValue), \(Quantity.format(record.clock.elapsedSeconds)) s run time"),
            ("Procedure file", "\(record.procedure.file) (SHA-256 \(record.procedure.sha256))"),
            (
                "Cleanup",
                record.cleanupCompleted
                    ? "completed: the rack was returned to its safe state"
                    : "NOT completed: check the rack by hand"
            ),
        ]
        if let scenario = record.scenario { identity.append(("Simulation scenario", "\(scenario) (SIMULATED rack)")) }
        if let simulator = record.simulator { identity.append(("Simulator", "\(simulator) (SIMULATED rack)")) }
        if let set = record.limitSet {
            identity.append(
                (
                    "Limit set",
                    "\(set.name)\(set.title.isEmpty ? "" : " — \(set.title)") (\(set.file), SHA-256 \(set.sha256))"
                ))
        }
        let deviated = Dictionary((record.deviations ?? []).map { ($0.parameter, $0) }) { first, _ in first }
        for (name, value) in record.parameters.sorted(by: { $0.key < $1.key }) {
            var mark = deviated[name].map { "  (DEVIATION: the procedure says \($0.procedureValue))" } ?? ""
            if mark.isEmpty, let set = record.limitSet, let own = set.procedureValues[name] {
                mark = "  (limit set \(set.name); the procedure's default is \(own))"
            }
            identity.append(("Parameter \(name)", value + mark))
        }
        if let harness = record.harness {
            identity.append(
                ("Harness", "acceptance \(harness.version)" + (harness.binarySHA256.map { " (SHA-256 \($0))" } ?? "")))
        }
        for (device, endpoint) in (record.endpoints ?? [:]).sorted(by: { $0.key < $1.key }) {
            identity.append(("Endpoint \(device)", endpoint))
        }
        for instrument in record.instruments ?? [] { identity.append(("Instrument", instrument.summary)) }
        for warning in record.warnings ?? [] { identity.append(("Warning", warning)) }
        for (name, value) in identity { out += "<tr><td>\(e(name))</td><td>\(e(value))</td></tr>\n" }
        out += "</table>\n"
        if let deviations = record.deviations, !deviations.isEmpty {
            out +=
                "<h2 class=\"deviation\">Deviations from the procedure</h2>\n<table class=\"deviation\" id=\"deviations\">\n"
            out += "<tr><th>Limit</th><th>Procedure</th><th>This run</th><th>By</th><th>Reason</th></tr>\n"
            for deviation in deviations {
                out +=
                    "<tr><td>\(e(deviation.parameter))</td><td>\(e(deviation.procedureValue))</td>"
                    + "<td>\(e(deviation.value))</td><td>\(e(deviation.by))</td><td>\(e(deviation.reason))</td></tr>\n"
            }
            out += "</table>\n"
        }
        if let message = record.message { out += "<p><strong>\(e(message))</strong></p>\n" }
        out += safety(record)

        let plotted = record.steps.filter { series[$0.id] != nil }
        if !plotted.isEmpty {
            out += "<h2>Sampled series</h2>\n"
            for step in plotted {
                guard let data = series[step.id] else { continue }
                for (column, point) in data.points.enumerated() {
                    out += plot(step: step, data: data, column: column, point: point)
                }
            }
        }

        out +=
            "<h2>Steps</h2>\n<table class=\"steps\">\n<tr><th>Step</th><th>Started</th><th class=\"num\">Duration</th><th>Verdict</th>"
            + "<th>Measurement</th><th class=\"num\">Value</th><th>Limits</th><th>Notes</th></tr>\n"
        for step in record.steps {
            let rows = step.measurements
            // A hazardous step says what the hazard was and who accepted it, when.
            let hazard = step.hazard.map { hazard in
                "HAZARD: \(hazard.hazard), "
                    + (hazard.confirmations.first?.automatic.map { "confirmed automatically (\($0))" }
                        ?? "confirmed by "
                        + hazard.confirmations.map { "\($0.operator) at \($0.at)" }.joined(separator: " and "))
            }
            let retries = step.retries.map { "\($0.count) transport retr\($0.count == 1 ? "y" : "ies")" }
            // A step with `retry:`: every attempt that came before the one judged, with why it did not pass.
            let attempts = step.attempts.flatMap { attempts -> String? in
                guard attempts.count > 1 else { return nil }
                return "\(attempts.count) attempts: "
                    + attempts.map { attempt in
                        "\(attempt.attempt) \(attempt.verdict.rawValue)"
                            + (attempt.measurements.first { $0.verdict != .pass }.map {
                                " (\($0.name) = \($0.displayValue))"
                            } ?? "")
                    }.joined(separator: ", ")
            }
            let waited = step.waited.map { "waited for \($0)" }
            let note = [hazard, step.error, step.message, attempts, retries, waited].compactMap { $0 }.joined(
                separator: " · ")
            // When the step began (time of day, UTC) and how long it took on the run's clock.
            let started = step.started.map { String($0.dropFirst(11).prefix(8)) } ?? "-"
            let duration = step.durationSeconds.map { Quantity.format(($0 * 10).rounded() / 10) + " s" } ?? "-"
            let timing = "<td>\(e(started))</td><td class=\"num\">\(e(duration))</td>"
            if rows.isEmpty {
                out +=
                    "<tr><td>\(e(step.id)) \(e(step.name))</td>\(timing)"
                    + "<td class=\"\(step.verdict.rawValue)\">\(step.verdict.rawValue)</td>"
                    + "<td></td><td></td><td></td><td>\(e(note))</td></tr>\n"
            }
            for (index, measurement) in rows.enumerated() {
                // The limits as resolved for this run, with units (`290…350 kPa`), not the procedure's expressions.
                let limits = measurement.displayLimits ?? measurement.limits ?? "-"
                out +=
                    "<tr><td>\(index == 0 ? "\(e(step.id)) \(e(step.name))" : "")</td>"
                    + (index == 0 ? timing : "<td></td><td></td>")
                    + "<td class=\"\(measurement.verdict.rawValue)\">\(measurement.verdict.rawValue)</td>"
                    + "<td>\(e(measurement.name))</td><td class=\"num\">\(e(value(measurement)))</td>"
                    + "<td class=\"limits\">\(e(limits))</td><td>\(index == 0 ? e(note) : "")</td></tr>\n"
            }
            for member in step.members ?? [] where member.verdict != .pass || member.measurements.count <= 8 {
                let readings = member.measurements.map { "\($0.name) = \(value($0))" }.joined(separator: ", ")
                out +=
                    "<tr class=\"member\"><td>&nbsp;&nbsp;\(e(member.device))</td>"
                    + "<td></td><td></td>"
                    + "<td class=\"\(member.verdict.rawValue)\">\(member.verdict.rawValue)</td><td colspan=\"3\">\(e(readings))</td>"
                    + "<td>\(e(member.error ?? (member.verdict == .pass ? "" : member.message ?? "")))</td></tr>\n"
            }
        }
        out += "</table>\n"
        return out
    }

    /// "Previous runs of this rack": what the station's archive holds for the rack's serial, newest first.
    static func previousRuns(_ history: RackHistory, of record: RunRecord) -> String {
        var out = "<h2>Previous runs of this rack</h2>\n"
        if let problem = history.problem {
            return out + "<p class=\"ERROR\" id=\"previous-runs\">The archive \(e(history.archive)) could not be read: "
                + "\(e(problem))</p>\n"
        }
        let runs = history.runs.filter { $0.runID != record.runID }
        guard !runs.isEmpty else {
            return out + "<p id=\"previous-runs\">None: the archive \(e(history.archive)) holds no other run of rack "
                + "\(e(record.rackSerial ?? "(no serial)")).</p>\n"
        }
        out +=
            "<table id=\"previous-runs\">\n<tr><th>Started</th><th>Procedure</th><th>Verdict</th><th>Station</th>"
            + "<th>Run</th><th>Approval</th></tr>\n"
        for run in runs.sorted(by: { $0.started > $1.started }) {
            out +=
                "<tr><td>\(e(run.started))</td><td>\(e(run.procedure)) \(e(run.procedureVersion))</td>"
                + "<td class=\"\(e(run.verdict))\">\(e(run.verdict))</td><td>\(e(run.station))</td><td>\(e(run.runID))</td>"
                + "<td>\(run.approved ? "APPROVED" : "-")</td></tr>\n"
        }
        return out
            + "</table>\n<p class=\"member\">From the archive \(e(history.archive)) when this report was made.</p>\n"
    }

    /// Who signed the bundle and what it means, or UNSIGNED in red.
    static func signatureSection(_ signature: ReportBundle.SignatureBlock?) -> String {
        var out = "<h2>Signature</h2>\n"
        if let signature {
            out +=
                "<div class=\"signature\"><table class=\"kv\">"
                + "<tr><td>Signed by</td><td>\(e(signature.identity))</td></tr>"
                + "<tr><td>Key fingerprint (SHA-256 of the public key)</td><td><code>\(e(signature.keyID))</code></td></tr>"
                + "<tr><td>Signed at</td><td>\(e(signature.signedAt))</td></tr>"
                + "<tr><td>Meaning</td><td>\(e(signature.meaning))</td></tr></table>"
                + "<p>The signature is in <code>attestation.dsse.json</code> (DSSE, Ed25519, in-toto Statement v1), over the "
                + "SHA-256 of every file of this bundle, this page included. Check it with <code>acceptance verify</code> or, "
                + "without this tool, <code>sh verify.sh STATION_KEY.pub.pem</code> (OpenSSL 3 and jq).</p></div>\n"
        } else {
            out +=
                "<div class=\"signature unsigned\"><strong>UNSIGNED.</strong> The station had no signing key: nothing "
                + "proves these files are the ones it produced.</div>\n"
        }
        return out
    }

    /// Interlocks watched (their trips and waivers) and the safe state measured at the end; what is not safe in red.
    static func safety(_ record: RunRecord) -> String {
        guard record.interlocks != nil || record.safeState != nil else { return "" }
        var out = "<h2>Safety</h2>\n"
        if let interlocks = record.interlocks {
            out += "<table>\n<tr><th>Interlock</th><th>Trips if</th><th>Watched</th><th>Outcome</th></tr>\n"
            for interlock in interlocks {
                let watched =
                    interlock.waived.map { "WAIVED by the station: \($0)" }
                    ?? "every \(Quantity.format(interlock.pollSeconds ?? 0)) s, \(interlock.polls ?? 0) polls"
                var outcome = "did not trip"
                var verdict = "PASS"
                if let trip = interlock.trip {
                    verdict = trip.verdict.rawValue
                    outcome =
                        "\(trip.summary) at \(trip.at); reaction: "
                        + trip.reaction.map { "\($0.action) \($0.succeeded ? "done" : "FAILED: \($0.error ?? "")")" }
                        .joined(separator: "; ")
                } else if interlock.waived != nil {
                    verdict = "SKIPPED"
                    outcome = "not watched"
                }
                out +=
                    "<tr><td>\(e(interlock.name))<div class=\"member\">\(e(interlock.description))</div></td>"
                    + "<td>\(e(interlock.condition))</td><td>\(e(watched))</td><td class=\"\(verdict)\">\(e(outcome))</td></tr>\n"
            }
            out += "</table>\n"
        }
        if let recovery = record.recovery {
            out +=
                "<p class=\"ABORTED\"><strong>The station stopped unexpectedly.</strong> Recovered "
                + e(recovery.recoveredAt) + (recovery.recoveredBy.map { " by \(e($0))" } ?? "")
                + "; the last event its journal holds: " + e(recovery.lastJournalEvent ?? "none")
                + ". Last commands sent: "
                + e(
                    recovery.lastCommanded.sorted { $0.key < $1.key }.map { "\($0.value.last ?? "-")" }
                        .joined(separator: "; "))
                + ". The record was written from the journal.</p>\n"
        }
        if let safe = record.safeState {
            out +=
                "<p class=\"\(safe.verified ? "PASS" : "FAIL")\"><strong>\(e(safe.summary))</strong> (\(e(safe.at)))</p>\n"
            out += "<table>\n<tr><th>Device</th><th>Safe when</th><th>Outcome</th><th>Read back</th></tr>\n"
            for device in safe.devices {
                let verdict =
                    switch device.outcome {
                    case .verified, .driven: "PASS"
                    case .unsafe: "FAIL"
                    case .undeclared: "SKIPPED"
                    }
                let drove = (device.drove ?? []).map { "\($0.action) \($0.succeeded ? "done" : "FAILED")" }
                out +=
                    "<tr><td>\(e(device.device))</td><td>\(e(device.check))</td>"
                    + "<td class=\"\(verdict)\">\(e(device.outcome.rawValue))"
                    + (device.message.map { "<div class=\"member\">\(e($0))</div>" } ?? "") + "</td>"
                    + "<td>\(e((device.readings + drove).joined(separator: "; ")))</td></tr>\n"
            }
            out += "</table>\n"
        }
        return out
    }

    /// Ticks from `low` to `high` at a round step (1, 2, 2.5 or 5 × 10ⁿ, about five intervals), each with its label
    /// written to the step's decimals: `[(310, "310"), (312, "312"), …]`, never `312.816`.
    static func niceTicks(from low: Double, to high: Double) -> [(Double, String)] {
        guard low.isFinite, high.isFinite, high > low else { return [] }
        let rough = (high - low) / 5
        let exponent = Int(log10(rough).rounded(.down))
        let magnitude = pow(10, Double(exponent))
        let mantissa = [1, 2, 2.5, 5, 10].first { $0 * magnitude >= rough } ?? 10
        let step = mantissa * magnitude
        // Digits after the point that the step needs: 0.05 two, 0.025 three, 10 none.
        let decimals = max(0, -exponent + (mantissa == 2.5 ? 1 : 0) - (mantissa == 10 ? 1 : 0))
        var ticks: [(Double, String)] = []
        var value = (low / step).rounded(.up) * step
        while value <= high + step * 1e-9, ticks.count < 12 {
            let shown = abs(value) < step * 1e-9 ? 0 : value
            ticks.append((shown, String(format: "%.\(decimals)f", shown)))
            value += step
        }
        return ticks
    }

    static func verdictText(_ record: RunRecord) -> String {
        let text = judgement(record)
        return record.isSimulated ? text + " SIMULATED rack: no real rack was tested." : text
    }

    static func judgement(_ record: RunRecord) -> String {
        switch record.verdict {
        case .pass: "The rack met every limit."
        case .fail: "The rack FAILED a limit."
        case .error: "The station could not complete the test: this is not a verdict on the rack."
        case .aborted: "The run was stopped before it finished."
        case .skipped: "Nothing was run."
        }
    }

    static func value(_ measurement: MeasurementRecord) -> String {
        if let value = measurement.value { return Quantity.format(value) + (measurement.unit.map { " \($0)" } ?? "") }
        return measurement.text ?? "-"
    }

    /// Limit lines for a sampled point, in the point's unit, as functions of time: a `drop` limit is the first value
    /// minus the allowed drop, a `slope` limit a line from the first value, `min`/`max`/`first`/`last` limits level.
    static func limitLines(
        step: StepRecord, data: SeriesData, column: Int, point: String
    )
        -> [(label: String, value: (Double) -> Double, failed: Bool)]
    {
        let values = data.columns[column]
        guard let first = values.first(where: { $0.isFinite }) else { return [] }
        var lines: [(String, (Double) -> Double, Bool)] = []
        let unit = column < data.units.count ? data.units[column] : ""
        for measurement in step.measurements where measurement.of == point {
            let failed = measurement.verdict == .fail
            let name = measurement.name
            let rate = measurement.unit ?? "\(unit)/min"
            // Limits are in the measurement's unit: draw them only where that is the plot's (no silent conversion).
            let expected = measurement.statistic == "slope" ? "\(unit)/min" : unit
            guard measurement.unit == nil || measurement.unit == expected else { continue }
            switch measurement.statistic {
            case "slope"?:
                if let low = measurement.low {
                    lines.append(("\(name) ≥ \(Quantity.format(low)) \(rate)", { first + low * $0 / 60 }, failed))
                }
                if let high = measurement.high {
                    lines.append(("\(name) ≤ \(Quantity.format(high)) \(rate)", { first + high * $0 / 60 }, failed))
                }
            case "drop"?:
                // A drop of at most `high` means the reading must stay above first − high.
                if let high = measurement.high {
                    lines.append(
                        (
                            "\(name) ≤ \(Quantity.format(high)) \(unit): stays above \(Quantity.format(first - high)) \(unit)",
                            { _ in first - high }, failed
                        ))
                }
                if let low = measurement.low {
                    lines.append(("\(name) ≥ \(Quantity.format(low)) \(unit)", { _ in first - low }, failed))
                }
            case "delta"?:
                if let high = measurement.high {
                    lines.append(("\(name) ≤ \(Quantity.format(high)) \(unit)", { _ in first + high }, failed))
                }
                if let low = measurement.low {
                    lines.append(("\(name) ≥ \(Quantity.format(low)) \(unit)", { _ in first + low }, failed))
                }
            default:
                // Levels: min, max, mean, first, last.
                if let high = measurement.high {
                    lines.append(("\(name) ≤ \(Quantity.format(high)) \(unit)", { _ in high }, failed))
                }
                if let low = measurement.low {
                    lines.append(("\(name) ≥ \(Quantity.format(low)) \(unit)", { _ in low }, failed))
                }
            }
        }
        return lines
    }

    static func plot(step: StepRecord, data: SeriesData, column: Int, point: String) -> String {
        let width = 1000.0
        let height = 320.0
        let left = 70.0
        let right = 20.0
        let top = 20.0
        let bottom = 40.0
        let times = data.times
        let values = data.columns[column]
        let finite = zip(times, values).filter { $0.1.isFinite }
        guard let tMax = times.last, tMax > 0, !finite.isEmpty else { return "" }
        let limits = limitLines(step: step, data: data, column: column, point: point)
        var low = finite.map(\.1).min() ?? 0
        var high = finite.map(\.1).max() ?? 1
        for line in limits {
            for t in [0, tMax] {
                low = min(low, line.value(t))
                high = max(high, line.value(t))
            }
        }
        if high - low < 1e-9 {
            high += 1
            low -= 1
        }
        let pad = (high - low) * 0.08
        low -= pad
        high += pad
        func x(_ t: Double) -> Double { left + (t / tMax) * (width - left - right) }
        func y(_ v: Double) -> Double { top + (1 - (v - low) / (high - low)) * (height - top - bottom) }
        let unit = column < data.units.count ? data.units[column] : ""
        var svg =
            "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" "
            + "width=\"100%\" role=\"img\" aria-label=\"\(e(point)) over \(e(step.name))\" class=\"series\">\n"
        svg +=
            "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(width - left - right)\" height=\"\(height - top - bottom)\" fill=\"#fff\" stroke=\"#d0d7de\"/>\n"
        // Round-numbered ticks (steps of 1, 2, 2.5 or 5 × 10ⁿ), as a person would draw the axes: 310, 312, 314 kPa.
        for (v, label) in Self.niceTicks(from: low, to: high) {
            svg +=
                "<line x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(f(y(v)))\" y2=\"\(f(y(v)))\" stroke=\"#eaeef2\"/>"
            svg +=
                "<text x=\"\(left - 6)\" y=\"\(f(y(v) + 4))\" font-size=\"11\" text-anchor=\"end\" fill=\"#57606a\" class=\"ytick\">\(e(label))</text>"
        }
        for (t, label) in Self.niceTicks(from: 0, to: tMax) {
            svg +=
                "<text x=\"\(f(x(t)))\" y=\"\(height - bottom + 16)\" font-size=\"11\" text-anchor=\"middle\" fill=\"#57606a\">\(e(label)) s</text>\n"
        }
        svg +=
            "<text x=\"14\" y=\"\(f(top + (height - top - bottom) / 2))\" font-size=\"12\" fill=\"#1f2328\" "
            + "transform=\"rotate(-90 14 \(f(top + (height - top - bottom) / 2)))\" text-anchor=\"middle\">\(e(point)) [\(e(unit))]</text>\n"
        // Decimate to at most ~2000 vertices: enough for the eye, small enough for a printer.
        let stride = max(1, finite.count / 2000)
        var path = ""
        for (index, (t, v)) in finite.enumerated() where index % stride == 0 || index == finite.count - 1 {
            path += (path.isEmpty ? "M" : "L") + "\(f(x(t))),\(f(y(v)))"
        }
        svg += "<path d=\"\(path)\" fill=\"none\" stroke=\"#0969da\" stroke-width=\"2\" class=\"curve\"/>\n"
        for (index, line) in limits.enumerated() {
            let colour = line.failed ? "#cf222e" : "#bf8700"
            svg +=
                "<line x1=\"\(f(x(0)))\" y1=\"\(f(y(line.value(0))))\" x2=\"\(f(x(tMax)))\" y2=\"\(f(y(line.value(tMax))))\" "
                + "stroke=\"\(colour)\" stroke-width=\"2\" stroke-dasharray=\"8 5\" class=\"limit\"/>"
            svg +=
                "<text x=\"\(width - right - 6)\" y=\"\(f(top + 16 + Double(index) * 15))\" font-size=\"12\" text-anchor=\"end\" "
                + "fill=\"\(colour)\">\(e(line.label))\(line.failed ? " — FAILED" : "")</text>\n"
        }
        svg +=
            "</svg><figcaption>\(e(step.id)) \(e(step.name)): \(e(point)), \(finite.count) samples over "
            + "\(e(Quantity.format(tMax))) s. Blue: the reading; dashed: limits (red where the step failed).</figcaption></figure>\n"
        return svg
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value.isFinite ? value : 0) }

    static func e(_ text: String) -> String { JUnitReport.escape(text, quotes: true) }
}
