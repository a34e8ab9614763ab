import Foundation

// The syntax tree of an expression, and the recursive-descent parser that builds it from tokens.

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

    /// The same tree with every name passed through `rename` (a group's points read as one member's).
    func renaming(_ rename: (String) -> String) -> ExpressionNode {
        switch self {
        case .literal: self
        case let .name(name, offset): .name(rename(name), offset: offset)
        case let .unary(op, operand, offset): .unary(op, operand.renaming(rename), offset: offset)
        case let .binary(op, lhs, rhs, offset): .binary(op, lhs.renaming(rename), rhs.renaming(rename), offset: offset)
        case let .call(name, arguments, offset): .call(name, arguments.map { $0.renaming(rename) }, offset: offset)
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
    /// Nesting so far, counting every operator of a chain (`a + b + c` is a tree two deep) as well as brackets,
    /// calls and prefixes; bounded so that the tree the evaluator and type checker walk recursively stays shallow
    /// whatever the input (a flat chain of 3,000 `+` overflowed the stack before).
    var depth = 0
    static let maximumDepth = 64

    /// One more level of nesting at `offset`, or an error saying the expression is too deep.
    mutating func deepen(at offset: Int) throws(ExpressionError) {
        depth += 1
        guard depth <= Self.maximumDepth else {
            throw ExpressionError(
                "expression nests deeper than \(Self.maximumDepth) levels (operators in a chain count as levels); "
                    + "split it with parameters",
                at: offset)
        }
    }

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
        try deepen(at: peek?.offset ?? end)
        defer { depth -= 1 }
        return try parseOr()
    }

    mutating func parseOr() throws(ExpressionError) -> ExpressionNode {
        var lhs = try parseAnd()
        let start = depth
        defer { depth = start }
        while isWord(peek, "or", "||"), let token = advance() {
            try deepen(at: token.offset)
            lhs = .binary(.or, lhs, try parseAnd(), offset: token.offset)
        }
        return lhs
    }

    mutating func parseAnd() throws(ExpressionError) -> ExpressionNode {
        var lhs = try parseNot()
        let start = depth
        defer { depth = start }
        while isWord(peek, "and", "&&"), let token = advance() {
            try deepen(at: token.offset)
            lhs = .binary(.and, lhs, try parseNot(), offset: token.offset)
        }
        return lhs
    }

    mutating func parseNot() throws(ExpressionError) -> ExpressionNode {
        if isWord(peek, "not", "!"), let token = advance() {
            try deepen(at: token.offset)
            defer { depth -= 1 }
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
        let start = depth
        defer { depth = start }
        while let token = peek, case let .symbol(symbol) = token.kind, symbol == "+" || symbol == "-" {
            position += 1
            try deepen(at: token.offset)
            lhs = .binary(symbol == "+" ? .add : .subtract, lhs, try parseMultiplicative(), offset: token.offset)
        }
        return lhs
    }

    mutating func parseMultiplicative() throws(ExpressionError) -> ExpressionNode {
        var lhs = try parseUnary()
        let start = depth
        defer { depth = start }
        while let token = peek, case let .symbol(symbol) = token.kind, symbol == "*" || symbol == "/" {
            position += 1
            try deepen(at: token.offset)
            lhs = .binary(symbol == "*" ? .multiply : .divide, lhs, try parseUnary(), offset: token.offset)
        }
        return lhs
    }

    mutating func parseUnary() throws(ExpressionError) -> ExpressionNode {
        if let token = peek, case .symbol("-") = token.kind {
            position += 1
            try deepen(at: token.offset)
            defer { depth -= 1 }
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
