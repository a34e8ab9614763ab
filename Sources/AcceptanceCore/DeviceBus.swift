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
    public var underlying: ModbusError?
    public var redfish: RedfishError?

    public init(device: String, endpoint: String, operation: Operation, points: [String], reason: String,
                underlying: ModbusError? = nil, redfish: RedfishError? = nil) {
        self.device = device
        self.endpoint = endpoint
        self.operation = operation
        self.points = points
        self.reason = reason
        self.underlying = underlying
        self.redfish = redfish
    }

    /// The step was stopped while the device was being asked.
    public var isCancellation: Bool { underlying?.kind == .cancelled || redfish?.kind == .cancelled }

    /// True when the device did not answer at all (as opposed to answering wrongly).
    public var isNoResponse: Bool {
        if let redfish { return redfish.isNoResponse }
        return switch underlying?.kind {
        case .timeout?, .connection?: true
        case .exception(.gatewayPathUnavailable)?, .exception(.gatewayTargetFailedToRespond)?: true
        default: false
        }
    }

    public var description: String {
        "device '\(device)' (\(endpoint)) \(operation.rawValue) \(points.joined(separator: ", ")): \(reason)"
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
}

/// A device reached over Modbus: points are decoded with `PointCodec` from registers read through a client.
public struct ModbusPointDevice: PointDevice {
    public let name: String
    public let profile: DeviceProfile
    public let client: any ModbusClient

    public init(name: String, profile: DeviceProfile, client: any ModbusClient) {
        self.name = name
        self.profile = profile
        self.client = client
    }

    public var endpoint: String { "\(client.endpoint), \(profile.model)" }

    /// Contiguous runs of points in one table, each within the device's per-request limit.
    struct Block {
        var table: ModbusTable
        var start: Int
        var end: Int  // exclusive
        var members: [Int]  // indices into the request
    }

    func blocks(for points: [PointDefinition]) -> [Block] {
        let order = points.indices.sorted {
            (points[$0].table.rawValue, points[$0].address) < (points[$1].table.rawValue, points[$1].address)
        }
        var blocks: [Block] = []
        for index in order {
            let point = points[index]
            let start = Int(point.address), end = start + point.registerCount
            let limit = point.table.isBitTable ? 2000 : profile.maxRegistersPerRead
            // Only adjacent or overlapping points share a request: never read registers the profile does not name.
            if var last = blocks.last, last.table == point.table, start <= last.end, max(last.end, end) - last.start <= limit {
                last.end = max(last.end, end)
                last.members.append(index)
                blocks[blocks.count - 1] = last
            } else {
                blocks.append(Block(table: point.table, start: start, end: end, members: [index]))
            }
        }
        return blocks
    }

    public func read(_ points: [PointDefinition]) async throws(DeviceError) -> [Value] {
        guard let executor = client.preferredExecutor else { return try await readBlocks(points) }
        // All of this read's transactions on the client's own thread: one hand-off, not one per block.
        let result = await withTaskExecutorPreference(executor) { () async -> Result<[Value], DeviceError> in
            do throws(DeviceError) {
                return .success(try await readBlocks(points))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    func readBlocks(_ points: [PointDefinition]) async throws(DeviceError) -> [Value] {
        var values = [Value?](repeating: nil, count: points.count)
        for block in blocks(for: points) {
            let names = block.members.map { points[$0].name }
            let registers: [UInt16]
            do {
                registers = try await client.read(block.table, startingAt: UInt16(block.start), count: block.end - block.start)
            } catch {
                throw DeviceError(device: name, endpoint: endpoint, operation: .reading, points: names,
                                  reason: error.description, underlying: error)
            }
            guard registers.count == block.end - block.start else {
                throw DeviceError(device: name, endpoint: endpoint, operation: .reading, points: names,
                                  reason: "asked for \(block.end - block.start) registers, got \(registers.count)")
            }
            for index in block.members {
                let point = points[index]
                let from = Int(point.address) - block.start
                do {
                    values[index] = try PointCodec.decode(registers[from..<(from + point.registerCount)], for: point)
                } catch {
                    throw DeviceError(device: name, endpoint: endpoint, operation: .reading, points: [point.name],
                                      reason: "\(error.message) at \(point.registerDescription)")
                }
            }
        }
        return values.map { $0 ?? .number(.nan) }
    }

    public func write(_ point: PointDefinition, _ value: Value) async throws(DeviceError) {
        guard point.access == .readWrite else {
            throw DeviceError(device: name, endpoint: endpoint, operation: .writing, points: [point.name],
                              reason: "point is read-only (\(point.registerDescription))")
        }
        let registers: [UInt16]
        do {
            registers = try PointCodec.encode(value, for: point)
        } catch {
            throw DeviceError(device: name, endpoint: endpoint, operation: .writing, points: [point.name],
                              reason: error.message)
        }
        do {
            if point.table == .coil {
                try await client.writeCoils(startingAt: point.address, values: registers.map { $0 != 0 })
            } else {
                try await client.writeRegisters(startingAt: point.address, values: registers)
            }
        } catch {
            throw DeviceError(device: name, endpoint: endpoint, operation: .writing, points: [point.name],
                              reason: error.description, underlying: error)
        }
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
            for (index, (reference, _)) in requested.enumerated() { values[reference] = read[index] }
        }
        return values
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
            throw DeviceError(device: deviceName, endpoint: device.endpoint, operation: .writing, points: [action.name],
                              reason: "'\(value)' is not a \(action.parameter ?? "value") of \(action.name); the profile allows "
                                  + action.values.joined(separator: ", "))
        }
        try await device.perform(action, value: value)
    }
}
