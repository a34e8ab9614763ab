import AcceptanceCore

extension RetryPolicy {
    /// Whether a Modbus failure is worth another try. A device that answered with a real exception (illegal
    /// address, illegal value) will answer the same again; one that timed out, dropped the line or was busy may not.
    public static func isRetryable(_ error: ModbusError) -> Bool {
        switch error.kind {
        case .timeout, .incomplete, .connection, .badResponse: true
        case .exception(.serverDeviceBusy), .exception(.acknowledge): true
        // A gateway saying the device behind it did not answer: as good as a timeout.
        case .exception(.gatewayPathUnavailable), .exception(.gatewayTargetFailedToRespond): true
        default: false
        }
    }
}

/// A transaction that failed and is being tried again; recorded in the run's journal and on the step.
public struct ModbusRetry: Sendable, CustomStringConvertible {
    public var endpoint: String
    public var attempt: Int
    public var of: Int
    public var error: ModbusError
    public var delay: Duration

    public var description: String {
        "retry \(attempt) of \(of) in \(Quantity.format(delay.seconds)) s after: \(error)"
    }
}

/// Retries any Modbus client's failed transactions by a policy, with backoff on the injected clock, resetting the
/// client (a fresh connection) before each retry. The same for every transport, simulated or real.
public final class RetryingModbusClient: ModbusClient {
    public let base: any ModbusClient
    public let policy: RetryPolicy
    private let clock: any RunClock
    /// The device instance retries are reported for, and where they go.
    private let device: String
    private let events: any TransportEventSink

    public init(
        _ base: any ModbusClient, policy: RetryPolicy, clock: any RunClock, device: String,
        events: any TransportEventSink
    ) {
        self.base = base
        self.policy = policy
        self.clock = clock
        self.device = device
        self.events = events
    }

    public var endpoint: String { base.endpoint }
    public var preferredExecutor: (any TaskExecutor)? { base.preferredExecutor }

    public func reset() async { await base.reset() }

    private func attempt<T: Sendable>(
        _ function: ModbusFunction, _ address: UInt16, _ count: Int,
        _ body: () async throws(ModbusError) -> T
    ) async throws(ModbusError) -> T {
        var attempt = 0
        while true {
            if Task.isCancelled {
                throw ModbusError(.cancelled, function: function, address: address, count: count, endpoint: endpoint)
            }
            do {
                return try await body()
            } catch {
                guard error.kind != .cancelled, RetryPolicy.isRetryable(error), attempt < policy.retries else {
                    throw error
                }
                attempt += 1
                let delay = policy.delay(before: attempt)
                let retry = ModbusRetry(
                    endpoint: endpoint, attempt: attempt, of: policy.retries, error: error, delay: delay)
                events.record(TransportEvent(.retry, device: device, message: retry.description))
                await base.reset()
                do {
                    try await clock.sleep(for: delay)
                } catch {
                    throw ModbusError(
                        .cancelled, function: function, address: address, count: count, endpoint: endpoint)
                }
            }
        }
    }

    public func readCoils(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [Bool] {
        try await attempt(.readCoils, address, count) { () throws(ModbusError) in
            try await base.readCoils(startingAt: address, count: count)
        }
    }

    public func readDiscreteInputs(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [Bool] {
        try await attempt(.readDiscreteInputs, address, count) { () throws(ModbusError) in
            try await base.readDiscreteInputs(startingAt: address, count: count)
        }
    }

    public func readHoldingRegisters(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [UInt16] {
        try await attempt(.readHoldingRegisters, address, count) { () throws(ModbusError) in
            try await base.readHoldingRegisters(startingAt: address, count: count)
        }
    }

    public func readInputRegisters(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [UInt16] {
        try await attempt(.readInputRegisters, address, count) { () throws(ModbusError) in
            try await base.readInputRegisters(startingAt: address, count: count)
        }
    }

    public func writeCoils(startingAt address: UInt16, values: [Bool]) async throws(ModbusError) {
        try await attempt(.writeMultipleCoils, address, values.count) { () throws(ModbusError) in
            try await base.writeCoils(startingAt: address, values: values)
        }
    }

    public func writeRegisters(startingAt address: UInt16, values: [UInt16]) async throws(ModbusError) {
        try await attempt(.writeMultipleRegisters, address, values.count) { () throws(ModbusError) in
            try await base.writeRegisters(startingAt: address, values: values)
        }
    }
}
