/// A step with `for_each: compute_trays`: its kind's executor once per member of the group, at most `concurrency` at
/// a time. Each member's outcome is recorded on its own; the step is as bad as its worst member.
struct ForEachStep: StepExecutor {
    let each: Step.ForEach
    let member: any StepExecutor

    func execute(_ context: StepContext) async throws -> StepResult {
        let bus = context.bus
        let step = context.step
        let clock = context.clock
        guard let group = bus.configuration.rack.group(named: each.group) else {
            throw StationError(description: "no device group '\(each.group)'")
        }
        let members = group.members
        let started = clock.now()
        var done = 0
        let records = try await BoundedConcurrency.map(members, limit: each.concurrency) { name in
            try await runMember(
                StepContext(step: step, bus: bus.aliasing(each.alias, to: name), run: context.run),
                member: name)
        } onEach: { record in
            done += 1
            let elapsed = (clock.now() - started).seconds
            context.progress(
                elapsed: elapsed, total: elapsed,
                detail: "\(done) of \(members.count) \(group.name) done, last \(record.device) \(record.verdict)")
        }
        var result = StepResult(members: records)
        result.verdict = records.map(\.verdict).reduce(.pass, Verdict.worst)
        let counts = Dictionary(grouping: records, by: \.verdict).mapValues(\.count)
        let tally = [Verdict.pass, .fail, .error, .aborted].compactMap { verdict in
            counts[verdict].map { "\($0) \(verdict)" }
        }
        let bad = records.filter { $0.verdict != .pass }
        var message = "\(records.count) \(group.name): \(tally.joined(separator: ", "))"
        if !bad.isEmpty {
            message +=
                " — "
                + bad.prefix(6).map { "\($0.device): \($0.error ?? $0.message ?? $0.verdict.rawValue)" }
                .joined(separator: "; ")
            if bad.count > 6 { message += "; and \(bad.count - 6) more" }
        }
        if result.verdict == .error { result.error = message } else { result.message = message }
        // Stopped part-way: the step is ABORTED, and the record still says what each member did.
        return result
    }

    func runMember(_ context: StepContext, member name: String) async throws -> MemberRecord {
        var record = MemberRecord(device: name, verdict: .pass, measurements: [])
        do {
            // A member that starts after a stop does nothing: the stop reaches it before it reads or moves anything.
            try Task.checkCancellation()
            let result = try await member.execute(context)
            record.verdict = result.verdict
            // Readings in the message name the member, not the alias: `compute07.power_state = PoweringOn`.
            let alias = "\(each.alias)."
            record.message = result.message?.replacingOccurrences(of: alias, with: "\(name).")
            record.measurements = result.measurements.map { measurement in
                var renamed = measurement
                renamed.name = Self.memberName(measurement.name, context.bus)
                return renamed
            }
        } catch is CancellationError {
            record.verdict = .aborted
        } catch let error as DeviceError {
            record.verdict = error.isCancellation ? .aborted : .error
            record.error = error.description
        } catch let error as ExpressionError {
            record.verdict = .error
            record.error = "\(context.step.location): \(error.message)"
        } catch {
            record.verdict = .error
            record.error = "\(error)"
        }
        return record
    }

    /// `each.bmc_version` as the member sees it: `compute07.bmc_version`.
    static func memberName(_ reference: String, _ bus: DeviceBus) -> String {
        guard let dot = reference.firstIndex(of: "."), let device = bus.aliases[String(reference[..<dot])] else {
            return reference
        }
        return device + reference[dot...]
    }
}
