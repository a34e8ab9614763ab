import AcceptanceCore
import Foundation

/// What went wrong talking to an instrument, in the instrument's terms: the SCPI command, and what failed (no
/// answer, a malformed USBTMC reply, a STALL, the instrument gone, an error in its queue).
public struct InstrumentError: TransportError, Sendable {
    public enum Kind: String, Sendable {
        /// No answer within the timeout (the transfer was aborted, so a late answer cannot be read later).
        case timeout
        /// The instrument answered something the protocol does not allow (a wrong bTag, a short transfer).
        case protocolError = "protocol error"
        /// The instrument refused a transfer (an endpoint STALL), or a control request failed.
        case refused
        /// The instrument is not there (unplugged, never found, or its handle is closed).
        case gone
        /// The instrument's error queue held an error after the command (`SYST:ERR?`).
        case instrument = "instrument error"
        /// The answer could not be read as the point's value.
        case unreadable
        /// The step was stopped while the instrument was being asked.
        case cancelled
    }

    public var kind: Kind
    /// The SCPI command being sent or answered, if any.
    public var command: String?
    public var detail: String

    public init(_ kind: Kind, command: String? = nil, _ detail: String) {
        self.kind = kind
        self.command = command
        self.detail = detail
    }

    public var isNoResponse: Bool { kind == .timeout || kind == .gone }
    public var isCancellation: Bool { kind == .cancelled }

    public var description: String {
        let shown = detail.escapingControlCharacters
        return "\(kind.rawValue)" + (command.map { " on '\($0.escapingControlCharacters)'" } ?? "") + ": \(shown)"
    }

    /// The same error about `command`, unless it already names one.
    public func about(_ command: String) -> InstrumentError {
        var copy = self
        if copy.command == nil { copy.command = command }
        return copy
    }
}

/// One SCPI message: a command, or a query whose answer is read back.
public struct SCPIMessage: Sendable, Hashable {
    public var text: String
    public var expectsAnswer: Bool

    public init(_ text: String) {
        self.text = text
        // A message with a query in it (a header ending in '?', possibly with arguments: `MEAS:VOLT:DC? 10,0.001`,
        // or among several: `*IDN?;*CLS`) has an answer to read.
        expectsAnswer = text.split(separator: ";").contains { part in
            part.split(separator: " ", omittingEmptySubsequences: true).first?.hasSuffix("?") ?? false
        }
    }
}

/// One instrument's message channel: SCPI messages out, answers back. USBTMC over libusb is one; a simulated
/// instrument answering in memory is another.
public protocol SCPIPort: Sendable {
    /// Where the instrument is, for messages and the record: `USB 2a8d:1301 serial MY60001234`.
    var summary: String { get }
    /// Sends `messages` one after another with nothing else between them (a reading and the error query after it),
    /// and returns the answers of those that are queries, in order, without their trailing newline.
    func transact(_ messages: [SCPIMessage], timeout: Duration) async throws(InstrumentError) -> [String]
    /// Clears the instrument's input and output (USBTMC INITIATE_CLEAR), after an exchange went wrong.
    func clear() async throws(InstrumentError)
}

/// An instrument's identity from `*IDN?`: `Keysight Technologies,34465A,MY60001234,A.03.01-03.15-03.01-00.52-03-02`.
public struct InstrumentIdentity: Sendable, Hashable, Codable {
    public var manufacturer: String
    public var model: String
    public var serial: String
    public var firmware: String

    public init(manufacturer: String, model: String, serial: String, firmware: String) {
        self.manufacturer = manufacturer
        self.model = model
        self.serial = serial
        self.firmware = firmware
    }

    /// The four comma-separated fields of an `*IDN?` answer; nil when there are not four.
    public init?(idn: String) {
        let fields = idn.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard fields.count == 4, !fields[0].isEmpty, !fields[1].isEmpty else { return nil }
        self.init(manufacturer: fields[0], model: fields[1], serial: fields[2], firmware: fields[3])
    }

    public var description: String { "\(manufacturer) \(model), serial \(serial), firmware \(firmware)" }
}

/// Why an answer cannot be read as a point's value, or a value cannot be sent.
public struct SCPIProblem: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Reading SCPI answers.
public enum SCPIReply {
    /// An entry of the error queue: `-113,"Undefined header"` is (-113, "Undefined header"); `+0,"No error"` is 0.
    public static func error(_ reply: String) -> (code: Int, message: String)? {
        let text = reply.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let comma = text.firstIndex(of: ","), let code = Int(text[..<comma].trimmingCharacters(in: .whitespaces))
        else {
            return Int(text).map { ($0, "") }
        }
        var message = text[text.index(after: comma)...].trimmingCharacters(in: .whitespaces)
        if message.hasPrefix("\""), message.hasSuffix("\""), message.count >= 2 {
            message = String(message.dropFirst().dropLast())
        }
        return (code, message)
    }

    /// A value of `rule` from `reply`; a description of the problem when it is not one.
    public static func value(
        _ reply: String, rule: SCPIParseRule, unit: PhysicalUnit?, states: [Int: String]
    ) -> Result<Value, SCPIProblem> {
        var text = reply.trimmingCharacters(in: .whitespacesAndNewlines)
        if let field = rule.field {
            let fields = text.split(separator: ",", omittingEmptySubsequences: false)
            guard field < fields.count else {
                return .failure(SCPIProblem("the answer has \(fields.count) field(s), not a field \(field)"))
            }
            text = fields[field].trimmingCharacters(in: .whitespaces)
        }
        switch rule.kind {
        case .text:
            if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 {
                text = String(text.dropFirst().dropLast())
            }
            if !states.isEmpty, !states.values.contains(text) {
                return .failure(SCPIProblem("'\(text)' is none of " + states.values.sorted().joined(separator: ", ")))
            }
            return .success(.text(text))
        case .bool:
            switch text.uppercased() {
            case "1", "ON", "TRUE": return .success(.bool(true))
            case "0", "OFF", "FALSE": return .success(.bool(false))
            default: return .failure(SCPIProblem("'\(text)' is not a boolean (1/0, ON/OFF)"))
            }
        case .number:
            guard let number = number(text) else { return .failure(SCPIProblem("'\(text)' is not a number")) }
            // SCPI's "not a number" and overload answers (9.91E37, ±9.9E37) are not readings.
            if abs(number) >= 9.9e37 {
                return .failure(SCPIProblem("the instrument answered \(text): overload or no valid reading"))
            }
            return .success(unit.map { .quantity(Quantity(number, $0)) } ?? .number(number))
        }
    }

    /// An SCPI decimal number (NR1, NR2, NR3: `42`, `-1.5`, `+5.40000000E+01`); nil for anything else.
    static func number(_ text: String) -> Double? {
        guard !text.isEmpty, text.utf8.count <= 64,
            text.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }),
            let value = Double(text), value.isFinite
        else { return nil }
        return value
    }

    /// `value` written into a command: a number in the point's unit, a state's name, ON/OFF.
    public static func argument(_ value: Value, unit: PhysicalUnit?) -> Result<String, SCPIProblem> {
        switch value {
        case let .number(number): return .success(format(number))
        case let .quantity(quantity):
            guard let unit else { return .success(format(quantity.value)) }
            do {
                return .success(format(try quantity.converted(to: unit).value))
            } catch {
                return .failure(SCPIProblem("\(quantity) is not in \(unit.symbol)"))
            }
        case let .bool(flag): return .success(flag ? "ON" : "OFF")
        case let .text(text):
            guard text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-+".contains($0)) }),
                !text.isEmpty, text.count <= 64
            else {
                return .failure(SCPIProblem("'\(text.escapingControlCharacters)' cannot be sent as an SCPI argument"))
            }
            return .success(text)
        default: return .failure(SCPIProblem("\(value) cannot be sent to an instrument"))
        }
    }

    static func format(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(format: "%.9G", number)
    }
}
