import AcceptanceCore

/// A device reached over Modbus: points are decoded with `PointCodec` from registers read through a client.
public struct ModbusPointDevice: PointDevice {
    public let name: String
    public let profile: DeviceProfile
    public let client: any ModbusClient

    /// The most registers one request may ask for (the profile's limit).
    let maxRegistersPerRead: Int

    public init(name: String, profile: DeviceProfile, client: any ModbusClient) {
        self.name = name
        self.profile = profile
        self.client = client
        maxRegistersPerRead = profile.maxRegistersPerRead
    }

    /// A device over `client` whose failed transactions are retried by `retry` on `clock`, each retry reported to
    /// `events`: how every Modbus device of a run is made, real or simulated.
    public init(
        name: String, profile: DeviceProfile, client: any ModbusClient, retry: RetryPolicy, clock: any RunClock,
        events: any TransportEventSink
    ) {
        self.init(
            name: name, profile: profile,
            client: RetryingModbusClient(client, policy: retry, clock: clock, device: name, events: events))
    }

    public var endpoint: String { "\(client.endpoint), \(profile.model)" }

    /// Contiguous runs of points in one table, each within the device's per-request limit.
    struct Block {
        var table: ModbusTable
        var start: Int
        var end: Int  // exclusive
        var members: [Int]  // indices into the request
    }

    /// Each point's layout, or a device error naming a point that is not a Modbus one.
    func layouts(of points: [PointDefinition], _ operation: DeviceError.Operation) throws(DeviceError) -> [ModbusPoint]
    {
        var layouts: [ModbusPoint] = []
        layouts.reserveCapacity(points.count)
        for point in points {
            guard let layout = point.modbus else {
                throw DeviceError(
                    device: name, endpoint: endpoint, operation: operation, points: [point.name],
                    reason: "not a Modbus point (\(point.whereabouts))")
            }
            layouts.append(layout)
        }
        return layouts
    }

    func blocks(for points: [ModbusPoint]) -> [Block] {
        let order = points.indices.sorted {
            (points[$0].table.rawValue, points[$0].address) < (points[$1].table.rawValue, points[$1].address)
        }
        var blocks: [Block] = []
        for index in order {
            let point = points[index]
            let start = Int(point.address)
            let end = start + point.registerCount
            let limit = point.table.isBitTable ? 2000 : maxRegistersPerRead
            // Only adjacent or overlapping points share a request: never read registers the profile does not name.
            if var last = blocks.last, last.table == point.table, start <= last.end,
                max(last.end, end) - last.start <= limit
            {
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
        let layouts = try layouts(of: points, .reading)
        var values = [Value?](repeating: nil, count: points.count)
        for block in blocks(for: layouts) {
            let names = block.members.map { points[$0].name }
            let registers: [UInt16]
            do {
                registers = try await client.read(
                    block.table, startingAt: UInt16(block.start), count: block.end - block.start)
            } catch {
                throw DeviceError(
                    device: name, endpoint: endpoint, operation: .reading, points: names,
                    reason: error.description, cause: error)
            }
            guard registers.count == block.end - block.start else {
                throw DeviceError(
                    device: name, endpoint: endpoint, operation: .reading, points: names,
                    reason: "asked for \(block.end - block.start) registers, got \(registers.count)")
            }
            for index in block.members {
                let point = points[index]
                let layout = layouts[index]
                let from = Int(layout.address) - block.start
                do {
                    values[index] = try PointCodec.decode(
                        registers[from..<(from + layout.registerCount)], for: point, layout: layout)
                } catch {
                    throw DeviceError(
                        device: name, endpoint: endpoint, operation: .reading, points: [point.name],
                        reason: "\(error.message) at \(layout.registerDescription)")
                }
            }
        }
        return values.map { $0 ?? .number(.nan) }
    }

    public func write(_ point: PointDefinition, _ value: Value) async throws(DeviceError) {
        guard let layout = try layouts(of: [point], .writing).first else { return }
        guard point.access == .readWrite else {
            throw DeviceError(
                device: name, endpoint: endpoint, operation: .writing, points: [point.name],
                reason: "point is read-only (\(layout.registerDescription))")
        }
        let registers: [UInt16]
        do {
            registers = try PointCodec.encode(value, for: point, layout: layout)
        } catch {
            throw DeviceError(
                device: name, endpoint: endpoint, operation: .writing, points: [point.name],
                reason: error.message)
        }
        do {
            if layout.table == .coil {
                try await client.writeCoils(startingAt: layout.address, values: registers.map { $0 != 0 })
            } else {
                try await client.writeRegisters(startingAt: layout.address, values: registers)
            }
        } catch {
            throw DeviceError(
                device: name, endpoint: endpoint, operation: .writing, points: [point.name],
                reason: error.description, cause: error)
        }
    }
}
