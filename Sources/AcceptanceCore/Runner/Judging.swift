/// Measurements as the record keeps them, and judged against their limits.
enum Judging {
    static func measurementRecord(name: String, _ value: Value, verdict: Verdict) -> MeasurementRecord {
        switch value {
        case let .quantity(quantity):
            MeasurementRecord(name: name, value: quantity.value, unit: quantity.unit.symbol, verdict: verdict)
        case let .number(number):
            MeasurementRecord(name: name, value: number, unit: nil, verdict: verdict)
        case .bool, .text, .missing:
            MeasurementRecord(name: name, value: nil, text: value.description, unit: nil, verdict: verdict)
        }
    }

    /// Records a value and judges it against inclusive limits, in the value's (or the requested) unit.
    static func judge(
        name: String, _ measured: Value, unit: PhysicalUnit?, limits: Limits, isInterval: Bool,
        values: [String: Value]
    ) throws -> MeasurementRecord {
        func convert(_ quantity: Quantity, _ target: PhysicalUnit) throws -> Quantity {
            do {
                return isInterval ? try quantity.convertedInterval(to: target) : try quantity.converted(to: target)
            } catch {
                throw StationError(description: "\(name): \(error)")
            }
        }
        if measured == .missing {
            throw StationError(description: "\(name): no reading (the device reports the sensor missing or failed)")
        }
        var measured = measured
        if let unit, case let .quantity(quantity) = measured { measured = .quantity(try convert(quantity, unit)) }
        var record = Self.measurementRecord(name: name, measured, verdict: .pass)
        guard !limits.isEmpty else { return record }
        func bound(_ expression: Expression?) throws -> Double? {
            guard let expression else { return nil }
            let value = try expression.evaluate(values)
            switch (value, measured) {
            case let (.quantity(limit), .quantity(reading)): return try convert(limit, reading.unit).value
            case let (.number(limit), .number): return limit
            default: throw StationError(description: "limit '\(expression.source)' (\(value)) does not fit \(measured)")
            }
        }
        record.low = try bound(limits.low)
        record.high = try bound(limits.high)
        record.limits = [limits.low.map { ">= \($0.source)" }, limits.high.map { "<= \($0.source)" }]
            .compactMap { $0 }.joined(separator: " and ")
        record.comparator = record.low != nil && record.high != nil ? "between" : record.low != nil ? ">=" : "<="
        if let value = record.value {
            let aboveLow = record.low.map { value >= $0 } ?? true
            let belowHigh = record.high.map { value <= $0 } ?? true
            record.verdict = aboveLow && belowHigh && value.isFinite ? .pass : .fail
        } else {
            record.verdict = .fail
        }
        return record
    }
}
