import AcceptanceCore

/// A Modbus client for one device over TCP or RTU, through libmodbus.
///
/// Each client has its own thread for libmodbus's blocking calls, and each call makes one attempt: wrap it in a
/// `RetryingModbusClient` for the station's retry policy (`reset()` closes the connection so a retry reconnects).
/// A pending transaction is never abandoned mid-flight: cancellation takes effect when it returns, which is within
/// its response timeout.
public final class LibModbusClient: ModbusClient {
    public let endpoint: String
    public let settings: ModbusSettings
    private let connection: LibModbusConnection
    private let thread: ConnectionThread

    /// The connection's own thread as a task executor. Code that makes many transactions in a row can run on it
    /// (`withTaskExecutorPreference(client.executor) { ... }`) so each blocking call is made in place.
    public var executor: some TaskExecutor { thread }

    public var preferredExecutor: (any TaskExecutor)? { thread }

    public init(endpoint: ModbusEndpoint, unit: UInt8, settings: ModbusSettings = ModbusSettings()) throws(ModbusError) {
        self.endpoint = "\(endpoint) unit \(unit)"
        self.settings = settings
        connection = try LibModbusConnection(endpoint: endpoint, unit: unit, settings: settings, label: self.endpoint)
        thread = ConnectionThread(name: "acceptance.modbus.\(endpoint)")
    }

    /// Closes the connection; the next transaction reconnects.
    public func reset() async {
        let connection = self.connection
        await withTaskExecutorPreference(thread) { connection.disconnect() }
    }

    /// Runs one transaction on the connection's thread: inline if the caller already runs there, else one hop
    /// there and back.
    private func transact<T: Sendable>(_ function: ModbusFunction, _ address: UInt16, _ count: Int,
                                       _ body: @escaping @Sendable (LibModbusConnection) -> Result<T, ModbusError>)
        async throws(ModbusError) -> T {
        if Task.isCancelled {
            throw ModbusError(.cancelled, function: function, address: address, count: count, endpoint: endpoint)
        }
        let connection = self.connection
        return try await withTaskExecutorPreference(thread) { body(connection) }.get()
    }

    private func readTable(_ table: ModbusTable, _ address: UInt16, _ count: Int) async throws(ModbusError) -> [UInt16] {
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
            Result { () throws(ModbusError) in try connection.write(.holdingRegister, startingAt: address, values: values) }
        }
    }
}
