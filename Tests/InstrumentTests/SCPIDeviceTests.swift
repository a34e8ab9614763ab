import AcceptanceCore
import Foundation
import InstrumentCore
import Synchronization
import Testing

/// An SCPI port answering from a table, with an error queue, recording what it was sent.
final class TablePort: SCPIPort {
    struct State {
        var sent: [String] = []
        var errors: [String] = []
    }

    let answers: [String: String]
    let refused: Set<String>
    let state = Mutex(State())

    init(answers: [String: String], refused: Set<String> = []) {
        self.answers = answers
        self.refused = refused
    }

    var summary: String { "table" }
    var sent: [String] { state.withLock { $0.sent } }

    func transact(_ messages: [SCPIMessage], timeout: Duration) async throws(InstrumentError) -> [String] {
        try state.withLock { state -> Result<[String], InstrumentError> in
            var replies: [String] = []
            for message in messages {
                state.sent.append(message.text)
                if message.text == "SYST:ERR?" {
                    replies.append(state.errors.isEmpty ? #"+0,"No error""# : state.errors.removeFirst())
                } else if refused.contains(message.text) {
                    // A rejected query has no answer (IEEE 488.2): the client times out, and the error waits.
                    state.errors.append(#"-113,"Undefined header""#)
                    if message.expectsAnswer { return .failure(InstrumentError(.timeout, "no answer")) }
                } else if message.expectsAnswer {
                    replies.append(answers[message.text] ?? "")
                }
            }
            return .success(replies)
        }.get()
    }

    func clear() async throws(InstrumentError) {}
}

@Suite("SCPI instruments as devices")
struct SCPIDeviceTests {
    static func profile(_ yaml: String) throws -> DeviceProfile {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("scpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("dmm.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return try DeviceProfile.load(path: path, protocols: DeviceProtocols([SCPIProfileSyntax()]))
    }

    static let dmm = """
        model: test-dmm
        kind: dmm
        protocol: scpi
        identity: 34465A
        configure: [CONF:VOLT:DC 100, VOLT:DC:NPLC 1]
        points:
          dc_voltage: {query: "MEAS:VOLT:DC?", unit: V}
          nplc: {query: "VOLT:DC:NPLC?", write: "VOLT:DC:NPLC {value}"}
          mode: {query: "FUNC?", states: [VOLT, CURR]}
          range_auto: {query: "VOLT:DC:RANG:AUTO?", parse: bool}
          second: {query: "READ?", field: 1, unit: V}
        """

    @Test("Connect asks *IDN?, clears status and configures, checking the error queue after each command")
    func connect() async throws {
        let port = TablePort(answers: ["*IDN?": "Keysight Technologies,34465A,MY60001234,A.03.01"])
        let device = SCPIPointDevice(name: "dmm", profile: try Self.profile(Self.dmm), port: port)
        try await device.connect()
        #expect(device.identity?.serial == "MY60001234")
        #expect(
            port.sent == [
                "*IDN?", "*CLS", "SYST:ERR?", "CONF:VOLT:DC 100", "SYST:ERR?", "VOLT:DC:NPLC 1", "SYST:ERR?",
            ])
        #expect(device.endpoint.contains("Keysight Technologies 34465A"))
    }

    @Test("The wrong instrument (another model) is refused at connect")
    func wrongModel() async throws {
        let port = TablePort(answers: ["*IDN?": "Rigol,DM3068,DM3A1,1.0"])
        let device = SCPIPointDevice(name: "dmm", profile: try Self.profile(Self.dmm), port: port)
        await #expect(throws: DeviceError.self) { try await device.connect() }
        do {
            try await device.connect()
        } catch {
            #expect(error.reason.contains("DM3068"))
            #expect(error.reason.contains("wrong instrument"))
        }
    }

    @Test("Readings: NR3 numbers with units, states, booleans, a field of several")
    func readings() async throws {
        let port = TablePort(answers: [
            "*IDN?": "K,34465A,S,1", "MEAS:VOLT:DC?": "+4.99876540E+01", "FUNC?": "\"VOLT\"",
            "VOLT:DC:RANG:AUTO?": "1", "READ?": "+1.0E+00,+2.5E+00",
        ])
        let profile = try Self.profile(Self.dmm)
        let device = SCPIPointDevice(name: "dmm", profile: profile, port: port)
        let points = ["dc_voltage", "mode", "range_auto", "second"].compactMap { profile.point(named: $0) }
        let values = try await device.read(points)
        #expect(
            values == [
                .quantity(Quantity(49.987654, .volt)), .text("VOLT"), .bool(true), .quantity(Quantity(2.5, .volt)),
            ])
    }

    @Test("An error in the queue after a command is a device error quoting the instrument and the command")
    func errorQueue() async throws {
        let port = TablePort(answers: ["*IDN?": "K,34465A,S,1"], refused: ["MEAS:VOLT:DC?"])
        let profile = try Self.profile(Self.dmm)
        let device = SCPIPointDevice(name: "dmm", profile: profile, port: port)
        do {
            _ = try await device.read([try #require(profile.point(named: "dc_voltage"))])
            Issue.record("an instrument error was not reported")
        } catch let error as DeviceError {
            #expect(error.device == "dmm")
            #expect(error.reason.contains(#"-113,"Undefined header""#))
            #expect(error.reason.contains("MEAS:VOLT:DC?"))
            #expect(!error.isNoResponse)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("An overload or garbage answer is not a reading")
    func unreadable() async throws {
        for answer in ["+9.9E+37", "OVLD", "", "1e400"] {
            let port = TablePort(answers: ["*IDN?": "K,34465A,S,1", "MEAS:VOLT:DC?": answer])
            let profile = try Self.profile(Self.dmm)
            let device = SCPIPointDevice(name: "dmm", profile: profile, port: port)
            await #expect(throws: DeviceError.self, "answer '\(answer)'") {
                _ = try await device.read([try #require(profile.point(named: "dc_voltage"))])
            }
        }
    }

    @Test("Writes put the value in the command, in the point's unit")
    func write() async throws {
        let port = TablePort(answers: ["*IDN?": "K,34465A,S,1"])
        let profile = try Self.profile(Self.dmm)
        let device = SCPIPointDevice(name: "dmm", profile: profile, port: port)
        try await device.write(try #require(profile.point(named: "nplc")), .number(10))
        #expect(port.sent.suffix(2) == ["VOLT:DC:NPLC 10", "SYST:ERR?"])
    }

    @Test("Profile mistakes are errors at their line")
    func profileErrors() throws {
        let bad = """
            model: bad
            protocol: scpi
            configure: ["MEAS?"]
            points:
              a: {query: "MEAS:VOLT:DC"}
              b: {write: "VOLT:RANG 10"}
              c: {query: "A?", parse: text, unit: V}
              d: {query: "B?", parse: fuzzy}
            """
        do {
            _ = try Self.profile(bad)
            Issue.record("a bad profile loaded")
        } catch let error as DiagnosticsError {
            let text = error.diagnostics.map(\.description).joined(separator: "\n")
            #expect(text.contains("'MEAS?' is a query"))
            #expect(text.contains("'MEAS:VOLT:DC' is not a query"))
            #expect(text.contains("{value}"))
            #expect(text.contains("only a number has a unit"))
            #expect(text.contains("unknown parse rule 'fuzzy'"))
            #expect(error.diagnostics.allSatisfy { $0.location.line > 1 })
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("Error queue entries and *IDN? parse")
    func replies() {
        #expect(SCPIReply.error(#"-113,"Undefined header""#)! == (-113, "Undefined header"))
        #expect(SCPIReply.error(#"+0,"No error""#)!.code == 0)
        #expect(SCPIReply.error("0")!.code == 0)
        #expect(InstrumentIdentity(idn: "A,B,C") == nil)
        #expect(InstrumentIdentity(idn: "Keysight Technologies,34465A,MY1,A.03")?.firmware == "A.03")
        #expect(SCPIMessage("MEAS:VOLT:DC? 10,0.001").expectsAnswer)
        #expect(!SCPIMessage("CONF:VOLT:DC 10").expectsAnswer)
        #expect(SCPIMessage("*CLS;*IDN?").expectsAnswer)
        #expect(SCPIMessage("*IDN?;*CLS").expectsAnswer)
        #expect(!SCPIMessage("*CLS; *RST").expectsAnswer)
    }
}
