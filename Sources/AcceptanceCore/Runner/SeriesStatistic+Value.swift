extension SeriesStatistic {
    /// The statistic of a series; times in seconds, slope per minute (NaN when undefined: too few samples).
    public func value(times: [Double], values: [Double]) -> Double {
        guard let first = values.first, let last = values.last else { return .nan }
        switch self {
        case .first: return first
        case .last: return last
        case .min: return values.min() ?? .nan
        case .max: return values.max() ?? .nan
        case .mean: return values.reduce(0, +) / Double(values.count)
        case .delta: return last - first
        case .drop: return first - last
        case .slope:
            guard values.count >= 2 else { return .nan }
            let minutes = times.map { $0 / 60 }
            let meanT = minutes.reduce(0, +) / Double(minutes.count)
            let meanV = values.reduce(0, +) / Double(values.count)
            var numerator = 0.0
            var denominator = 0.0
            for (t, v) in zip(minutes, values) {
                numerator += (t - meanT) * (v - meanV)
                denominator += (t - meanT) * (t - meanT)
            }
            return denominator == 0 ? .nan : numerator / denominator
        }
    }
}
