/// A transport's own error behind a device error: what failed and where, in that transport's terms (a Modbus
/// exception at a register, an HTTP status from a URL).
public protocol TransportError: Error, Sendable, CustomStringConvertible {
    /// The device did not answer at all (no connection, a timeout), as opposed to answering wrongly.
    var isNoResponse: Bool { get }
    /// The request was abandoned because the run was stopped.
    var isCancellation: Bool { get }
}

/// A device did not do what the station asked: no answer, an exception, a value it could not represent.
///
/// Always a station-side problem (verdict ERROR), never a failed rack (FAIL).
public struct DeviceError: Error, Sendable, CustomStringConvertible {
    public enum Operation: String, Sendable { case reading, writing }

    /// The device instance (`cdu`).
    public var device: String
    /// Where it is (`10.0.4.20:502 unit 1`, `simulated reference-cdu unit 1`).
    public var endpoint: String
    public var operation: Operation
    /// The points involved.
    public var points: [String]
    public var reason: String
    /// The transport's own error, if any.
    public var cause: (any TransportError)?

    public init(
        device: String, endpoint: String, operation: Operation, points: [String], reason: String,
        cause: (any TransportError)? = nil
    ) {
        self.device = device
        self.endpoint = endpoint
        self.operation = operation
        self.points = points
        self.reason = reason
        self.cause = cause
    }

    /// The step was stopped while the device was being asked.
    public var isCancellation: Bool { cause?.isCancellation ?? false }

    /// True when the device did not answer at all (as opposed to answering wrongly).
    public var isNoResponse: Bool { cause?.isNoResponse ?? false }

    /// Shown to the operator: the reason often quotes the device (a BMC's message), so it is escaped and bounded.
    public var description: String {
        let reason = self.reason.escapingControlCharacters
        let shown = reason.count > 2000 ? String(reason.prefix(2000)) + "… [cut]" : reason
        return "device '\(device)' (\(endpoint)) \(operation.rawValue) \(points.joined(separator: ", ")): \(shown)"
    }
}

/// One device instance of the rack, reached by point name.
public protocol PointDevice: Sendable {
    /// The instance name in the rack profile (`cdu`).
    var name: String { get }
    var endpoint: String { get }
    /// Reads several points, in as few transactions as the device allows; values in the order asked.
    func read(_ points: [PointDefinition]) async throws(DeviceError) -> [Value]
    func write(_ point: PointDefinition, _ value: Value) async throws(DeviceError)
    /// Invokes an action (a Redfish `ComputerSystem.Reset`), with its parameter value.
    func perform(_ action: ActionDefinition, value: String?) async throws(DeviceError)
    /// Checks the device can be used (a pinned certificate, a login) before a run actuates anything.
    func connect() async throws(DeviceError)
}

extension PointDevice {
    /// Devices with nothing to check up front (Modbus: connecting is per transaction, with retries).
    public func connect() async throws(DeviceError) {}

    /// Devices without actions refuse them.
    public func perform(_ action: ActionDefinition, value: String?) async throws(DeviceError) {
        throw DeviceError(
            device: name, endpoint: endpoint, operation: .writing, points: [action.name],
            reason: "this device has no actions")
    }
}

/// Every device of the rack as the runner sees them: points by `device.point` name.
public struct DeviceBus: Sendable {
    public let configuration: RackConfiguration
    public let devices: [String: any PointDevice]
    /// A `for_each` step's member name (`each`) and the device it stands for in this pass.
    public private(set) var aliases: [String: String] = [:]

    public init(configuration: RackConfiguration, devices: [String: any PointDevice]) {
        self.configuration = configuration
        self.devices = devices
    }

    /// The bus as one member of a `for_each` step sees it: `alias.point` reads `device.point`.
    public func aliasing(_ alias: String, to device: String) -> DeviceBus {
        var bus = self
        bus.aliases[alias] = device
        return bus
    }

    public enum LookupError: Error, Sendable, CustomStringConvertible {
        case unknownPoint(String)
        case noDevice(String)

        public var description: String {
            switch self {
            case let .unknownPoint(name): "unknown point '\(name)'"
            case let .noDevice(name): "no device is connected for '\(name)'"
            }
        }
    }

    func target(_ reference: String) throws -> (any PointDevice, PointDefinition) {
        guard let (deviceName, point) = configuration.resolve(reference, aliases: aliases) else {
            throw LookupError.unknownPoint(reference)
        }
        guard let device = devices[deviceName] else { throw LookupError.noDevice(deviceName) }
        return (device, point)
    }

    /// Reads the named points, one batch per device; values keyed by `device.point`.
    public func read(_ references: [String]) async throws -> [String: Value] {
        var byDevice: [String: [(String, PointDefinition)]] = [:]
        var deviceOrder: [String] = []
        for reference in references {
            let (device, point) = try target(reference)
            if byDevice[device.name] == nil { deviceOrder.append(device.name) }
            byDevice[device.name, default: []].append((reference, point))
        }
        var values: [String: Value] = [:]
        for deviceName in deviceOrder {
            guard let device = devices[deviceName], let requested = byDevice[deviceName] else { continue }
            let read = try await device.read(requested.map(\.1))
            guard read.count == requested.count else {
                throw DeviceError(
                    device: deviceName, endpoint: device.endpoint, operation: .reading,
                    points: requested.map(\.0), reason: "\(read.count) values for \(requested.count) points")
            }
            for (index, (reference, _)) in requested.enumerated() { values[reference] = Self.bounded(read[index]) }
        }
        return values
    }

    /// The longest text kept from a device (a serial number, a firmware version, a state's name). A BMC answering an
    /// 8 MB serial number grew the journal to 226 MB; now every text value is cut here, once for every transport,
    /// and says that it was cut and how long it was.
    public static let maximumTextBytes = 1024

    /// `value`, with control characters in text escaped (see `escapingControlCharacters`), and text cut to
    /// `maximumTextBytes` (on a character boundary) and marked as cut.
    public static func bounded(_ value: Value) -> Value {
        guard case let .text(raw) = value else { return value }
        let text = raw.escapingControlCharacters
        guard text.utf8.count > maximumTextBytes else { return .text(text) }
        var kept = Substring(String(decoding: text.utf8.prefix(maximumTextBytes), as: UTF8.self))
        // A character cut in half decodes as U+FFFD (3 bytes): drop characters until it fits, whole.
        while kept.utf8.count > maximumTextBytes || kept.last == "\u{FFFD}" { kept = kept.dropLast() }
        return .text("\(kept)… [cut by the station: the device sent \(raw.utf8.count) bytes]")
    }

    /// The device a `device.point` or `device.action` names (a `for_each` member's alias resolved).
    public func deviceName(of reference: String) -> String? {
        configuration.split(reference, aliases: aliases)?.0
    }

    public func write(_ reference: String, _ value: Value) async throws {
        let (device, point) = try target(reference)
        try await device.write(point, value)
    }

    public func perform(_ reference: String, value: String?) async throws {
        guard let (deviceName, action) = configuration.resolveAction(reference, aliases: aliases) else {
            throw LookupError.unknownPoint(reference)
        }
        guard let device = devices[deviceName] else { throw LookupError.noDevice(deviceName) }
        if action.parameter != nil, let value, !action.values.contains(value) {
            throw DeviceError(
                device: deviceName, endpoint: device.endpoint, operation: .writing, points: [action.name],
                reason: "'\(value)' is not a \(action.parameter ?? "value") of \(action.name); the profile allows "
                    + action.values.joined(separator: ", "))
        }
        try await device.perform(action, value: value)
    }
}
