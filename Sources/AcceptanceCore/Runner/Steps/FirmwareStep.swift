/// `firmware:`: reads version points and compares each with the manifest of the release.
struct FirmwareStep: StepExecutor {
    let points: [String]
    let release: Expression

    func execute(_ context: StepContext) async throws -> StepResult {
        let bus = context.bus
        let values = try await context.values(for: [release] + points.map { Expression.reference($0) })
        guard case let .text(releaseName) = try release.evaluate(values) else {
            throw StationError(description: "release must be text")
        }
        guard let manifest = context.run.settings.firmwareManifests[releaseName] else {
            throw StationError(
                description: "no firmware manifest for release '\(releaseName)' (Fixtures/firmware/\(releaseName).yaml)"
            )
        }
        var result = StepResult()
        var mismatches: [String] = []
        for reference in points {
            guard let (device, point) = bus.configuration.resolve(reference, aliases: bus.aliases),
                let model = bus.configuration.profile(of: device)?.model
            else { continue }
            let name = ForEachStep.memberName(reference, bus)
            guard let expected = manifest.version(model: model, point: point.name) else {
                throw StationError(
                    description: "manifest '\(releaseName)' (\(manifest.file)) has no \(point.name) for \(model)")
            }
            let found = values[reference]
            let actual: String? = if case let .text(text)? = found { text } else { nil }
            let verdict: Verdict = actual == expected ? .pass : .fail
            if verdict == .fail {
                mismatches.append(
                    "\(name) is \(actual ?? found?.description ?? "unreadable"), release wants \(expected)")
            }
            var recorded = MeasurementRecord(
                name: name, value: nil, text: actual ?? found?.description,
                unit: nil, limits: "= \(expected)", verdict: verdict)
            recorded.comparator = "=="
            result.measurements.append(recorded)
        }
        result.verdict = mismatches.isEmpty ? .pass : .fail
        result.message =
            mismatches.isEmpty
            ? "\(points.count) version\(points.count == 1 ? "" : "s") match \(releaseName)"
            : mismatches.joined(separator: "; ")
        return result
    }
}
