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

    /// Every name the expression reads, in order of first use (found once, when the expression is made: steps ask
    /// for them every time they run).
    public let references: [String]

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
        var names: [String] = []
        root.collectNames(into: &names)
        references = names
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
    ///
    /// `groups` gives the members of a device group (`compute_trays`): `any(compute_trays.coldplate_leak == Critical)`
    /// becomes the condition for each member, joined with `or` (`all`: `and`), so it reads every member's point.
    public func bind(
        expecting expected: ValueType? = nil, types: @escaping (String) -> ValueType?,
        groups: @escaping (String) -> [String]? = { _ in nil }
    )
        -> (expression: Expression, type: ValueType, errors: [ExpressionError])
    {
        var checker = TypeChecker(types: types, groups: groups)
        let (node, type) = checker.check(root, context: expected)
        if let expected { checker.checkState(node, against: expected) }
        return (Expression(source: source, root: node, location: location), type, checker.errors)
    }

    /// The expression with every name passed through `rename`: a device profile's own condition
    /// (`pump_enable == off`) read as one device's (`cdu.pump_enable == off`).
    public func renaming(_ rename: (String) -> String) -> Expression {
        Expression(source: source, root: root.renaming(rename), location: location)
    }

    /// Computes the value given every referenced name's current value.
    public func evaluate(_ values: [String: Value]) throws(ExpressionError) -> Value {
        try root.evaluate(values)
    }
}
