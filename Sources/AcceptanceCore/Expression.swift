import Foundation

/// An error in an expression, located by character offset into its source text.
public struct ExpressionError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    /// 0-based offset in characters into the expression's source.
    public var offset: Int

    public init(_ message: String, at offset: Int) {
        self.message = message
        self.offset = offset
    }

    public var description: String { message }
}

/// A small, safe, unit-aware expression: `cdu.loop_pressure >= test_pressure - 5 kPa`.
///
/// Names are points (`device.point`), parameters and operator inputs. There are no side effects, no loops and no
/// way out to a shell: an expression can only read values and compute with them.
public struct Expression: Sendable, CustomStringConvertible {
    public let source: String
    let root: ExpressionNode
    /// Where the expression's text starts in its file, for diagnostics.
    public var location: SourceLocation?

    public var description: String { source }

    /// Every name the expression reads, in order of first use.
    public var references: [String] {
        var names: [String] = []
        root.collectNames(into: &names)
        return names
    }

    public static func parse(_ source: String) throws(ExpressionError) -> Expression {
        var parser = ExpressionParser(tokens: try ExpressionLexer.tokenize(source), end: source.count)
        let root = try parser.parseExpression()
        if let extra = parser.peek { throw ExpressionError("unexpected '\(extra.text)'", at: extra.offset) }
        return Expression(source: source, root: root)
    }

    init(source: String, root: ExpressionNode, location: SourceLocation? = nil) {
        self.source = source
        self.root = root
        self.location = location
    }

    /// A constant, for defaults written in code.
    public static func constant(_ value: Value, source: String) -> Expression {
        Expression(source: source, root: .literal(value, offset: 0))
    }

    /// An expression that reads one name.
    public static func reference(_ name: String) -> Expression {
        Expression(source: name, root: .name(name, offset: 0))
    }

    /// The location of a character of the expression in its file.
    public func location(ofOffset offset: Int) -> SourceLocation? {
        guard var location else { return nil }
        location.column += offset
        return location
    }

    /// Resolves names and checks types and units before anything runs.
    ///
    /// A bare name that is not a known value but is a state of an enumerated point it is compared with or assigned
    /// to (`cdu.mode == manual`) becomes that state. `expected` is the type the result will be used as.
    public func bind(
        expecting expected: ValueType? = nil, types: @escaping (String) -> ValueType?
    )
        -> (expression: Expression, type: ValueType, errors: [ExpressionError])
    {
        var checker = TypeChecker(types: types)
        let (node, type) = checker.check(root, context: expected)
        if let expected { checker.checkState(node, against: expected) }
        return (Expression(source: source, root: node, location: location), type, checker.errors)
    }

    /// Computes the value given every referenced name's current value.
    public func evaluate(_ values: [String: Value]) throws(ExpressionError) -> Value {
        try root.evaluate(values)
    }
}

// MARK: - Tokens

struct ExpressionToken: Sendable {
    enum Kind: Sendable, Equatable {
        case number(Double, PhysicalUnit?)
        case name(String)
        case string(String)
        case symbol(String)
    }

    var kind: Kind
    var text: String
    var offset: Int
}

enum ExpressionLexer {
    static let symbols = ["<=", ">=", "==", "!=", "&&", "||", "<", ">", "+", "-", "*", "/", "(", ")", ",", "!"]

    static func isNameStart(_ c: Character) -> Bool { c.isLetter || c == "_" }
    static func isNameContinue(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" }

    static func tokenize(_ source: String) throws(ExpressionError) -> [ExpressionToken] {
        let chars = Array(source)
        var tokens: [ExpressionToken] = []
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace {
                i += 1
                continue
            }
            let start = i
            if c.isNumber || (c == "." && i + 1 < chars.count && chars[i + 1].isNumber) {
                while i < chars.count, chars[i].isNumber || chars[i] == "." { i += 1 }
                if i < chars.count, chars[i] == "e" || chars[i] == "E" {
                    var j = i + 1
                    if j < chars.count, chars[j] == "+" || chars[j] == "-" { j += 1 }
                    if j < chars.count, chars[j].isNumber {
                        i = j
                        while i < chars.count, chars[i].isNumber { i += 1 }
                    }
                }
                let numberText = String(chars[start..<i])
                guard let value = Double(numberText) else {
                    throw ExpressionError("'\(numberText)' is not a number", at: start)
                }
                // An optional unit right after the number: `300 kPa`, `10min`, `1.5 L/min`.
                var j = i
                while j < chars.count, chars[j] == " " { j += 1 }
                var unit: PhysicalUnit?
                for symbol in PhysicalUnit.symbolsLongestFirst {
                    let symbolChars = Array(symbol)
                    guard j + symbolChars.count <= chars.count,
                        Array(chars[j..<(j + symbolChars.count)]) == symbolChars
                    else { continue }
                    let after = j + symbolChars.count
                    if after < chars.count, isNameContinue(chars[after]) { continue }
                    unit = PhysicalUnit.named(symbol)
                    i = after
                    break
                }
                tokens.append(
                    ExpressionToken(kind: .number(value, unit), text: String(chars[start..<i]), offset: start))
                continue
            }
            if isNameStart(c) {
                // Dotted names: `cdu.loop_pressure`.
                while i < chars.count,
                    isNameContinue(chars[i])
                        || (chars[i] == "." && i + 1 < chars.count && isNameStart(chars[i + 1]))
                {
                    i += 1
                }
                let name = String(chars[start..<i])
                tokens.append(ExpressionToken(kind: .name(name), text: name, offset: start))
                continue
            }
            if c == "'" || c == "\"" {
                i += 1
                var text = ""
                while i < chars.count, chars[i] != c {
                    text.append(chars[i])
                    i += 1
                }
                guard i < chars.count else { throw ExpressionError("unterminated text in quotes", at: start) }
                i += 1
                tokens.append(ExpressionToken(kind: .string(text), text: String(chars[start..<i]), offset: start))
                continue
            }
            if let symbol = symbols.first(where: { symbol in
                let s = Array(symbol)
                return i + s.count <= chars.count && Array(chars[i..<(i + s.count)]) == s
            }) {
                i += symbol.count
                tokens.append(ExpressionToken(kind: .symbol(symbol), text: symbol, offset: start))
                continue
            }
            if c == "=" {
                throw ExpressionError("'=' is not a comparison; use '==' (or '>=', '<=')", at: start)
            }
            throw ExpressionError("unexpected character '\(c)'", at: start)
        }
        return tokens
    }
}

// MARK: - Syntax tree

enum UnaryOperator: String, Sendable {
    case negate = "-"
    case not = "not"
}

enum BinaryOperator: String, Sendable {
    case or, and
    case equal = "=="
    case notEqual = "!="
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="
    case add = "+"
    case subtract = "-"
    case multiply = "*"
    case divide = "/"

    var isComparison: Bool {
        switch self {
        case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual: true
        default: false
        }
    }
}

indirect enum ExpressionNode: Sendable {
    case literal(Value, offset: Int)
    case name(String, offset: Int)
    case unary(UnaryOperator, ExpressionNode, offset: Int)
    case binary(BinaryOperator, ExpressionNode, ExpressionNode, offset: Int)
    case call(String, [ExpressionNode], offset: Int)

    var offset: Int {
        switch self {
        case let .literal(_, offset), let .name(_, offset), let .unary(_, _, offset), let .binary(_, _, _, offset),
            let .call(_, _, offset):
            offset
        }
    }

    func collectNames(into names: inout [String]) {
        switch self {
        case .literal: break
        case let .name(name, _): if !names.contains(name) { names.append(name) }
        case let .unary(_, operand, _): operand.collectNames(into: &names)
        case let .binary(_, lhs, rhs, _):
            lhs.collectNames(into: &names)
            rhs.collectNames(into: &names)
        case let .call(_, arguments, _): for argument in arguments { argument.collectNames(into: &names) }
        }
    }
}

// MARK: - Parser

struct ExpressionParser {
    var tokens: [ExpressionToken]
    var position = 0
    let end: Int
    /// Nesting so far; bounded so that hostile input cannot exhaust the stack.
    var depth = 0
    static let maximumDepth = 64

    init(tokens: [ExpressionToken], end: Int) {
        self.tokens = tokens
        self.end = end
    }

    var peek: ExpressionToken? { position < tokens.count ? tokens[position] : nil }

    mutating func advance() -> ExpressionToken? {
        defer { position += 1 }
        return peek
    }

    func isWord(_ token: ExpressionToken?, _ words: String...) -> Bool {
        guard let token else { return false }
        if case let .name(name) = token.kind { return words.contains(name) }
        if case let .symbol(symbol) = token.kind { return words.contains(symbol) }
        return false
    }

    mutating func parseExpression() throws(ExpressionError) -> ExpressionNode {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else {
            throw ExpressionError("expression nests deeper than \(Self.maximumDepth) levels", at: peek?.offset ?? end)
        }
        return try parseOr()
    }

    mutating func parseOr() throws(ExpressionError) -> ExpressionNode {
        var lhs = try parseAnd()
        while isWord(peek, "or", "||"), let token = advance() {
            lhs = .binary(.or, lhs, try parseAnd(), offset: token.offset)
        }
        return lhs
    }

    mutating func parseAnd() throws(ExpressionError) -> ExpressionNode {
        var lhs = try parseNot()
        while isWord(peek, "and", "&&"), let token = advance() {
            lhs = .binary(.and, lhs, try parseNot(), offset: token.offset)
        }
        return lhs
    }

    mutating func parseNot() throws(ExpressionError) -> ExpressionNode {
        if isWord(peek, "not", "!"), let token = advance() {
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maximumDepth else {
                throw ExpressionError("expression nests deeper than \(Self.maximumDepth) levels", at: token.offset)
            }
            return .unary(.not, try parseNot(), offset: token.offset)
        }
        return try parseComparison()
    }

    mutating func parseComparison() throws(ExpressionError) -> ExpressionNode {
        let lhs = try parseAdditive()
        if let token = peek, case let .symbol(symbol) = token.kind,
            let op = BinaryOperator(rawValue: symbol), op.isComparison
        {
            position += 1
            let rhs = try parseAdditive()
            if let next = peek, case let .symbol(s) = next.kind, let op2 = BinaryOperator(rawValue: s), op2.isComparison
            {
                throw ExpressionError("comparisons cannot be chained; join them with 'and'", at: next.offset)
            }
            return .binary(op, lhs, rhs, offset: token.offset)
        }
        return lhs
    }

    mutating func parseAdditive() throws(ExpressionError) -> ExpressionNode {
        var lhs = try parseMultiplicative()
        while let token = peek, case let .symbol(symbol) = token.kind, symbol == "+" || symbol == "-" {
            position += 1
            lhs = .binary(symbol == "+" ? .add : .subtract, lhs, try parseMultiplicative(), offset: token.offset)
        }
        return lhs
    }

    mutating func parseMultiplicative() throws(ExpressionError) -> ExpressionNode {
        var lhs = try parseUnary()
        while let token = peek, case let .symbol(symbol) = token.kind, symbol == "*" || symbol == "/" {
            position += 1
            lhs = .binary(symbol == "*" ? .multiply : .divide, lhs, try parseUnary(), offset: token.offset)
        }
        return lhs
    }

    mutating func parseUnary() throws(ExpressionError) -> ExpressionNode {
        if let token = peek, case .symbol("-") = token.kind {
            position += 1
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maximumDepth else {
                throw ExpressionError("expression nests deeper than \(Self.maximumDepth) levels", at: token.offset)
            }
            return .unary(.negate, try parseUnary(), offset: token.offset)
        }
        return try parsePrimary()
    }

    mutating func parsePrimary() throws(ExpressionError) -> ExpressionNode {
        guard let token = advance() else { throw ExpressionError("expression ends too early", at: end) }
        switch token.kind {
        case let .number(value, unit?):
            return .literal(.quantity(Quantity(value, unit)), offset: token.offset)
        case let .number(value, nil):
            return .literal(.number(value), offset: token.offset)
        case let .string(text):
            return .literal(.text(text), offset: token.offset)
        case let .name(name):
            switch name {
            case "true", "on": return .literal(.bool(true), offset: token.offset)
            case "false", "off": return .literal(.bool(false), offset: token.offset)
            case "and", "or", "not": throw ExpressionError("'\(name)' needs a value before it", at: token.offset)
            default: break
            }
            if let next = peek, case .symbol("(") = next.kind {
                position += 1
                var arguments: [ExpressionNode] = []
                if let close = peek, case .symbol(")") = close.kind {
                    position += 1
                } else {
                    while true {
                        arguments.append(try parseExpression())
                        guard let separator = advance() else { throw ExpressionError("missing ')'", at: end) }
                        if case .symbol(")") = separator.kind { break }
                        guard case .symbol(",") = separator.kind else {
                            throw ExpressionError(
                                "expected ',' or ')' but found '\(separator.text)'",
                                at: separator.offset)
                        }
                    }
                }
                return .call(name, arguments, offset: token.offset)
            }
            return .name(name, offset: token.offset)
        case .symbol("("):
            let inner = try parseExpression()
            guard let close = advance(), case .symbol(")") = close.kind else {
                throw ExpressionError("missing ')' to close '(' at column \(token.offset + 1)", at: end)
            }
            return inner
        case let .symbol(symbol):
            throw ExpressionError("expected a value but found '\(symbol)'", at: token.offset)
        }
    }
}

// MARK: - Types and units

struct TypeChecker {
    let types: (String) -> ValueType?
    var errors: [ExpressionError] = []

    static let functions = ["abs", "min", "max"]

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

// MARK: - Evaluation

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
