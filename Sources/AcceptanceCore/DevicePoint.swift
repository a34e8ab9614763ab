/// Where a point's value lives on its device, in the terms of the transport that reaches it: a Modbus register, a
/// value inside a Redfish resource, a SCPI query. Each transport module defines its own; the core only shows it.
public protocol PointAddress: Sendable, Hashable, CustomStringConvertible {
    /// How the value is laid out, for listings: `int16 ×0.1`, `float32 CDAB`, `number`.
    var layout: String { get }
    /// Why `value` cannot be written to `point` at this address (out of range for its registers), or nil.
    func problem(writing value: Value, to point: PointDefinition) -> String?
}

extension PointAddress {
    public var layout: String { "" }
    public func problem(writing value: Value, to point: PointDefinition) -> String? { nil }
}

/// Where an action is carried out on its device, in its transport's terms (a Redfish action target).
public protocol ActionTarget: Sendable, Hashable, CustomStringConvertible {}

/// The kind of value a point holds, before units and states: what expressions can do with it.
public enum PointValueKind: String, Sendable, Hashable {
    /// A number; with a unit, a physical quantity.
    case number
    case text
    case bool
}

public enum PointAccess: String, Sendable, Hashable {
    case readOnly = "read-only"
    case readWrite = "read-write"
}

/// One named value of a device: `loop_pressure` is a pressure in kPa, read-only, at an address its transport
/// understands (input register 2 for a Modbus CDU).
public struct PointDefinition: Sendable, Hashable {
    public var name: String
    public var description: String
    public var kind: PointValueKind
    public var unit: PhysicalUnit?
    public var access: PointAccess
    /// Named states for enumerations (`0: automatic, 1: manual`, or a Redfish enumeration's values in order).
    public var states: [Int: String]
    /// Where the value lives on the device, for its transport.
    public var address: any PointAddress
    public var location: SourceLocation?

    public init(
        name: String, description: String = "", kind: PointValueKind, unit: PhysicalUnit? = nil,
        access: PointAccess = .readOnly, states: [Int: String] = [:], address: any PointAddress,
        location: SourceLocation? = nil
    ) {
        self.name = name
        self.description = description
        self.kind = kind
        self.unit = unit
        self.access = access
        self.states = states
        self.address = address
        self.location = location
    }

    /// Where the value lives, for messages: `input register 2`, `/redfish/v1/Systems/1 /PowerState`.
    public var whereabouts: String { address.description }

    /// The state names in raw-value order.
    public var stateNames: [String] { states.sorted { $0.key < $1.key }.map(\.value) }

    /// What expressions see when they read this point.
    public var valueType: ValueType {
        if !states.isEmpty { return .text(choices: stateNames) }
        switch kind {
        case .text: return .text(choices: nil)
        case .bool: return .bool
        case .number: return unit.map { .quantity($0.dimension) } ?? .number
        }
    }

    public static func == (lhs: PointDefinition, rhs: PointDefinition) -> Bool {
        lhs.name == rhs.name && lhs.description == rhs.description && lhs.kind == rhs.kind && lhs.unit == rhs.unit
            && lhs.access == rhs.access && lhs.states == rhs.states && lhs.location == rhs.location
            && AnyHashable(lhs.address) == AnyHashable(rhs.address)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(AnyHashable(address))
    }
}

/// An action a procedure can invoke on a device: `reset`, with a parameter taking one of `values`.
public struct ActionDefinition: Sendable, Hashable {
    public var name: String
    public var description: String
    /// The parameter the step's value is sent as (`ResetType`); nil for actions without one.
    public var parameter: String?
    /// The values the parameter may take.
    public var values: [String]
    /// Where and how the transport carries it out.
    public var target: any ActionTarget
    public var location: SourceLocation?

    public init(
        name: String, description: String = "", parameter: String? = nil, values: [String] = [],
        target: any ActionTarget, location: SourceLocation? = nil
    ) {
        self.name = name
        self.description = description
        self.parameter = parameter
        self.values = values
        self.target = target
        self.location = location
    }

    public static func == (lhs: ActionDefinition, rhs: ActionDefinition) -> Bool {
        lhs.name == rhs.name && lhs.description == rhs.description && lhs.parameter == rhs.parameter
            && lhs.values == rhs.values && lhs.location == rhs.location
            && AnyHashable(lhs.target) == AnyHashable(rhs.target)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(AnyHashable(target))
    }
}
