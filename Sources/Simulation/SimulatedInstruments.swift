import AcceptanceCore
import Foundation
import InstrumentCore
import Synchronization
import Yams

/// Faults of a simulated instrument (a scenario's `instruments:` section): a reading offset and drift, absence,
/// silence (no answer, so the client times out), an error pushed into its SCPI error queue, or unplugging it.
public struct InstrumentFaults: Sendable, Hashable {
    /// Added to every reading, and how much more per minute of simulated time (`2 kPa`, `0.1 kPa/min`).
    public var offset: Quantity?
    public var drift: Quantity?
    /// Not attached at all.
    public var absent = false
    /// From this simulated time on, it answers nothing.
    public var silentAt: Double?
    /// From this simulated time, the next measurement leaves `error` in the error queue and has no answer.
    public var errorAt: Double?
    public var error = #"-222,"Data out of range""#
    /// From this simulated time on, it is gone (unplugged).
    public var goneAt: Double?

    public init() {}

    static let keys = ["offset", "drift", "absent", "silent_at", "error_at", "error", "gone_at"]

    /// `gauge: {offset: 2 kPa, drift: 0.1 kPa/min, silent_at: 5 min}`; quantities in `unit`.
    static func parse(_ node: Node, name: String, reader: inout YAMLReader) -> InstrumentFaults {
        var faults = InstrumentFaults()
        guard let entries = reader.mapping(node, "instrument '\(name)'") else { return faults }
        reader.rejectUnknownKeys(entries, allowed: keys, in: "instrument '\(name)'")
        func time(_ node: Node, _ key: String) -> Double? {
            guard let quantity = reader.quantity(node, key), let seconds = try? quantity.converted(to: .second).value,
                seconds >= 0, seconds <= 7 * 24 * 3600
            else {
                reader.error("\(key) is a simulated time from the start, 0 to 7 days, such as '5 min'", at: node)
                return nil
            }
            return seconds
        }
        for (key, _, value) in entries {
            switch key {
            case "offset": faults.offset = reader.quantity(value, key)
            case "drift":
                if let quantity = reader.quantity(value, key), quantity.unit.perTime != nil {
                    faults.drift = quantity
                } else {
                    reader.error("drift is a rate such as '0.5 kPa/min'", at: value)
                }
            case "absent": faults.absent = reader.bool(value, key) ?? false
            case "silent_at": faults.silentAt = time(value, key)
            case "error_at": faults.errorAt = time(value, key)
            case "gone_at": faults.goneAt = time(value, key)
            case "error":
                if let text = reader.scalar(value, key), SCPIReply.error(text) != nil {
                    faults.error = text
                } else {
                    reader.error(#"error is an SCPI error queue entry such as '-222,"Data out of range"'"#, at: value)
                }
            default: break
            }
        }
        return faults
    }
}

/// A bench instrument in the mock layer, answering SCPI: a DMM on the simulated DC busbar, or a reference pressure
/// gauge on the CDU loop, on the run's clock. The same model answers in memory and, through `acceptance simulate`,
/// over a raw SCPI socket that an emulated USB device forwards to.
public final class SimulatedInstrument: SCPIPort, Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case dmm
        case pressureGauge = "pressure-gauge"
    }

    struct State {
        var errors: [String] = []
        var errorFired = false
        var settings: [String: String] = [:]
        var exchanges = 0
    }

    public let name: String
    public let kind: Kind
    public let identity: InstrumentIdentity
    public let clock: any RunClock
    let measure: @Sendable () -> Double
    public let faults: InstrumentFaults
    /// The unit it answers in (kPa, V) and its faults' offset and drift in that unit.
    public let unit: PhysicalUnit
    let offset: Double
    let driftPerSecond: Double
    private let state = Mutex(State())

    /// An instrument reading `measure()` (in `unit`) with `faults`; an offset or drift not in `unit` is refused.
    public init(
        name: String, kind: Kind, identity: InstrumentIdentity, unit: PhysicalUnit, clock: any RunClock,
        faults: InstrumentFaults, measure: @escaping @Sendable () -> Double
    ) throws(UnitError) {
        self.name = name
        self.kind = kind
        self.identity = identity
        self.unit = unit
        self.clock = clock
        self.faults = faults
        self.measure = measure
        offset = try faults.offset?.convertedInterval(to: unit).value ?? 0
        driftPerSecond =
            try faults.drift.map { drift throws(UnitError) in
                guard let perSecond = unit.per(.second) else { return 0 }
                return try drift.convertedInterval(to: perSecond).value
            } ?? 0
    }

    public var summary: String { "in memory" }

    /// Exchanges answered so far (for tests).
    public var exchanges: Int { state.withLock { $0.exchanges } }

    var now: Double { clock.now().seconds }

    /// Whether it answers at all at simulated time `time`.
    public func availability(at time: Double) -> InstrumentError? {
        if faults.absent || faults.goneAt.map({ time >= $0 }) == true {
            return InstrumentError(.gone, "the instrument is not attached")
        }
        if faults.silentAt.map({ time >= $0 }) == true {
            return InstrumentError(.timeout, "no answer; the transfer was aborted")
        }
        return nil
    }

    public func transact(_ messages: [SCPIMessage], timeout: Duration) async throws(InstrumentError) -> [String] {
        if let problem = availability(at: now) {
            // Silence costs the client its timeout, on the run's clock.
            if problem.kind == .timeout {
                do { try await clock.sleep(for: timeout) } catch {
                    throw InstrumentError(.cancelled, command: messages.first?.text, "stopped")
                }
            }
            throw problem.about(messages.first?.text ?? "")
        }
        var answers: [String] = []
        for message in messages {
            let answer = handle(message.text)
            guard message.expectsAnswer else { continue }
            guard let answer else {
                // A query it rejected has no answer (IEEE 488.2): the client waits out its timeout.
                do { try await clock.sleep(for: timeout) } catch {
                    throw InstrumentError(.cancelled, command: message.text, "stopped")
                }
                throw InstrumentError(.timeout, command: message.text, "no answer within \(timeout)")
            }
            answers.append(answer)
        }
        return answers
    }

    public func clear() async throws(InstrumentError) {
        if let problem = availability(at: now) { throw problem }
    }

    /// Answers one SCPI message (several commands joined by ';'); nil for a message that has no answer.
    public func handle(_ message: String) -> String? {
        let time = now
        var answers: [String] = []
        for part in message.split(separator: ";") {
            let command = part.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !command.isEmpty else { continue }
            if let answer = answer(command, at: time) { answers.append(answer) }
        }
        return answers.isEmpty ? nil : answers.joined(separator: ";")
    }

    func answer(_ command: String, at time: Double) -> String? {
        let (header, argument) = Self.split(command)
        return state.withLock { state -> String? in
            state.exchanges += 1
            switch header {
            case "*IDN?":
                return "\(identity.manufacturer),\(identity.model),\(identity.serial),\(identity.firmware)"
            case "*CLS":
                state.errors.removeAll()
                return nil
            case "*RST":
                state.settings.removeAll()
                return nil
            case "*OPC?": return "1"
            case "*ESR?", "*STB?": return state.errors.isEmpty ? "0" : "4"
            case "SYST:ERR?", "SYSTEM:ERROR?", "SYST:ERR:NEXT?":
                return state.errors.isEmpty ? #"+0,"No error""# : state.errors.removeFirst()
            default: break
            }
            if measurement(header) != nil {
                if let errorAt = faults.errorAt, time >= errorAt, !state.errorFired {
                    state.errorFired = true
                    state.errors.append(faults.error)
                    return nil
                }
                let value = measure() + offset + driftPerSecond * time
                return String(format: "%+.8E", value)
            }
            if configurable(header), !header.hasSuffix("?") {
                state.settings[header] = argument
                return nil
            }
            if configurable(String(header.dropLast())), header.hasSuffix("?") {
                return state.settings[String(header.dropLast())] ?? "0"
            }
            state.errors.append(#"-113,"Undefined header""#)
            return nil
        }
    }

    /// Whether `header` is this instrument's measurement query.
    func measurement(_ header: String) -> Bool? {
        switch kind {
        case .dmm: ["MEAS:VOLT:DC?", "MEASURE:VOLTAGE:DC?", "READ?", "FETC?"].contains(header) ? true : nil
        case .pressureGauge: ["MEAS:PRES?", "MEASURE:PRESSURE?", "READ?", "FETC?"].contains(header) ? true : nil
        }
    }

    /// Settings the instrument accepts (ranges, integration time, units, zero).
    func configurable(_ header: String) -> Bool {
        let prefixes =
            switch kind {
            case .dmm: ["CONF:VOLT:DC", "VOLT:DC:RANG", "VOLT:DC:NPLC", "VOLT:DC:ZERO:AUTO", "TRIG:SOUR", "DISP"]
            case .pressureGauge: ["UNIT:PRES", "SENS:PRES:RANG", "SENS:FILT", "SENS:MODE", "DISP"]
            }
        return prefixes.contains { header.hasPrefix($0) }
    }

    /// `CONF:VOLT:DC 100,0.001` is (`CONF:VOLT:DC`, `100,0.001`); headers upper-cased.
    static func split(_ command: String) -> (String, String) {
        guard let space = command.firstIndex(of: " ") else { return (command.uppercased(), "") }
        return (
            String(command[..<space]).uppercased(),
            command[command.index(after: space)...].trimmingCharacters(in: .whitespaces)
        )
    }
}

/// The simulated bench: what each instrument of a rack profile measures in the simulated rack.
public enum SimulatedBench {
    /// Identities of the simulated instruments, by profile kind.
    public static func identity(
        kind: SimulatedInstrument.Kind, profile: DeviceProfile, index: Int
    ) -> InstrumentIdentity {
        switch kind {
        case .dmm:
            InstrumentIdentity(
                manufacturer: "Simulated Instruments", model: profile.scpiSettings.identity ?? "DMM-SIM",
                serial: String(format: "SIMDMM%04d", index + 1), firmware: "1.0.0")
        case .pressureGauge:
            InstrumentIdentity(
                manufacturer: "Simulated Instruments", model: profile.scpiSettings.identity ?? "GAUGE-SIM",
                serial: String(format: "SIMGAUGE%04d", index + 1), firmware: "1.0.0")
        }
    }
}

extension SimulatedRack {
    /// The simulated instruments of the rack profile: each measures what its kind measures in this rack.
    static func bench(
        configuration: RackConfiguration, scenario: Scenario, clock: any RunClock, cdu: SimulatedCDU?,
        redfish: SimulatedRedfishRack
    ) throws(UnsupportedDevice) -> [String: SimulatedInstrument] {
        var instruments: [String: SimulatedInstrument] = [:]
        let model = redfish.model
        let scpi = configuration.rack.devices.filter {
            configuration.profiles[$0.model]?.protocolName == SCPIProfileSyntax().name
        }
        for name in scenario.instruments.keys where !scpi.contains(where: { $0.name == name }) {
            throw UnsupportedDevice(
                device: name, kind: "",
                reason: "scenario '\(scenario.name)' has faults for instrument '\(name)', which rack "
                    + "'\(configuration.rack.id)' does not have")
        }
        for (index, instance) in scpi.enumerated() {
            guard let profile = configuration.profiles[instance.model] else { continue }
            let kind = SimulatedInstrument.Kind(rawValue: profile.kind)
            var measure: (@Sendable () -> Double)?
            var unit = PhysicalUnit.volt
            switch kind {
            case .dmm?:
                measure = { model.busbarVoltage() }
            case .pressureGauge?:
                unit = .kilopascal
                if let cdu { measure = { cdu.snapshot().loopPressure } }
            case nil: break
            }
            guard let kind, let measure else {
                throw UnsupportedDevice(
                    device: instance.name, kind: profile.kind,
                    reason: "no simulated instrument of kind '\(profile.kind)' (simulated: "
                        + SimulatedInstrument.Kind.allCases.map(\.rawValue).joined(separator: ", ")
                        + (kind == .pressureGauge ? "; a gauge needs the rack's CDU" : "") + ")")
            }
            let identity = SimulatedBench.identity(kind: kind, profile: profile, index: index)
            let faults = scenario.instruments[instance.name] ?? InstrumentFaults()
            let instrument: SimulatedInstrument
            do throws(UnitError) {
                instrument = try SimulatedInstrument(
                    name: instance.name, kind: kind, identity: identity, unit: unit, clock: clock, faults: faults,
                    measure: measure)
            } catch {
                throw UnsupportedDevice(
                    device: instance.name, kind: profile.kind, reason: "scenario '\(scenario.name)': \(error)")
            }
            instruments[instance.name] = instrument
        }
        return instruments
    }
}
