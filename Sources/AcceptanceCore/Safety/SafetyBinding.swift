import Foundation

/// One thing done to one device to make the rack safe: a point written or an action invoked.
public struct SafetyAction: Sendable, Hashable, CustomStringConvertible {
    public enum Operation: Sendable, Hashable {
        case write(point: String, value: Value)
        case perform(action: String, value: String?)
    }

    public var device: String
    public var operation: Operation

    /// `cdu.pump_enable ← off`, `compute07.reset ForceOff`.
    public var description: String {
        switch operation {
        case let .write(point, value): "\(device).\(point) ← \(value)"
        case let .perform(action, value): "\(device).\(action)" + (value.map { " \($0)" } ?? "")
        }
    }

    /// Does it, through the bus.
    func apply(on bus: DeviceBus) async throws {
        switch operation {
        case let .write(point, value): try await bus.write("\(device).\(point)", value)
        case let .perform(action, value): try await bus.perform("\(device).\(action)", value: value)
        }
    }
}

/// An interlock ready to watch: its condition bound to the rack's points, its reaction to devices.
public struct Interlock: Sendable {
    public var name: String
    public var description: String
    /// True means the rack is unsafe.
    public var condition: Expression
    public var poll: Duration
    public var staleAfter: Duration
    public var reaction: [SafetyAction]
    public var location: SourceLocation

    /// Every `device.point` the condition reads.
    public var points: [String] { condition.references.filter { $0.contains(".") } }

    /// The devices it reads, in the order first named.
    public var devices: [String] {
        var seen: [String] = []
        for point in points {
            let device = String(point.prefix { $0 != "." })
            if !seen.contains(device) { seen.append(device) }
        }
        return seen
    }

    /// The default staleness when none is written: three polls (one missed answer is not a lost sensor).
    static func defaultStaleness(poll: Duration) -> Duration { max(poll * 3, .seconds(3)) }
}

/// A device's safe state, bound to its profile: `drive` and `check` use the device's own point names.
public struct SafeState: Sendable {
    public var drive: [(kind: SafetyActionDefinition.Kind, name: String, value: Value?)]
    public var check: Expression
    public var settle: Duration

    /// The actions that drive `device` to this state.
    public func actions(for device: String) -> [SafetyAction] {
        drive.map { step in SafetyAction(device: device, kind: step.kind, member: step.name, value: step.value) }
    }

    /// The check as read on `device` (`cdu.pump_enable == off`).
    public func check(for device: String) -> Expression {
        check.renaming { $0.contains(".") ? $0 : "\(device).\($0)" }
    }
}

extension SafeStateDefinition {
    /// Binds the safe state to the points and actions of `profile`, reporting what does not fit at its location.
    func bind(to profile: DeviceProfile, into problems: inout [Diagnostic]) -> SafeState? {
        var drive: [(kind: SafetyActionDefinition.Kind, name: String, value: Value?)] = []
        for action in self.drive {
            guard let value = bindValue(action, profile: profile, qualified: action.target, into: &problems) else {
                continue
            }
            drive.append((action.kind, action.target, value))
        }
        let types: (String) -> ValueType? = { name in profile.point(named: name)?.valueType }
        let (bound, type, errors) = check.bind(expecting: .bool, types: types)
        for error in errors {
            problems.append(
                Diagnostic(
                    at: check.location(ofOffset: error.offset) ?? location,
                    "safe_state check: \(error.message) (\(profile.model) has \(profile.points.map(\.name).joined(separator: ", ")))"
                ))
        }
        if errors.isEmpty, type != .bool {
            problems.append(
                Diagnostic(at: check.location ?? location, "safe_state check must be true/false, not \(type)"))
        }
        guard errors.isEmpty, type == .bool, drive.count == self.drive.count else { return nil }
        return SafeState(drive: drive, check: bound, settle: settle)
    }
}

/// Binds an action's value against the point or action it targets (`profile` is the target device's). Returns
/// nil, with a diagnostic, if it does not fit; `.some(nil)` for an action without a value.
func bindValue(
    _ action: SafetyActionDefinition, profile: DeviceProfile, qualified: String, into problems: inout [Diagnostic]
) -> Value?? {
    let name = String(action.target.split(separator: ".").last ?? "")
    switch action.kind {
    case .set:
        guard let point = profile.point(named: name) else {
            problems.append(
                Diagnostic(
                    at: action.location,
                    "'\(qualified)': \(profile.model) has no point '\(name)'"
                        + (closest(to: name, in: profile.points.map(\.name)).map { "; did you mean '\($0)'?" } ?? "")))
            return nil
        }
        guard point.access == .readWrite else {
            problems.append(Diagnostic(at: action.location, "'\(qualified)' is read-only: it cannot be set"))
            return nil
        }
        guard let value = action.value else { return nil }
        return constant(
            value, expecting: point.valueType, what: "value for \(qualified)", at: action.location, into: &problems
        )
        .map { .some($0) }
    case .action:
        guard let definition = profile.action(named: name) else {
            problems.append(
                Diagnostic(
                    at: action.location,
                    "'\(qualified)': \(profile.model) has no action '\(name)'"
                        + (profile.actions.isEmpty
                            ? "" : " (it has \(profile.actions.map(\.name).joined(separator: ", ")))")))
            return nil
        }
        guard let value = action.value else { return .some(nil) }
        let choices = ValueType.text(choices: definition.values.isEmpty ? nil : definition.values)
        guard
            let bound = constant(
                value, expecting: choices, what: "value for \(qualified)", at: action.location, into: &problems)
        else { return nil }
        return .some(bound)
    }
}

/// A value written as a constant (`off`, `open`, `automatic`, `40 %`), typed by what it is written to.
func constant(
    _ expression: Expression, expecting type: ValueType, what: String, at location: SourceLocation,
    into problems: inout [Diagnostic]
) -> Value? {
    let (bound, _, errors) = expression.bind(expecting: type) { _ in nil }
    if let error = errors.first {
        problems.append(
            Diagnostic(at: expression.location(ofOffset: error.offset) ?? location, "\(what): \(error.message)"))
        return nil
    }
    do {
        return try bound.evaluate([:])
    } catch {
        problems.append(Diagnostic(at: expression.location ?? location, "\(what): \(error.message)"))
        return nil
    }
}

extension RackConfiguration {
    /// The rack's interlocks with a station's over them, bound to this rack's devices and points. Problems are
    /// reported at the file and line that wrote them.
    public func bindInterlocks(
        _ definitions: [InterlockDefinition], overrides: [InterlockDefinition] = []
    ) -> (interlocks: [Interlock], problems: [Diagnostic]) {
        var merged = definitions
        for override in overrides {
            if let index = merged.firstIndex(where: { $0.name == override.name }) {
                merged[index] = merged[index].overridden(by: override)
            } else {
                merged.append(override)
            }
        }
        var interlocks: [Interlock] = []
        var problems: [Diagnostic] = []
        for definition in merged {
            guard let condition = definition.condition else {
                problems.append(
                    Diagnostic(
                        at: definition.location,
                        "interlock '\(definition.name)' needs 'trip_if': the condition that means the rack is unsafe"))
                continue
            }
            let types: (String) -> ValueType? = { name in self.resolve(name)?.point.valueType }
            let (bound, type, errors) = condition.bind(
                expecting: .bool, types: types, groups: { self.rack.group(named: $0)?.members })
            for error in errors {
                var message = "interlock '\(definition.name)' trip_if: \(error.message)"
                if error.message.hasPrefix("unknown point"),
                    let name = error.message.split(separator: "'").dropFirst().first,
                    let suggestion = closest(to: String(name), in: allPointNames)
                {
                    message += "; did you mean '\(suggestion)'?"
                }
                problems.append(
                    Diagnostic(at: condition.location(ofOffset: error.offset) ?? definition.location, message))
            }
            if errors.isEmpty, type != .bool {
                problems.append(
                    Diagnostic(
                        at: condition.location ?? definition.location,
                        "interlock '\(definition.name)' trip_if must be true/false, not \(type)"))
                continue
            }
            guard errors.isEmpty else { continue }
            var reaction: [SafetyAction] = []
            for action in definition.reaction ?? [] {
                reaction += bindReaction(action, interlock: definition.name, into: &problems)
            }
            if (definition.reaction ?? []).isEmpty {
                problems.append(
                    Diagnostic(
                        at: definition.location,
                        "interlock '\(definition.name)' needs a 'reaction': what makes the rack safe when it trips"))
            }
            let poll = definition.poll ?? .seconds(1)
            let stale = definition.staleAfter ?? Interlock.defaultStaleness(poll: poll)
            if stale < poll {
                problems.append(
                    Diagnostic(
                        at: definition.location,
                        "interlock '\(definition.name)': stale_after (\(Quantity.format(stale.seconds)) s) must be at "
                            + "least one poll (\(Quantity.format(poll.seconds)) s)"))
            }
            interlocks.append(
                Interlock(
                    name: definition.name, description: definition.description ?? definition.name, condition: bound,
                    poll: poll, staleAfter: stale, reaction: reaction, location: definition.location))
        }
        return (interlocks, problems)
    }

    /// A reaction entry for each device it names: a group's action is done on every member.
    func bindReaction(
        _ action: SafetyActionDefinition, interlock: String, into problems: inout [Diagnostic]
    ) -> [SafetyAction] {
        guard let dot = action.target.firstIndex(of: ".") else {
            problems.append(
                Diagnostic(
                    at: action.location,
                    "interlock '\(interlock)' reaction: '\(action.target)' must name a device or group and its "
                        + "point or action (cdu.pump_enable, compute_trays.reset)"))
            return []
        }
        let owner = String(action.target[..<dot])
        let member = String(action.target[action.target.index(after: dot)...])
        let devices = rack.group(named: owner)?.members ?? (rack.devices.contains { $0.name == owner } ? [owner] : [])
        guard let first = devices.first, let profile = profile(of: first) else {
            problems.append(
                Diagnostic(
                    at: action.location,
                    "interlock '\(interlock)' reaction: rack '\(rack.id)' has no device or group '\(owner)'"))
            return []
        }
        guard let value = bindValue(action, profile: profile, qualified: action.target, into: &problems) else {
            return []
        }
        return devices.map { device in SafetyAction(device: device, kind: action.kind, member: member, value: value) }
    }
}

extension SafetyAction {
    /// A bound `{set: point, value: ...}` or `{action: name, value: ...}` on one device: the one way a safe state's
    /// drive and an interlock's reaction become actions.
    init(device: String, kind: SafetyActionDefinition.Kind, member: String, value: Value?) {
        switch kind {
        case .set:
            self.init(device: device, operation: .write(point: member, value: value ?? .bool(false)))
        case .action:
            self.init(
                device: device,
                operation: .perform(
                    action: member, value: value.flatMap { if case let .text(t) = $0 { t } else { nil } }))
        }
    }
}
