import Foundation

extension ExpressionNode {
    func evaluate(_ values: [String: Value]) throws(ExpressionError) -> Value {
        switch self {
        case let .literal(value, _):
            return value
        case let .name(name, offset):
            guard let value = values[name] else { throw ExpressionError("no value for '\(name)'", at: offset) }
            if value == .missing {
                throw ExpressionError(
                    "'\(name)' has no reading (the device reports the sensor missing or failed)",
                    at: offset)
            }
            return value
        case let .unary(op, operand, offset):
            let value = try operand.evaluate(values)
            switch (op, value) {
            case let (.not, .bool(b)): return .bool(!b)
            case let (.negate, .number(n)): return .number(-n)
            case let (.negate, .quantity(q)): return .quantity(Quantity(-q.value, q.unit))
            default: throw ExpressionError("'\(op.rawValue)' cannot be applied to \(value)", at: offset)
            }
        case let .binary(op, lhs, rhs, offset):
            let left = try lhs.evaluate(values)
            // Short-circuit logic, so `a and b` does not need b's value when a is false.
            if op == .and, case .bool(false) = left { return .bool(false) }
            if op == .or, case .bool(true) = left { return .bool(true) }
            return try Self.apply(op, left, try rhs.evaluate(values), offset: offset)
        case let .call(name, arguments, offset):
            let values = try arguments.map { argument throws(ExpressionError) in try argument.evaluate(values) }
            return try Self.call(name, values, offset: offset)
        }
    }

    static func apply(_ op: BinaryOperator, _ lhs: Value, _ rhs: Value, offset: Int) throws(ExpressionError) -> Value {
        func convert(_ q: Quantity, to unit: PhysicalUnit, interval: Bool) throws(ExpressionError) -> Quantity {
            do {
                return interval ? try q.convertedInterval(to: unit) : try q.converted(to: unit)
            } catch {
                throw ExpressionError("\(error)", at: offset)
            }
        }
        switch (op, lhs, rhs) {
        case let (.and, .bool(a), .bool(b)): return .bool(a && b)
        case let (.or, .bool(a), .bool(b)): return .bool(a || b)
        case let (.equal, a, b), let (.notEqual, a, b):
            let equal: Bool
            switch (a, b) {
            case let (.quantity(x), .quantity(y)):
                equal = x.value == (try convert(y, to: x.unit, interval: false)).value
            case let (.number(x), .number(y)): equal = x == y
            case let (.bool(x), .bool(y)): equal = x == y
            case let (.text(x), .text(y)): equal = x == y
            default: throw ExpressionError("cannot compare \(a) with \(b)", at: offset)
            }
            return .bool(op == .equal ? equal : !equal)
        case (.less, _, _), (.lessOrEqual, _, _), (.greater, _, _), (.greaterOrEqual, _, _):
            let x: Double
            let y: Double
            switch (lhs, rhs) {
            case let (.quantity(a), .quantity(b)): (x, y) = (a.value, try convert(b, to: a.unit, interval: false).value)
            case let (.number(a), .number(b)): (x, y) = (a, b)
            default: throw ExpressionError("cannot compare \(lhs) with \(rhs)", at: offset)
            }
            switch op {
            case .less: return .bool(x < y)
            case .lessOrEqual: return .bool(x <= y)
            case .greater: return .bool(x > y)
            default: return .bool(x >= y)
            }
        case let (.add, .number(a), .number(b)): return .number(a + b)
        case let (.subtract, .number(a), .number(b)): return .number(a - b)
        case let (.add, .quantity(a), .quantity(b)):
            return .quantity(Quantity(a.value + (try convert(b, to: a.unit, interval: true)).value, a.unit))
        case let (.subtract, .quantity(a), .quantity(b)):
            // The difference of two readings of one unit; a right-hand side in another unit is read as an interval.
            let converted = a.unit == b.unit ? b : try convert(b, to: a.unit, interval: true)
            return .quantity(Quantity(a.value - converted.value, a.unit))
        case let (.multiply, .number(a), .number(b)): return .number(a * b)
        case let (.multiply, .quantity(a), .number(b)), let (.multiply, .number(b), .quantity(a)):
            return .quantity(Quantity(a.value * b, a.unit))
        case (.divide, _, .number(0)):
            throw ExpressionError("division by zero", at: offset)
        case let (.divide, _, .quantity(b)) where b.value == 0:
            throw ExpressionError("division by zero", at: offset)
        case let (.divide, .number(a), .number(b)): return .number(a / b)
        case let (.divide, .quantity(a), .number(b)): return .quantity(Quantity(a.value / b, a.unit))
        case let (.divide, .quantity(a), .quantity(b)):
            return .number(a.value / (try convert(b, to: a.unit, interval: true)).value)
        default:
            throw ExpressionError("'\(op.rawValue)' cannot combine \(lhs) with \(rhs)", at: offset)
        }
    }

    static func call(_ name: String, _ arguments: [Value], offset: Int) throws(ExpressionError) -> Value {
        switch (name, arguments.first) {
        case let ("abs", .number(x)?): return .number(abs(x))
        case let ("abs", .quantity(q)?): return .quantity(Quantity(abs(q.value), q.unit))
        case ("min", let first?), ("max", let first?):
            var best = first
            for candidate in arguments.dropFirst() {
                let isLess = try apply(.less, candidate, best, offset: offset)
                if (name == "min") == (isLess == .bool(true)), candidate != best { best = candidate }
            }
            return best
        default:
            throw ExpressionError(
                "\(name) cannot be applied to \(arguments.map(\.description).joined(separator: ", "))",
                at: offset)
        }
    }
}
