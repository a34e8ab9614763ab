import Foundation

struct TypeChecker {
    let types: (String) -> ValueType?
    /// The members of a device group, by the group's name.
    var groups: (String) -> [String]? = { _ in nil }
    var errors: [ExpressionError] = []

    static let functions = ["abs", "min", "max", "any", "all"]

    init(types: @escaping (String) -> ValueType?, groups: @escaping (String) -> [String]? = { _ in nil }) {
        self.types = types
        self.groups = groups
    }

    /// The device group a `group.point` name reads, if its first part is a group.
    func group(of name: String) -> String? {
        guard let dot = name.firstIndex(of: ".") else { return nil }
        let group = String(name[..<dot])
        return groups(group) == nil ? nil : group
    }

    /// `any(group.point == X)` / `all(...)`: the condition once per member of the group, joined with `or` / `and`.
    /// Only the first member's errors are reported (they are the same for every member).
    mutating func quantify(_ name: String, _ arguments: [ExpressionNode], offset: Int) -> (ExpressionNode, ValueType) {
        guard arguments.count == 1, let condition = arguments.first else {
            return (.call(name, arguments, offset: offset), fail("\(name) takes one condition", at: offset))
        }
        var names: [String] = []
        condition.collectNames(into: &names)
        let used = Set(names.compactMap { group(of: $0) })
        guard used.count == 1, let group = used.first, let members = groups(group), !members.isEmpty else {
            let message =
                used.isEmpty
                ? "\(name)(...) reads the points of one device group, such as compute_trays.coldplate_leak"
                : "\(name)(...) reads one device group, not \(used.sorted().joined(separator: " and "))"
            return (.call(name, arguments, offset: offset), fail(message, at: offset))
        }
        let prefix = group + "."
        var joined: ExpressionNode?
        var type = ValueType.bool
        for (index, member) in members.enumerated() {
            let kept = errors.count
            let (node, memberType) = check(
                condition.renaming { $0.hasPrefix(prefix) ? member + "." + $0.dropFirst(prefix.count) : $0 },
                context: .bool)
            if index > 0 { errors.removeSubrange(kept...) }
            if index == 0, memberType != .bool, memberType != .unknown {
                type = fail("\(name)(...) needs a true/false condition, not \(memberType)", at: condition.offset)
            }
            joined = joined.map { .binary(name == "any" ? .or : .and, $0, node, offset: offset) } ?? node
        }
        return (joined ?? condition, type)
    }

    mutating func fail(_ message: String, at offset: Int) -> ValueType {
        errors.append(ExpressionError(message, at: offset))
        return .unknown
    }

    /// `context` is the type this node is compared with or assigned to, used to read bare enumeration states.
    mutating func check(_ node: ExpressionNode, context: ValueType?) -> (ExpressionNode, ValueType) {
        switch node {
        case let .literal(value, _):
            return (node, value.type)
        case let .name(name, offset):
            if let type = types(name) { return (node, type) }
            if case let .text(choices?)? = context, choices.contains(name) {
                return (.literal(.text(name), offset: offset), .text(choices: choices))
            }
            if case .bool? = context, let state = ["open": true, "closed": false][name] {
                return (.literal(.bool(state), offset: offset), .bool)
            }
            var message = name.contains(".") ? "unknown point '\(name)'" : "unknown name '\(name)'"
            if let group = group(of: name) {
                message = "'\(name)' reads every member of \(group): say which, inside any(...) or all(...)"
            }
            if case let .text(choices?)? = context {
                message += "; expected one of \(choices.joined(separator: ", "))"
            }
            return (node, fail(message, at: offset))
        case let .unary(op, operand, offset):
            let (checked, type) = check(operand, context: nil)
            let result: ValueType
            switch (op, type) {
            case (_, .unknown): result = .unknown
            case (.not, .bool): result = .bool
            case (.negate, .number), (.negate, .quantity): result = type
            default: result = fail("'\(op.rawValue)' cannot be applied to \(type)", at: offset)
            }
            return (.unary(op, checked, offset: offset), result)
        case let .binary(op, lhs, rhs, offset):
            var (left, leftType) = check(lhs, context: nil)
            var (right, rightType) = check(rhs, context: op.isComparison ? leftType : nil)
            // Let a bare state on the left read against the right: `manual == cdu.mode`.
            if op.isComparison, leftType == .unknown, case .name = lhs, rightType != .unknown {
                errors.removeAll { $0.offset == lhs.offset }
                (left, leftType) = check(lhs, context: rightType)
            }
            if op.isComparison, case .name = rhs, rightType == .unknown, leftType == .unknown {
                (right, rightType) = (rhs, .unknown)
            }
            if op.isComparison {
                checkState(left, against: rightType)
                checkState(right, against: leftType)
            }
            return (
                .binary(op, left, right, offset: offset),
                binaryType(op, leftType, rightType, offset: offset)
            )
        case let .call(name, arguments, offset) where name == "any" || name == "all":
            return quantify(name, arguments, offset: offset)
        case let .call(name, arguments, offset):
            var checked: [ExpressionNode] = []
            var argumentTypes: [ValueType] = []
            for argument in arguments {
                let (node, type) = check(argument, context: nil)
                checked.append(node)
                argumentTypes.append(type)
            }
            let result: ValueType
            switch name {
            case "abs":
                if argumentTypes.count != 1 {
                    result = fail("abs takes one value", at: offset)
                } else {
                    result = numericOrFail(argumentTypes[0], "abs", offset: offset)
                }
            case "min", "max":
                if argumentTypes.isEmpty {
                    result = fail("\(name) takes at least one value", at: offset)
                } else if argumentTypes.contains(.unknown) {
                    result = .unknown
                } else if Set(argumentTypes).count != 1 {
                    result = fail(
                        "\(name) needs values of one kind, got \(argumentTypes.map(\.description).joined(separator: ", "))",
                        at: offset)
                } else {
                    result = numericOrFail(argumentTypes[0], name, offset: offset)
                }
            default:
                var message = "unknown function '\(name)'"
                if let suggestion = closest(to: name, in: Self.functions) {
                    message += "; did you mean '\(suggestion)'?"
                }
                result = fail(message, at: offset)
            }
            return (.call(name, checked, offset: offset), result)
        }
    }

    /// A quoted state compared with (or written to) an enumerated point must be one of its states: a typo would
    /// otherwise never match, and the rack would be blamed for it.
    mutating func checkState(_ node: ExpressionNode, against type: ValueType) {
        guard case let .literal(.text(text), offset) = node, case let .text(choices?) = type, !choices.contains(text)
        else { return }
        var message = "'\(text)' is not a state of this point; use one of \(choices.joined(separator: ", "))"
        if let suggestion = closest(to: text, in: choices) { message += " (did you mean '\(suggestion)'?)" }
        errors.append(ExpressionError(message, at: offset))
    }

    mutating func numericOrFail(_ type: ValueType, _ function: String, offset: Int) -> ValueType {
        switch type {
        case .number, .quantity, .unknown: type
        default: fail("\(function) needs a number or quantity, not \(type)", at: offset)
        }
    }

    mutating func binaryType(_ op: BinaryOperator, _ lhs: ValueType, _ rhs: ValueType, offset: Int) -> ValueType {
        if lhs == .unknown || rhs == .unknown { return op.isComparison || op == .and || op == .or ? .bool : .unknown }
        switch op {
        case .and, .or:
            guard lhs == .bool, rhs == .bool else {
                return fail("'\(op.rawValue)' needs true/false on both sides, got \(lhs) and \(rhs)", at: offset)
            }
            return .bool
        case .equal, .notEqual:
            switch (lhs, rhs) {
            case (.text, .text), (.bool, .bool), (.number, .number): return .bool
            case let (.quantity(a), .quantity(b)) where a == b: return .bool
            default: return mismatch(op, lhs, rhs, offset: offset)
            }
        case .less, .lessOrEqual, .greater, .greaterOrEqual:
            switch (lhs, rhs) {
            case (.number, .number): return .bool
            case let (.quantity(a), .quantity(b)) where a == b: return .bool
            default: return mismatch(op, lhs, rhs, offset: offset)
            }
        case .add, .subtract:
            switch (lhs, rhs) {
            case (.number, .number): return .number
            case let (.quantity(a), .quantity(b)) where a == b: return lhs
            default: return mismatch(op, lhs, rhs, offset: offset)
            }
        case .multiply:
            switch (lhs, rhs) {
            case (.number, .number): return .number
            case (.quantity, .number): return lhs
            case (.number, .quantity): return rhs
            default:
                return fail("'*' can scale a quantity by a plain number, not multiply \(lhs) by \(rhs)", at: offset)
            }
        case .divide:
            switch (lhs, rhs) {
            case (.number, .number): return .number
            case (.quantity, .number): return lhs
            case let (.quantity(a), .quantity(b)) where a == b: return .number
            default: return fail("'/' cannot divide \(lhs) by \(rhs)", at: offset)
            }
        }
    }

    mutating func mismatch(_ op: BinaryOperator, _ lhs: ValueType, _ rhs: ValueType, offset: Int) -> ValueType {
        switch (lhs, rhs) {
        case (.quantity, .number), (.number, .quantity):
            return fail(
                "'\(op.rawValue)' mixes \(lhs == .number ? rhs : lhs) with a number without unit; "
                    + "give the number a unit", at: offset)
        default:
            return fail("'\(op.rawValue)' cannot combine \(lhs) with \(rhs)", at: offset)
        }
    }
}
