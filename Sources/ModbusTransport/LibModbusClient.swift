import AcceptanceCore
import ModbusCore

/// One Modbus connection (a TCP socket, a serial port) and the thread its blocking calls run on, shared by every
/// device reached through it: the supplies on a shelf's RS-485 bus, or behind one TCP gateway.
public final class ModbusLine: Sendable {
    public let endpoint: ModbusEndpoint
    let connection: LibModbusConnection
    let thread: ConnectionThread

    public init(endpoint: ModbusEndpoint, settings: ModbusSettings = ModbusSettings()) throws(ModbusError) {
        self.endpoint = endpoint
        connection = try LibModbusConnection(endpoint: endpoint, unit: 1, settings: settings, label: "\(endpoint)")
        thread = ConnectionThread(name: "acceptance.modbus.\(endpoint)")
    }

    /// Closes the connection on the line's thread and returns once it is closed (a later transaction would open it
    /// again). A run closes its lines when it ends, so no socket outlives it.
    public func close() async {
        let connection = connection
        await withTaskExecutorPreference(thread) { connection.disconnect() }
    }
}

/// A Modbus client for one device (one unit on a line) over TCP or RTU, through libmodbus.
///
/// The line's own thread makes libmodbus's blocking calls, and each call makes one attempt: wrap the client in a
/// `RetryingModbusClient` for the station's retry policy (`reset()` closes the connection so a retry reconnects).
/// Clients on one line take turns, each transaction addressed to its unit. A pending transaction is never abandoned
/// mid-flight: cancellation takes effect when it returns, which is within its response timeout.
public final class LibModbusClient: ModbusClient {
    public let endpoint: String
    public let unit: UInt8
    public let line: ModbusLine

    /// The connection's own thread as a task executor. Code that makes many transactions in a row can run on it
    /// (`withTaskExecutorPreference(client.executor) { ... }`) so each blocking call is made in place.
    public var executor: some TaskExecutor { line.thread }

    public var preferredExecutor: (any TaskExecutor)? { line.thread }

    /// A client with a line of its own.
    public convenience init(
        endpoint: ModbusEndpoint, unit: UInt8, settings: ModbusSettings = ModbusSettings()
    )
        throws(ModbusError)
    {
        self.init(line: try ModbusLine(endpoint: endpoint, settings: settings), unit: unit)
    }

    /// A client for `unit` on a shared line.
    public init(line: ModbusLine, unit: UInt8) {
        self.line = line
        self.unit = unit
        endpoint = "\(line.endpoint) unit \(unit)"
    }

    /// Closes the line's connection; the next transaction reconnects.
    public func reset() async {
        let connection = line.connection
        await withTaskExecutorPreference(line.thread) { connection.disconnect() }
    }

    /// Runs one transaction on the line's thread (inline if the caller already runs there), addressed to this unit.
    private func transact<T: Sendable>(
        _ function: ModbusFunction, _ address: UInt16, _ count: Int,
        _ body: @escaping @Sendable (LibModbusConnection) -> Result<T, ModbusError>
    )
        async throws(ModbusError) -> T
    {
        if Task.isCancelled {
            throw ModbusError(.cancelled, function: function, address: address, count: count, endpoint: endpoint)
        }
        let connection = line.connection
        let unit = self.unit
        let endpoint = self.endpoint
        let transaction = { @Sendable () -> Result<T, ModbusError> in
            guard connection.address(unit) else {
                return .failure(
                    ModbusError(
                        .invalidRequest("unit id \(unit) is not a valid Modbus address here"),
                        function: function, address: address, count: count, endpoint: endpoint))
            }
            // Errors name this device's unit, not just the line.
            return body(connection).mapError { error in
                var error = error
                error.endpoint = endpoint
                return error
            }
        }
        // Already on the line's thread (the caller prefers its executor): call straight through.
        if line.thread.isCurrent { return try transaction().get() }
        return try await withTaskExecutorPreference(line.thread) { transaction() }.get()
    }

    private func readTable(_ table: ModbusTable, _ address: UInt16, _ count: Int) async throws(ModbusError) -> [UInt16]
    {
        try await transact(.read(table), address, count) { connection in
            Result { () throws(ModbusError) in try connection.read(table, startingAt: address, count: count) }
        }
    }

    public func readCoils(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [Bool] {
        try await readTable(.coil, address, count).map { $0 != 0 }
    }

    public func readDiscreteInputs(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [Bool] {
        try await readTable(.discreteInput, address, count).map { $0 != 0 }
    }

    public func readHoldingRegisters(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [UInt16] {
        try await readTable(.holdingRegister, address, count)
    }

    public func readInputRegisters(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [UInt16] {
        try await readTable(.inputRegister, address, count)
    }

    public func writeCoils(startingAt address: UInt16, values: [Bool]) async throws(ModbusError) {
        let raw = values.map { UInt16($0 ? 1 : 0) }
        try await transact(.writeMultipleCoils, address, values.count) { connection in
            Result { () throws(ModbusError) in try connection.write(.coil, startingAt: address, values: raw) }
        }
    }

    public func writeRegisters(startingAt address: UInt16, values: [UInt16]) async throws(ModbusError) {
        try await transact(.writeMultipleRegisters, address, values.count) { connection in
            Result { () throws(ModbusError) in
                try connection.write(.holdingRegister, startingAt: address, values: values)
            }
        }
    }
}
