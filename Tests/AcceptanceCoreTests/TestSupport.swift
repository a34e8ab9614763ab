import Foundation
import InstrumentCore
import ModbusCore
import RedfishCore
import Synchronization

@testable import AcceptanceCore

/// The device protocols the fixtures use, as the harness lists them.
let testProtocols = DeviceProtocols([ModbusProfileSyntax(), RedfishProfileSyntax(), SCPIProfileSyntax()])

/// The repository root, for tests that read the real procedures and fixtures.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// A throwaway folder with a small rack (one device, `dev`) and helpers to load procedures against it.
struct TestBench {
    let directory: String

    /// - Parameters:
    ///   - rack: more of the rack profile (its `interlocks:`).
    ///   - device: more of the device profile (its `safe_state:`).
    init(rack: String = "", device: String = "") throws {
        directory = NSTemporaryDirectory() + "acceptance-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: "\(directory)/racks", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(directory)/devices", withIntermediateDirectories: true)
        try """
        id: test-rack
        title: Test rack
        devices:
          dev: {model: test-device}
        \(rack)
        """.write(toFile: "\(directory)/racks/test-rack.yaml", atomically: true, encoding: .utf8)
        try """
        model: test-device
        kind: test
        points:
          pressure: {table: holding-register, address: 0, type: int16, scale: 0.1, unit: kPa, access: read-write}
          temperature: {table: input-register, address: 0, type: int16, scale: 0.1, unit: °C}
          count: {table: input-register, address: 1, type: uint16}
          valve: {table: coil, address: 0, access: read-write, states: {0: closed, 1: open}}
          alarm: {table: discrete-input, address: 0}
          mode: {table: holding-register, address: 1, type: uint16, access: read-write, states: {0: auto, 1: manual}}
        \(device)
        """.write(toFile: "\(directory)/devices/test-device.yaml", atomically: true, encoding: .utf8)
    }

    func write(_ yaml: String, name: String = "procedure.yaml") throws -> String {
        let path = "\(directory)/\(name)"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func check(_ yaml: String) throws -> ProcedureLoader.Result {
        ProcedureLoader(fixtures: directory, protocols: testProtocols).check(path: try write(yaml))
    }

    func load(_ yaml: String) throws -> (Procedure, RackConfiguration) {
        try ProcedureLoader(fixtures: directory, protocols: testProtocols).load(path: try write(yaml))
    }
}

/// An in-memory device: values by point name, optionally changing with the clock, with injectable failures.
final class FakeDevice: PointDevice {
    let name = "dev"
    let endpoint = "fake"
    let clock: any RunClock

    struct State {
        var values: [String: Value] = [:]
        var writes: [(String, Value)] = []
        var reads = 0
        var failing: Set<String> = []
        var failingWrites: Set<String> = []
        /// Points that take this long (on the clock) to answer: a slow device.
        var slow: [String: Duration] = [:]
        /// From this clock time on, reads of these points never answer (until a 60 s transport timeout).
        var silentFrom: (time: Double, points: Set<String>)?
        /// Every point read, with the clock time the read began.
        var readLog: [(point: String, time: Double)] = []
    }

    let state = Mutex(State())
    let dynamic: @Sendable (String, Double) -> Value?

    init(
        clock: any RunClock, values: [String: Value],
        dynamic: @escaping @Sendable (String, Double) -> Value? = { _, _ in nil }
    ) {
        self.clock = clock
        self.dynamic = dynamic
        state.withLock { $0.values = values }
    }

    var writes: [(String, Value)] { state.withLock { $0.writes } }

    func read(_ points: [PointDefinition]) async throws(DeviceError) -> [Value] {
        let start = clock.now().seconds
        let (delay, silent) = state.withLock { state -> (Duration, Bool) in
            for point in points { state.readLog.append((point.name, start)) }
            let delay = points.compactMap { state.slow[$0.name] }.max() ?? .zero
            var silent = false
            if let from = state.silentFrom, start >= from.time {
                silent = points.contains { from.points.contains($0.name) }
            }
            return (delay, silent)
        }
        if silent {
            try? await clock.sleep(until: clock.now() + .seconds(60))
            throw DeviceError(
                device: name, endpoint: endpoint, operation: .reading, points: points.map(\.name),
                reason: "no response within 60 s", cause: FakeTransportError.noAnswer)
        }
        if delay > .zero {
            do { try await clock.sleep(until: clock.now() + delay) } catch {
                throw DeviceError(
                    device: name, endpoint: endpoint, operation: .reading, points: points.map(\.name),
                    reason: "stopped", cause: FakeTransportError.stopped)
            }
        }
        let now = clock.now().seconds
        return try state.withLock { state throws(DeviceError) -> [Value] in
            state.reads += 1
            return try points.map { point throws(DeviceError) -> Value in
                if state.failing.contains(point.name) {
                    throw DeviceError(
                        device: name, endpoint: endpoint, operation: .reading, points: [point.name],
                        reason: "no response", cause: FakeTransportError.noAnswer)
                }
                return dynamic(point.name, now) ?? state.values[point.name] ?? .number(0)
            }
        }
    }

    func write(_ point: PointDefinition, _ value: Value) async throws(DeviceError) {
        try state.withLock { state throws(DeviceError) in
            if state.failingWrites.contains(point.name) {
                throw DeviceError(
                    device: name, endpoint: endpoint, operation: .writing, points: [point.name],
                    reason: "no response")
            }
            state.writes.append((point.name, value))
            state.values[point.name] = value
        }
    }
}

/// Collects events; can run an action when a step starts (to stop a run at a chosen moment).
final class RecordingObserver: RunObserver {
    let events = Mutex<[RunEvent]>([])
    let onStepStarted: @Sendable (Step) -> Void
    let onCleanup: @Sendable () -> Void

    init(onStepStarted: @escaping @Sendable (Step) -> Void = { _ in }, onCleanup: @escaping @Sendable () -> Void = {}) {
        self.onStepStarted = onStepStarted
        self.onCleanup = onCleanup
    }

    func handle(_ event: RunEvent) {
        events.withLock { $0.append(event) }
        if case let .stepStarted(step) = event { onStepStarted(step) }
        if case .cleanupStarted = event { onCleanup() }
    }
}

/// A clock whose sleeps never finish on their own: only cancellation ends them. For stopping a run mid-wait.
final class StuckClock: RunClock {
    let kind = ClockKind.simulated
    let originDate = Date(timeIntervalSince1970: 0)
    private let stream: AsyncStream<Int>
    private let continuation: AsyncStream<Int>.Continuation

    init() { (stream, continuation) = AsyncStream<Int>.makeStream() }

    var timeScale: Double? { nil }
    var now: RunInstant { RunInstant(sinceOrigin: .zero) }

    func sleep(until deadline: RunInstant, tolerance: Duration? = nil) async throws {
        if deadline.sinceOrigin <= .zero { return }
        for await _ in stream {}
        try Task.checkCancellation()
    }
}

/// Answers prompts from a script; declines when told to.
struct ScriptedOperator: OperatorConsole {
    var answers: [String: String] = [:]
    var declines = false
    var isInteractive: Bool { true }
    func confirm(_ text: String, step: Step) async throws -> Bool { !declines }
    func ask(_ text: String, input: String, pattern: String?, step: Step, problem: String?) async throws -> String {
        answers[input] ?? ""
    }
}

/// A transport's error as the core sees one: no answer, or stopped.
enum FakeTransportError: TransportError {
    case noAnswer, stopped

    var isNoResponse: Bool { self == .noAnswer }
    var isCancellation: Bool { self == .stopped }
    var description: String { self == .noAnswer ? "no answer within the timeout" : "cancelled" }
}
