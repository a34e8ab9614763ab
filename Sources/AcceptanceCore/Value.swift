/// A value a point, a parameter or an expression can have.
public enum Value: Sendable, Hashable, CustomStringConvertible {
    /// A plain number with no unit (a count, a raw register).
    case number(Double)
    case quantity(Quantity)
    case bool(Bool)
    /// Text: an enumerated state (`manual`) or an operator's input (a serial number).
    case text(String)
    /// The device says it has no reading (a missing or failed sensor, reported with the profile's sentinel value).
    /// Never a number: anything computed from it is an error.
    case missing

    public var description: String {
        switch self {
        case let .number(value): Quantity.format(value)
        case let .quantity(quantity): quantity.description
        case let .bool(value): value ? "true" : "false"
        case let .text(text): text
        case .missing: "no reading"
        }
    }

    public var type: ValueType {
        switch self {
        case .number: .number
        case let .quantity(quantity): .quantity(quantity.dimension)
        case .bool: .bool
        case .text: .text(choices: nil)
        case .missing: .unknown
        }
    }

    public var quantity: Quantity? {
        if case let .quantity(quantity) = self { return quantity }
        return nil
    }

    /// The numeric value (in the value's own unit) for series statistics and plots.
    public var numeric: Double? {
        switch self {
        case let .number(value): value
        case let .quantity(quantity): quantity.value
        case let .bool(value): value ? 1 : 0
        case .text, .missing: nil
        }
    }
}

/// The static type of an expression, checked before anything runs.
public enum ValueType: Sendable, Hashable, CustomStringConvertible {
    case number
    case quantity(PhysicalDimension)
    case bool
    /// Text; for an enumerated point the states it may take.
    case text(choices: [String]?)
    /// Not known statically (an error was already reported).
    case unknown

    public var description: String {
        switch self {
        case .number: "a number without unit"
        case let .quantity(dimension): dimension.description
        case .bool: "true/false"
        case let .text(choices?): "one of \(choices.joined(separator: ", "))"
        case .text(nil): "text"
        case .unknown: "unknown"
        }
    }
}
