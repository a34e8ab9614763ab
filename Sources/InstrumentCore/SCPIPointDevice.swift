import AcceptanceCore
import Foundation
import Synchronization

/// An instrument reached by SCPI: each point is a query (or a command), and the error queue is read after every
/// exchange, so an instrument that refused a command is a station ERROR quoting its own message.
public final class SCPIPointDevice: PointDevice, Sendable {
    public let name: String
    public let profile: DeviceProfile
    public let port: any SCPIPort
    let settings: SCPISettings
    private let identified = Mutex<InstrumentIdentity?>(nil)

    public init(name: String, profile: DeviceProfile, port: any SCPIPort) {
        self.name = name
        self.profile = profile
        self.port = port
        settings = profile.scpiSettings
    }

    /// Where it is and what it is: `USB 2a8d:1301 serial MY60001234, Keysight 34465A`.
    public var endpoint: String {
        if let identity = identity { return "\(port.summary), \(identity.manufacturer) \(identity.model)" }
        return "\(port.summary), \(profile.model)"
    }

    /// What `*IDN?` answered at connect; nil before.
    public var identity: InstrumentIdentity? { identified.withLock { $0 } }

    func failure(
        _ operation: DeviceError.Operation, _ points: [String], _ error: InstrumentError
    ) -> DeviceError {
        DeviceError(
            device: name, endpoint: endpoint, operation: operation, points: points, reason: error.description,
            cause: error)
    }

    /// Asks `*IDN?` (checking the model against the profile's `identity`), clears the status (`*CLS`) and sends the
    /// profile's configuration commands, each checked against the error queue. Once per connection.
    public func connect() async throws(DeviceError) {
        if identity != nil { return }
        let answer: String
        do {
            answer = try await port.transact([SCPIMessage("*IDN?")], timeout: settings.timeout).first ?? ""
        } catch {
            throw failure(.reading, ["*IDN?"], error)
        }
        guard let identity = InstrumentIdentity(idn: answer) else {
            throw failure(
                .reading, ["*IDN?"],
                InstrumentError(.unreadable, command: "*IDN?", "'\(answer)' is not manufacturer,model,serial,firmware"))
        }
        if let expected = settings.identity, identity.model != expected {
            throw failure(
                .reading, ["*IDN?"],
                InstrumentError(
                    .unreadable, command: "*IDN?",
                    "this is a \(identity.manufacturer) \(identity.model), serial \(identity.serial); profile "
                        + "\(profile.model) is for a \(expected): the station binds the wrong instrument"))
        }
        identified.withLock { $0 = identity }
        for command in ["*CLS"] + settings.configure {
            do {
                _ = try await exchange(SCPIMessage(command))
            } catch {
                throw failure(.writing, [command], error)
            }
        }
    }

    /// Sends `message` and then the error query, and returns the message's answer (nil for a command). An error in
    /// the queue is thrown, quoting the instrument; the queue is read to its end so the next exchange starts clean.
    func exchange(_ message: SCPIMessage) async throws(InstrumentError) -> String? {
        let errorQuery = SCPIMessage(settings.errorQuery)
        let answers: [String]
        do {
            answers = try await port.transact([message, errorQuery], timeout: settings.timeout)
        } catch {
            // A query the instrument rejects has no answer (IEEE 488.2): the read times out, and the reason is in
            // its error queue, which is read now so that it is quoted here, not blamed on the next command.
            guard error.kind != .gone, error.kind != .cancelled, let queued = await drainErrors(), !queued.isEmpty
            else { throw error }
            throw InstrumentError(
                .instrument, command: message.text,
                "the instrument reported " + queued.joined(separator: "; ") + " after it (\(error.description))")
        }
        guard let errorAnswer = answers.last else {
            throw InstrumentError(.protocolError, command: settings.errorQuery, "no answer to the error query")
        }
        var errors: [String] = []
        var latest = errorAnswer
        // An instrument keeps a queue of errors: read until "0, No error" (at most 20, in case it never empties).
        for _ in 0..<20 {
            guard let (code, message) = SCPIReply.error(latest) else {
                throw InstrumentError(
                    .unreadable, command: settings.errorQuery, "'\(latest)' is not an error queue entry (code,\"text\")"
                )
            }
            if code == 0 { break }
            errors.append("\(code),\"\(message)\"")
            latest = try await port.transact([errorQuery], timeout: settings.timeout).first ?? "0"
        }
        if !errors.isEmpty {
            throw InstrumentError(
                .instrument, command: message.text,
                "the instrument reported " + errors.joined(separator: "; ") + " after it")
        }
        return message.expectsAnswer ? answers.first : nil
    }

    /// The error queue's entries, read to its end (at most 20); nil when it cannot be read.
    func drainErrors() async -> [String]? {
        var errors: [String] = []
        for _ in 0..<20 {
            guard let answer = try? await port.transact([SCPIMessage(settings.errorQuery)], timeout: settings.timeout),
                let entry = answer.first, let (code, text) = SCPIReply.error(entry)
            else { return nil }
            if code == 0 { break }
            errors.append("\(code),\"\(text)\"")
        }
        return errors
    }

    public func read(_ points: [PointDefinition]) async throws(DeviceError) -> [Value] {
        if identity == nil { try await connect() }
        var values: [Value] = []
        for point in points {
            guard let command = point.scpi, let query = command.query else {
                throw DeviceError(
                    device: name, endpoint: endpoint, operation: .reading, points: [point.name],
                    reason: point.scpi == nil ? "not an SCPI point (\(point.whereabouts))" : "has no query to read it")
            }
            let answer: String
            do {
                answer = try await exchange(SCPIMessage(query)) ?? ""
            } catch {
                throw failure(.reading, [point.name], error.about(query))
            }
            switch SCPIReply.value(answer, rule: command.parse, unit: point.unit, states: point.states) {
            case let .success(value): values.append(value)
            case let .failure(problem):
                throw failure(.reading, [point.name], InstrumentError(.unreadable, command: query, problem.description))
            }
        }
        return values
    }

    public func write(_ point: PointDefinition, _ value: Value) async throws(DeviceError) {
        if identity == nil { try await connect() }
        guard let template = point.scpi?.write else {
            throw DeviceError(
                device: name, endpoint: endpoint, operation: .writing, points: [point.name],
                reason: "has no write command")
        }
        let argument: String
        switch SCPIReply.argument(value, unit: point.unit) {
        case let .success(text): argument = text
        case let .failure(problem):
            throw DeviceError(
                device: name, endpoint: endpoint, operation: .writing, points: [point.name],
                reason: problem.description)
        }
        let command = template.replacingOccurrences(of: "{value}", with: argument)
        do {
            _ = try await exchange(SCPIMessage(command))
        } catch {
            throw failure(.writing, [point.name], error.about(command))
        }
    }

    public func perform(_ action: ActionDefinition, value: String?) async throws(DeviceError) {
        throw DeviceError(
            device: name, endpoint: endpoint, operation: .writing, points: [action.name],
            reason: "an instrument has no actions; write a point instead")
    }
}
