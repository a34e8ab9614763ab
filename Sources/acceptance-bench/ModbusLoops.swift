import Foundation
import ModbusTransport

// The Modbus loops live outside main.swift: top-level code there is main-actor isolated, and a task executor
// preference does not move main-actor code off the main thread, so the loops would hop on every call.

/// Seconds for `iterations` reads of 10 holding registers through the harness client, from whichever executor the
/// caller runs on.
nonisolated func harnessReads(_ client: LibModbusClient, iterations: Int) async throws -> Double {
    let start = ContinuousClock.now
    for _ in 0..<iterations { _ = try await client.readHoldingRegisters(startingAt: 0, count: 10) }
    return (ContinuousClock.now - start).seconds
}

/// The same loop run on the client's own connection thread, as a polling step can arrange.
nonisolated func pinnedHarnessReads(_ client: LibModbusClient, iterations: Int) async throws -> Double {
    try await withTaskExecutorPreference(client.executor) {
        try await harnessReads(client, iterations: iterations)
    }
}
