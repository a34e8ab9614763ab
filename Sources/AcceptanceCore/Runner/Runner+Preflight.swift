import Foundation

/// Everything checked before the rack is touched: values prompts need, times that depend only on parameters, and
/// every device the procedure uses reachable (logins, certificate pins).
extension Runner {
    /// Checks, before anything is actuated, that every value a prompt needs can be had.
    func preflight() -> String? {
        var problems: [String] = []
        for (name, pattern, _) in settings.procedure.inputs {
            if let value = settings.inputs[name] {
                if let pattern, !Self.matches(value, pattern) {
                    problems.append("--input \(name)=\(value) does not match the pattern \(pattern)")
                }
            } else if !console.isInteractive, settings.simulatedInputs[name] == nil {
                problems.append(
                    "the prompt for '\(name)' needs a value and no operator can answer: "
                        + "pass --input \(name)=VALUE\(name == "rack_serial" ? " (or --rack-serial)" : "")")
            }
        }
        problems += timeProblems()
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    /// Every device the procedure uses, group members included, in the order the rack lists them.
    var usedDevices: [String] {
        let procedure = settings.procedure
        var names = Set(procedure.devices)
        for group in procedure.deviceGroups {
            for member in bus.configuration.rack.group(named: group)?.members ?? [] { names.insert(member) }
        }
        return bus.configuration.rack.devices.map(\.name).filter { names.contains($0) }
    }

    /// Connects every device the procedure uses before anything is actuated: a BMC whose certificate does not
    /// match its pin, or that refuses the login, stops the run here, with the rack untouched.
    func connectDevices() async -> String? {
        // The interlocks' devices are connected even when no step uses them (leak-test watches the cold plates),
        // on the supervisor's own connections when it has them.
        let watched = interlockDevices
        var devices = usedDevices.compactMap { bus.devices[$0] }
        if separateSupervisor {
            devices += watched.compactMap { supervisorBus.devices[$0] }
        } else {
            let used = Set(usedDevices)
            devices += watched.filter { !used.contains($0) }.compactMap { bus.devices[$0] }
        }
        var missing = watched.filter { supervisorBus.devices[$0] == nil }
        missing.sort()
        let outcomes = await BoundedConcurrency.map(devices, limit: Self.connectConcurrency) { device -> DeviceError? in
            do throws(DeviceError) {
                try await device.connect()
                return nil
            } catch {
                return error
            }
        }
        var failures = outcomes.compactMap { $0 }
        for name in missing {
            failures.append(
                DeviceError(
                    device: name, endpoint: "-", operation: .reading, points: [],
                    reason: "the station does not connect it"))
        }
        guard !failures.isEmpty else { return nil }
        var seen = Set<String>()
        let sorted = failures.sorted { $0.device < $1.device }.filter { seen.insert($0.device).inserted }
        var message =
            "before anything was actuated, \(sorted.count) device\(sorted.count == 1 ? "" : "s") could not be "
            + "reached: " + sorted.prefix(5).map { "\($0.device): \($0.reason)" }.joined(separator: "; ")
        if sorted.count > 5 { message += "; and \(sorted.count - 5) more" }
        let failed = Set(sorted.map(\.device))
        let blind = settings.interlocks.filter { interlock in
            !failed.isDisjoint(with: interlock.devices) || !failed.isDisjoint(with: interlock.reaction.map(\.device))
        }
        if !blind.isEmpty {
            message +=
                ". Interlock\(blind.count == 1 ? "" : "s") \(blind.map { "'\($0.name)'" }.joined(separator: ", ")) "
                + "cannot be watched without \(blind.count == 1 ? "it" : "them"): the run is refused unless the station "
                + "waives \(blind.count == 1 ? "it" : "them") by name (waive: {\(blind[0].name): reason})"
        }
        return message
    }

    /// How many devices connect (log in, check their pins) at once: a rack's BMCs, all of them.
    static let connectConcurrency = 32

    /// The longest wait, timeout or hold a step may have: longer is a mistake, not a test.
    static let longestTime = Duration.seconds(7 * 24 * 3600)

    /// Checks every time a step will use that depends only on parameters, so a bad `--param` is caught before
    /// the rack moves rather than halfway through.
    func timeProblems() -> [String] {
        let environment = state.withLock { $0.environment }
        var problems: [String] = []
        func check(_ expression: Expression, _ what: String, _ step: Step, positive: Bool = false) -> Duration? {
            guard expression.references.allSatisfy({ environment[$0] != nil }) else { return nil }
            do {
                let value = try Self.duration(expression, environment)
                if positive, value <= .zero { problems.append("\(step.name): \(what) must be above zero") }
                if value > Self.longestTime {
                    problems.append("\(step.name): \(what) \(expression.source) is longer than 7 days")
                }
                return value
            } catch {
                problems.append("\(step.name): \(what): \(error)")
                return nil
            }
        }
        for step in settings.procedure.allSteps {
            switch step.kind {
            case let .wait(duration): _ = check(duration, "wait", step)
            case let .waitUntil(_, timeout, poll):
                _ = check(timeout, "timeout", step)
                _ = check(poll, "poll", step, positive: true)
            case let .sample(_, every, length, _, _):
                if let interval = check(every, "every", step, positive: true), let total = check(length, "for", step),
                    interval > .zero
                {
                    if interval > total {
                        problems.append(
                            "\(step.name): the interval (\(every.source)) is longer than the sampling (\(length.source))"
                        )
                    } else if total / interval > 1_000_000 {
                        problems.append("\(step.name): more than 1,000,000 samples; sample less often")
                    }
                }
            default: break
            }
        }
        return problems
    }

    static func matches(_ value: String, _ pattern: String) -> Bool {
        // The whole value must match, whatever alternations the pattern has.
        guard let regex = try? NSRegularExpression(pattern: "^(?:\(pattern))$") else { return false }
        let range = NSRange(value.startIndex..., in: value)
        return regex.firstMatch(in: value, range: range).map { $0.range == range } ?? false
    }
}
