import AcceptanceCore
import Foundation
import InstrumentCore
import ModbusCore
import RedfishCore
import Synchronization

/// The physics behind a simulated device, by standard point name.
public protocol SimulatedPhysics: Sendable {
    /// Moves the physics forward.
    mutating func advance(by seconds: Double)
    /// The value of a standard point, or nil if the device has no such sensor.
    mutating func reading(_ name: String) -> Value?
    /// Applies a write as the device's controller would; throws for values a real controller rejects.
    mutating func command(_ name: String, _ value: Value) throws(CDUCommandError)
    /// Applies a physical fault (a leak, a failed supply); protocol faults are the device's own business.
    mutating func apply(_ fault: ScheduledFault.Kind)
}

/// A simulated CDU: the generic simulated Modbus device with CDU physics.
public typealias SimulatedCDU = SimulatedDevice<CDUModel>

/// A simulated Modbus device answering requests from an in-memory register image.
///
/// The register layout is not hard-coded: the device profile maps the physics' standard points onto registers with
/// the same `PointCodec` the clients use, so any vendor's profile can be simulated. Physics advance lazily to the
/// shared clock's reading on every request, and scheduled faults fire at their simulated times.
public final class SimulatedDevice<Physics: SimulatedPhysics>: ModbusClient, ModbusServerBackend {
    public let name: String
    public let profile: DeviceProfile
    public let clock: any RunClock
    /// How long a silent device keeps a client waiting before the client gives up.
    public let responseTimeout: Duration

    struct State {
        var model: Physics
        var lastUpdate = Duration.zero
        var faults: [ScheduledFault]
        var isSilent = false
        var transactions = 0
        /// Protocol faults: every request answered with this exception; the next request dropped; slow answers.
        var forcedException: ModbusException?
        var dropNext = false
        var delay = Duration.zero
    }

    private let state: Mutex<State>
    /// For each table and address: the point there and the register's position within the point.
    private let layout: [ModbusTable: [UInt16: (point: Int, offset: Int)]]
    /// Each profile point's Modbus layout, by index (a profile of this device's kind is all Modbus points).
    private let modbus: [ModbusPoint]

    public init(
        name: String, profile: DeviceProfile, physics: Physics, faults: [ScheduledFault], clock: any RunClock,
        responseTimeout: Duration = .seconds(1)
    ) {
        self.name = name
        self.profile = profile
        self.clock = clock
        self.responseTimeout = responseTimeout
        state = Mutex(State(model: physics, faults: faults.filter { $0.device == name }))
        var layout: [ModbusTable: [UInt16: (point: Int, offset: Int)]] = [:]
        let modbus = profile.points.map { $0.modbus ?? ModbusPoint(table: .holdingRegister, address: 0, type: .uint16) }
        for (index, point) in profile.points.enumerated() where point.modbus != nil {
            let registers = modbus[index]
            for offset in 0..<registers.registerCount {
                let address = Int(registers.address) + offset
                guard address <= Int(UInt16.max) else { continue }
                layout[registers.table, default: [:]][UInt16(address)] = (index, offset)
            }
        }
        self.layout = layout
        self.modbus = modbus
    }

    public var endpoint: String { "simulated \(name)" }

    /// Profile points the model cannot simulate (reads of them answer "illegal data address").
    public var unsimulatedPoints: [String] {
        var model = state.withLock { $0.model }
        return profile.points.filter { model.reading($0.name) == nil && $0.modbus?.missing == nil }.map(\.name)
    }

    /// The model as it is now (advanced to the clock), for tests and the console.
    public func snapshot() -> Physics {
        state.withLock { state in
            advance(&state)
            return state.model
        }
    }

    /// Schedules a fault while the device runs (the fault matrix injects them as steps start): it fires at simulated
    /// time `at`, in order with the scenario's own.
    public func inject(_ kind: ScheduledFault.Kind, at time: Double) {
        state.withLock { state in
            let fault = ScheduledFault(at: time, device: name, kind: kind)
            let index = state.faults.firstIndex { $0.at > time } ?? state.faults.count
            state.faults.insert(fault, at: index)
        }
    }

    /// Number of Modbus transactions served.
    public var transactionCount: Int { state.withLock { $0.transactions } }

    private func advance(_ state: inout State) {
        let now = clock.now()
        while let fault = state.faults.first, Duration.seconds(fault.at) <= now {
            state.faults.removeFirst()
            integrate(&state, to: .seconds(fault.at))
            apply(fault, to: &state)
        }
        integrate(&state, to: now)
    }

    private func integrate(_ state: inout State, to time: Duration) {
        let seconds = (time - state.lastUpdate).seconds
        if seconds > 0 {
            state.model.advance(by: seconds)
            state.lastUpdate = time
        }
    }

    private func apply(_ fault: ScheduledFault, to state: inout State) {
        switch fault.kind {
        case .silent: state.isSilent = true
        case .recover:
            state.isSilent = false
            state.forcedException = nil
            state.delay = .zero
        case let .exceptions(code): state.forcedException = ModbusException(rawValue: code)
        case .dropConnection: state.dropNext = true
        case let .slow(seconds): state.delay = .seconds(seconds)
        case .leak, .leakSensor, .pumpFailure, .supplyFailure, .inputLoss: state.model.apply(fault.kind)
        }
    }

    /// Answers a read as the device would, on the wire or in memory: values, an exception, or silence.
    public func read(_ table: ModbusTable, startingAt address: UInt16, count: Int, unit: UInt8) -> ModbusServerAnswer {
        state.withLock { state in
            advance(&state)
            if let answer = protocolFault(&state) { return answer }
            state.transactions += 1
            do throws(ModbusError) {
                return .values(try registers(table, address, count, &state))
            } catch {
                if case let .exception(exception) = error.kind { return .exception(exception) }
                return .exception(.serverDeviceFailure)
            }
        }
    }

    /// Applies a write as the device would: done, an exception, or silence.
    public func write(
        _ table: ModbusTable, startingAt address: UInt16, values: [UInt16], unit: UInt8
    ) -> ModbusServerAnswer {
        state.withLock { state in
            advance(&state)
            if let answer = protocolFault(&state) { return answer }
            state.transactions += 1
            do throws(ModbusError) {
                try write(table, address, values, &state)
                return .done
            } catch {
                if case let .exception(exception) = error.kind { return .exception(exception) }
                return .exception(.serverDeviceFailure)
            }
        }
    }

    /// The answer a protocol fault forces, if one is active.
    private func protocolFault(_ state: inout State) -> ModbusServerAnswer? {
        if state.isSilent { return .noResponse }
        if state.dropNext {
            state.dropNext = false
            return .dropConnection
        }
        return state.forcedException.map { .exception($0) }
    }

    /// How slow the controller is answering now.
    public var responseDelay: Duration { state.withLock { $0.delay } }

    /// The in-memory client side: an answer becomes a result, silence costs the client its response timeout.
    private func client<T>(
        _ function: ModbusFunction, _ address: UInt16, _ count: Int, _ answer: ModbusServerAnswer,
        _ value: ([UInt16]) -> T
    ) async throws(ModbusError) -> T {
        let delay = responseDelay
        if delay > .zero {
            do { try await clock.sleep(for: min(delay, responseTimeout)) } catch {
                throw self.error(.cancelled, function, address, count)
            }
            if delay >= responseTimeout { throw error(.timeout, function, address, count) }
        }
        switch answer {
        case let .values(registers): return value(registers)
        case .dropConnection:
            throw error(.connection(code: ECONNRESET, message: "Connection reset by peer"), function, address, count)
        case .done: return value([])
        case let .exception(exception): throw error(.exception(exception), function, address, count)
        case .noResponse:
            do { try await clock.sleep(for: responseTimeout) } catch {
                throw self.error(.cancelled, function, address, count)
            }
            throw error(.timeout, function, address, count)
        }
    }

    private func error(
        _ kind: ModbusError.Kind, _ function: ModbusFunction, _ address: UInt16, _ count: Int
    ) -> ModbusError {
        ModbusError(kind, function: function, address: address, count: count, endpoint: endpoint)
    }

    private func registers(
        _ table: ModbusTable, _ address: UInt16, _ count: Int, _ state: inout State
    )
        throws(ModbusError) -> [UInt16]
    {
        let function = ModbusFunction.read(table)
        let limit = table.isBitTable ? 2000 : 125
        guard (1...limit).contains(count), Int(address) + count <= 65536 else {
            throw error(.exception(.illegalDataValue), function, address, count)
        }
        var result: [UInt16] = []
        result.reserveCapacity(count)
        var encoded: [Int: [UInt16]] = [:]
        for offset in 0..<count {
            guard let (pointIndex, position) = layout[table]?[address + UInt16(offset)] else {
                throw error(.exception(.illegalDataAddress), function, address, count)
            }
            let point = profile.points[pointIndex]
            let registers = modbus[pointIndex]
            if registers.type == .bitfield {
                // A status word: every bit point at this address contributes its bit, as the firmware packs it.
                result.append(try statusWord(table, address + UInt16(offset), &state, function, address, count))
                continue
            }
            if encoded[pointIndex] == nil {
                // A sensor the model does not have reads as the profile's "no reading" sentinel, if it has one.
                let value = state.model.reading(point.name) ?? (registers.missing != nil ? .missing : nil)
                guard let value, let registers = try? PointCodec.encode(value, for: point, layout: modbus[pointIndex])
                else { throw error(.exception(.illegalDataAddress), function, address, count) }
                encoded[pointIndex] = registers
            }
            result.append(encoded[pointIndex]?[position] ?? 0)
        }
        return result
    }

    /// The register holding bitfield points: each point's bit set from the model's true/false reading.
    private func statusWord(
        _ table: ModbusTable, _ register: UInt16, _ state: inout State, _ function: ModbusFunction,
        _ address: UInt16, _ count: Int
    ) throws(ModbusError) -> UInt16 {
        var word: UInt16 = 0
        for (point, registers) in zip(profile.points, modbus)
        where registers.table == table && registers.address == register && registers.type == .bitfield {
            guard let bit = registers.bit, case let .bool(isSet)? = state.model.reading(point.name) else {
                throw error(.exception(.illegalDataAddress), function, address, count)
            }
            if isSet { word |= 1 << UInt16(bit) }
        }
        return PointCodec.orderedWord(
            word, modbus.first { $0.address == register && $0.table == table }?.wordOrder ?? .abcd)
    }

    private func write(
        _ table: ModbusTable, _ address: UInt16, _ values: [UInt16], _ state: inout State
    )
        throws(ModbusError)
    {
        let function: ModbusFunction =
            table == .coil
            ? (values.count == 1 ? .writeSingleCoil : .writeMultipleCoils)
            : (values.count == 1 ? .writeSingleRegister : .writeMultipleRegisters)
        guard !values.isEmpty, Int(address) + values.count <= 0x10000 else {
            throw error(.exception(.illegalDataAddress), function, address, values.count)
        }
        var offset = 0
        while offset < values.count {
            guard let (pointIndex, position) = layout[table]?[address + UInt16(offset)], position == 0 else {
                throw error(.exception(.illegalDataAddress), function, address, values.count)
            }
            let point = profile.points[pointIndex]
            let count = modbus[pointIndex].registerCount
            guard offset + count <= values.count, point.access == .readWrite else {
                throw error(.exception(.illegalDataAddress), function, address, values.count)
            }
            do {
                let value = try PointCodec.decode(
                    values[offset..<(offset + count)], for: point, layout: modbus[pointIndex])
                try state.model.command(point.name, value)
            } catch {
                throw self.error(.exception(.illegalDataValue), function, address, values.count)
            }
            offset += count
        }
    }

    public func readCoils(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [Bool] {
        try await client(.readCoils, address, count, read(.coil, startingAt: address, count: count, unit: 1)) {
            $0.map { $0 != 0 }
        }
    }

    public func readDiscreteInputs(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [Bool] {
        try await client(
            .readDiscreteInputs, address, count, read(.discreteInput, startingAt: address, count: count, unit: 1)
        ) {
            $0.map { $0 != 0 }
        }
    }

    public func readHoldingRegisters(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [UInt16] {
        try await client(
            .readHoldingRegisters, address, count,
            read(.holdingRegister, startingAt: address, count: count, unit: 1)
        ) { $0 }
    }

    public func readInputRegisters(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [UInt16] {
        try await client(
            .readInputRegisters, address, count,
            read(.inputRegister, startingAt: address, count: count, unit: 1)
        ) { $0 }
    }

    public func writeCoils(startingAt address: UInt16, values: [Bool]) async throws(ModbusError) {
        let raw = values.map { UInt16($0 ? 1 : 0) }
        try await client(
            .writeMultipleCoils, address, values.count,
            write(.coil, startingAt: address, values: raw, unit: 1)
        ) { _ in () }
    }

    public func writeRegisters(startingAt address: UInt16, values: [UInt16]) async throws(ModbusError) {
        try await client(
            .writeMultipleRegisters, address, values.count,
            write(.holdingRegister, startingAt: address, values: values, unit: 1)
        ) { _ in () }
    }
}

extension SimulatedDevice where Physics == CDUModel {
    /// A simulated CDU with the scenario's settings and faults.
    public convenience init(
        name: String, profile: DeviceProfile, scenario: Scenario, clock: any RunClock,
        responseTimeout: Duration = .seconds(1)
    ) {
        self.init(
            name: name, profile: profile, physics: CDUModel(settings: scenario.cdu), faults: scenario.faults,
            clock: clock, responseTimeout: responseTimeout)
    }
}

/// The built-in simulated rack: a simulated device for each instance of a rack profile, on one shared clock.
public struct SimulatedRack: Sendable {
    public let cdus: [String: SimulatedCDU]
    /// Simulated power supplies by instance name, with their Modbus addresses on the shelf's bus.
    public let psus: [String: (device: SimulatedDevice<PSUPhysics>, address: UInt8)]
    public let shelf: PowerShelf
    public let scenario: Scenario
    /// The BMCs and power-shelf controllers, served as Redfish.
    public let redfish: SimulatedRedfishRack
    /// The station's bench instruments (a DMM on the busbar, a reference gauge on the CDU loop), by name.
    public let instruments: [String: SimulatedInstrument]

    public struct UnsupportedDevice: Error, Sendable, CustomStringConvertible {
        public var device: String
        public var kind: String
        /// Why, when it is not a missing simulator.
        public var reason: String?
        public var description: String {
            if let reason { return "device '\(device)': \(reason)" }
            return
                "no simulator for device '\(device)' of kind '\(kind.isEmpty ? "(none)" : kind)'; simulated kinds: cdu, psu"
        }
    }

    /// The retry policy of the simulated rack's clients: what a typical station file says.
    public static let retryPolicy = RetryPolicy(retries: 2, backoff: .seconds(1))

    public init(
        configuration: RackConfiguration, scenario: Scenario, clock: any RunClock, manifest: FirmwareManifest? = nil,
        redfishCredentials: (username: String, password: String)? = nil
    ) throws(UnsupportedDevice) {
        var cdus: [String: SimulatedCDU] = [:]
        var psus: [String: (device: SimulatedDevice<PSUPhysics>, address: UInt8)] = [:]
        let supplies = configuration.rack.devices.filter { configuration.profiles[$0.model]?.kind == "psu" }
        // Supply faults belong to the shelf (they move load onto the others); protocol faults to each device.
        func isShelfFault(_ fault: ScheduledFault) -> Bool {
            switch fault.kind {
            case .supplyFailure, .inputLoss: true
            default: false
            }
        }
        let shelfFaults = scenario.faults.filter(isShelfFault).compactMap { fault in
            supplies.firstIndex { $0.name == fault.device }.map { (at: fault.at, index: $0, kind: fault.kind) }
        }
        let shelf = PowerShelf(
            count: max(supplies.count, 1), settings: scenario.powerShelf, faults: shelfFaults,
            clock: clock)
        for instance in configuration.rack.devices {
            guard let profile = configuration.profiles[instance.model] else { continue }
            // Redfish devices are the Redfish rack's; the harness connects to them like to real BMCs. Instruments
            // measure the rack once it is built.
            if profile.protocolName == RedfishProfileSyntax().name || profile.protocolName == SCPIProfileSyntax().name {
                continue
            }
            switch profile.kind {
            case "psu":
                let index = supplies.firstIndex(of: instance) ?? 0
                let address = instance.address ?? 192 + index
                guard (1...247).contains(address), !psus.values.contains(where: { Int($0.address) == address }) else {
                    throw UnsupportedDevice(
                        device: instance.name, kind: profile.kind,
                        reason: "Modbus address \(address) is out of range or used by another supply")
                }
                let psu = SimulatedDevice(
                    name: instance.name, profile: profile,
                    physics: PSUPhysics(shelf: shelf, index: index),
                    faults: scenario.faults.filter { !isShelfFault($0) },
                    clock: clock)
                psus[instance.name] = (psu, UInt8(address))
            case "cdu":
                let cdu = SimulatedCDU(name: instance.name, profile: profile, scenario: scenario, clock: clock)
                cdus[instance.name] = cdu
            default:
                throw UnsupportedDevice(device: instance.name, kind: profile.kind)
            }
        }
        self.cdus = cdus
        self.psus = psus
        self.shelf = shelf
        self.scenario = scenario
        // A fault on a device the rack does not have would silently do nothing: refuse it.
        for fault in scenario.redfish.faults {
            guard let device = fault.device else { continue }
            guard let instance = configuration.rack.devices.first(where: { $0.name == device }),
                configuration.profiles[instance.model]?.protocolName == RedfishProfileSyntax().name
            else {
                throw UnsupportedDevice(
                    device: device, kind: "",
                    reason: "scenario '\(scenario.name)' has a Redfish fault for '\(device)', which is not a "
                        + "Redfish device of rack '\(configuration.rack.id)'")
            }
            if case .gpuMissing = fault, configuration.profiles[instance.model]?.kind != "compute-tray" {
                throw UnsupportedDevice(
                    device: device, kind: configuration.profiles[instance.model]?.kind ?? "",
                    reason: "gpu-missing applies to compute trays only")
            }
        }
        var redfishSettings = scenario.redfish
        if redfishSettings.powerShelves == nil {
            redfishSettings.powerShelves = configuration.rack.group(named: "power_shelves")?.count
        }
        let redfish = SimulatedRedfishRack(
            scenario: redfishSettings, clock: clock, manifest: manifest,
            username: redfishCredentials?.username ?? "admin",
            password: redfishCredentials?.password)
        self.redfish = redfish
        instruments = try Self.bench(
            configuration: configuration, scenario: scenario, clock: clock, cdu: cdus.values.first, redfish: redfish)
    }

}
