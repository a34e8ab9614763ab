import Foundation

/// `sample:`: records points every interval for a duration (a CSV beside the journal, each sample journaled), then
/// derives the measurements (drop, slope, mean ...) and judges them. `fail_if`, checked with every sample, ends the
/// step at once as FAIL.
struct SampleStep: StepExecutor {
    let points: [String]
    let every: Expression
    let duration: Expression
    let measurements: [SeriesMeasurement]
    let failIf: Expression?

    func execute(_ context: StepContext) async throws -> StepResult {
        let step = context.step
        let bus = context.bus
        let clock = context.clock
        let folder = context.run.folder
        let environment = try await context.values(for: [])
        let interval = try context.duration(every, environment)
        let length = try context.duration(duration, environment)
        guard interval > .zero else { throw StationError(description: "sample interval must be above zero") }
        let samples = (length.seconds / interval.seconds + 1e-9).rounded(.down) + 1
        guard samples <= 1_000_000 else {
            throw StationError(
                description: "\(Quantity.format(samples)) samples is too many: sample less often or for less time")
        }
        guard interval <= length else {
            throw StationError(
                description: "the interval (\(every.source)) is longer than the sampling (\(duration.source))")
        }
        // Every interval from the start, and always one at the very end, so the series spans the whole duration.
        var offsets = (0..<Int(samples)).map { interval * $0 }
        if let last = offsets.last, last < length { offsets.append(length) }
        var times: [Double] = []
        var columns = [[Double]](repeating: [], count: points.count)
        var units = [PhysicalUnit?](repeating: nil, count: points.count)
        let start = clock.now()
        let fileName = Self.seriesFile(of: step)
        func seriesRecord() -> SeriesRecord {
            SeriesRecord(
                file: fileName, points: points, units: units.map { $0?.symbol ?? "" }, samples: times.count,
                intervalSeconds: interval.seconds)
        }
        do {
            for (index, offset) in offsets.enumerated() {
                try await clock.sleep(until: start + offset)
                let guardPoints =
                    failIf.map { $0.references.filter { environment[$0] == nil && !points.contains($0) } } ?? []
                let read = try await bus.read(points + guardPoints)
                let elapsed = (clock.now() - start).seconds
                var row: [Double] = []
                for (column, point) in points.enumerated() {
                    switch read[point] {
                    case let .quantity(quantity)?:
                        let unit = units[column] ?? quantity.unit
                        units[column] = unit
                        row.append((try? quantity.converted(to: unit).value) ?? .nan)
                    case let .number(number)?:
                        row.append(number)
                    default:
                        row.append(.nan)
                    }
                }
                times.append(elapsed)
                for (column, value) in row.enumerated() { columns[column].append(value) }
                context.emit(
                    .sample(step, index: index, elapsed: elapsed, values: row, units: units.map { $0?.symbol ?? "" }))
                let latest = points.indices.map { column in
                    "\(points[column]) = \(Quantity.format(row[column]))\(units[column].map { " \($0.symbol)" } ?? "")"
                }.joined(separator: ", ")
                context.progress(elapsed: elapsed, total: length.seconds, detail: latest)
                if let failIf, case .bool(true) = try failIf.evaluate(environment.merging(read) { $1 }) {
                    try Self.writeSeries(
                        folder, fileName, points: points, units: units.map { $0?.symbol ?? "" }, times: times,
                        columns: columns)
                    let values = environment.merging(read) { $1 }
                    return StepResult(
                        verdict: .fail, measurements: readingMeasurements(failIf, values),
                        message: "stopped after \(Quantity.format(elapsed)) s: \(failIf.source)"
                            + describeReadings(failIf, values),
                        series: folder == nil ? nil : seriesRecord())
                }
            }
        } catch {
            // Keep what was sampled: the CSV beside the journal shows the series up to the interruption.
            try? Self.writeSeries(
                folder, fileName, points: points, units: units.map { $0?.symbol ?? "" }, times: times, columns: columns)
            throw error
        }
        try Self.writeSeries(
            folder, fileName, points: points, units: units.map { $0?.symbol ?? "" }, times: times, columns: columns)
        var results: [MeasurementRecord] = []
        var verdict = Verdict.pass
        for measurement in measurements {
            guard let column = points.firstIndex(of: measurement.point) else { continue }
            let statistic = measurement.statistic.value(times: times, values: columns[column])
            guard statistic.isFinite else {
                throw StationError(
                    description: "\(measurement.name): the \(measurement.statistic.rawValue) of "
                        + "\(measurement.point) is undefined (\(times.count) sample(s) or missing readings)")
            }
            let value: Value
            if let unit = units[column] {
                let statisticUnit = measurement.statistic == .slope ? (unit.per(.minute) ?? unit) : unit
                value = .quantity(Quantity(statistic, statisticUnit))
            } else {
                value = .number(statistic)
            }
            let isInterval = [.delta, .drop, .slope].contains(measurement.statistic)
            let judged = try Judging.judge(
                name: measurement.name, value, unit: measurement.unit, limits: measurement.limits,
                isInterval: isInterval, values: environment)
            verdict = Verdict.worst(verdict, judged.verdict)
            var recorded = judged
            recorded.of = measurement.point
            recorded.statistic = measurement.statistic.rawValue
            results.append(recorded)
        }
        return StepResult(
            verdict: verdict, measurements: results,
            message: "\(times.count) samples over \(Quantity.format(length.seconds)) s",
            series: folder == nil ? nil : seriesRecord())
    }

    /// The CSV file a step's series is written to.
    static func seriesFile(of step: Step) -> String { "series-\(step.group.rawValue)-\(step.number).csv" }

    /// The series as CSV beside the journal: time, then one column per point with its unit.
    static func writeSeries(
        _ folder: RunFolder?, _ name: String, points: [String], units: [String], times: [Double],
        columns: [[Double]]
    ) throws {
        guard let folder else { return }
        var csv =
            "t_s,"
            + zip(points, units).map { point, unit in "\(point) [\(unit.isEmpty ? "1" : unit)]" }
            .joined(separator: ",") + "\n"
        for (row, time) in times.enumerated() {
            csv += JSONLine.exact(time)
            for column in columns { csv += "," + (column[row].isFinite ? JSONLine.exact(column[row]) : "") }
            csv += "\n"
        }
        try folder.writeAtomically(name, Data(csv.utf8))
    }
}
