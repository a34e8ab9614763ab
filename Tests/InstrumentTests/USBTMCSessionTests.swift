import InstrumentCore
import Testing

@Suite("USBTMC frames and session")
struct USBTMCSessionTests {
    @Test("DEV_DEP_MSG_OUT: 12-byte header, bTag and its inverse, EOM, padding to 4")
    func messageOut() {
        let bytes = USBTMC.devDepMsgOut(tag: 1, payload: Array("*IDN?\n".utf8), endOfMessage: true)
        #expect(bytes.prefix(12) == [1, 1, 0xFE, 0, 6, 0, 0, 0, 1, 0, 0, 0])
        #expect(bytes.count == 20)
        #expect(bytes.suffix(2) == [0, 0])
        let request = USBTMC.requestDevDepMsgIn(tag: 2, maxLength: 4096, termChar: 0x0A)
        #expect(request == [2, 2, 0xFD, 0, 0, 0x10, 0, 0, 0x02, 0x0A, 0, 0])
        #expect(USBTMC.nextTag(after: 255) == 1)
        #expect(USBTMC.nextTag(after: 7) == 8)
    }

    @Test("A reply is checked: MsgID, bTag, ~bTag, size within the request")
    func replyChecks() throws {
        let good: [UInt8] = [2, 5, 0xFA, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0x31, 0x32, 0x0A, 0]
        let header = try USBTMC.parseIn(good, tag: 5, requested: 100)
        #expect(header == USBTMC.InHeader(transferSize: 3, endOfMessage: true))
        #expect(throws: USBTMC.FrameError.wrongTag(expected: 6, got: 5)) {
            try USBTMC.parseIn(good, tag: 6, requested: 100)
        }
        var inverse = good
        inverse[2] = 0x00
        #expect(throws: USBTMC.FrameError.badInverse(tag: 5, inverse: 0)) {
            try USBTMC.parseIn(inverse, tag: 5, requested: 100)
        }
        #expect(throws: USBTMC.FrameError.tooShort(5)) { try USBTMC.parseIn([2, 5, 0xFA, 0, 3], tag: 5, requested: 9) }
        #expect(throws: USBTMC.FrameError.oversized(announced: 3, requested: 2)) {
            try USBTMC.parseIn(good, tag: 5, requested: 2)
        }
        var id = good
        id[0] = 126
        #expect(throws: USBTMC.FrameError.wrongMessageID(126)) { try USBTMC.parseIn(id, tag: 5, requested: 100) }
    }

    @Test("GET_CAPABILITIES decoded")
    func capabilities() throws {
        let device = FakeUSBTMCDevice()
        let capabilities = try USBTMCSession(link: device).capabilities()
        #expect(capabilities.usbtmcVersion == "01.00")
        #expect(capabilities.usb488Version == "01.00")
        #expect(capabilities.understandsSCPI && capabilities.acceptsRENControl && capabilities.supportsTermChar)
        #expect(capabilities.summary.contains("SCPI"))
    }

    static func instrument() -> (FakeUSBTMCDevice, USBTMCSession) {
        let device = FakeUSBTMCDevice()
        var count = 0
        device.answer = { command in
            guard command.hasSuffix("?") else { return nil }
            count += 1
            return command == "*IDN?" ? "ACME,DMM-1,SN1,1.0" : "+5.0\(count)E+01"
        }
        return (device, USBTMCSession(link: device))
    }

    @Test("A query is one message out, a request, and the answer without its newline")
    func query() throws {
        let (device, session) = Self.instrument()
        #expect(try session.transact([SCPIMessage("*IDN?")], timeout: .seconds(1)) == ["ACME,DMM-1,SN1,1.0"])
        #expect(try session.transact([SCPIMessage("CONF:VOLT:DC 100")], timeout: .seconds(1)) == [])
        #expect(device.received == ["*IDN?\n", "CONF:VOLT:DC 100\n"])
    }

    @Test("An answer longer than one request is read over several, until EOM")
    func multiTransfer() throws {
        let (device, session) = Self.instrument()
        session.chunk = 64
        let long = String(repeating: "1.2345,", count: 40)
        device.answer = { _ in long }
        let answer = try session.transact([SCPIMessage("FETC?")], timeout: .seconds(1))
        #expect(answer == [long])
        #expect(device.bulkInTransfers == (long.utf8.count + 1 + 63) / 64)
    }

    @Test("A reply whose data spans several bulk-IN transfers is read to its TransferSize")
    func splitTransfer() throws {
        let (device, session) = Self.instrument()
        device.fault = .splitTransfer(4)
        #expect(try session.transact([SCPIMessage("*IDN?")], timeout: .seconds(1)) == ["ACME,DMM-1,SN1,1.0"])
        #expect(device.bulkInTransfers == 2)
    }

    @Test(
        "A malformed reply is a protocol error, the instrument is cleared, and the next query reads a fresh answer",
        arguments: [FakeUSBTMCDevice.Fault.wrongTag, .badInverse, .short, .oversized])
    func malformed(_ fault: FakeUSBTMCDevice.Fault) throws {
        let (device, session) = Self.instrument()
        device.fault = fault
        do {
            _ = try session.transact([SCPIMessage("MEAS:VOLT:DC?")], timeout: .seconds(1))
            Issue.record("a \(fault) reply was accepted")
        } catch {
            #expect(error.kind == .protocolError)
            #expect(error.command == "MEAS:VOLT:DC?")
            #expect(error.description.contains("cleared"))
        }
        #expect(device.controls.contains { $0.request == USBTMC.Request.initiateClear.rawValue })
        #expect(device.halts.contains(.bulkOut))
        #expect(try session.transact([SCPIMessage("MEAS:VOLT:DC?")], timeout: .seconds(1)) == ["+5.02E+01"])
    }

    @Test("A timeout aborts the bulk-IN transfer by its bTag, so the late answer is never read as the next one")
    func timeoutAborts() throws {
        let (device, session) = Self.instrument()
        device.fault = .silent
        #expect(throws: InstrumentError.self) {
            try session.transact([SCPIMessage("MEAS:VOLT:DC?")], timeout: .milliseconds(10))
        }
        let abort = try #require(device.controls.first { $0.request == USBTMC.Request.initiateAbortBulkIn.rawValue })
        #expect(abort.index == 0x82)
        #expect(abort.value == 2)  // the REQUEST_DEV_DEP_MSG_IN's bTag (the message was 1)
        // The first answer (+5.01E+01) was thrown away by the abort: the next query reads its own.
        #expect(try session.transact([SCPIMessage("MEAS:VOLT:DC?")], timeout: .seconds(1)) == ["+5.02E+01"])
    }

    @Test("A STALL on bulk-IN clears the halt and the device; a gone device says so")
    func stallAndGone() throws {
        let (device, session) = Self.instrument()
        device.fault = .stall
        do {
            _ = try session.transact([SCPIMessage("*IDN?")], timeout: .seconds(1))
            Issue.record("a STALL was not an error")
        } catch {
            #expect(error.kind == .refused)
            #expect(error.description.contains("STALL"))
        }
        #expect(device.halts.contains(.bulkIn))
        #expect(try session.transact([SCPIMessage("*IDN?")], timeout: .seconds(1)) == ["ACME,DMM-1,SN1,1.0"])
        device.fault = .gone
        let gone = #expect(throws: InstrumentError.self) {
            try session.transact([SCPIMessage("*IDN?")], timeout: .seconds(1))
        }
        #expect(gone?.kind == .gone && gone?.isNoResponse == true)
    }

    @Test("An answer still being measured when the transfer is aborted is cleared, not read by the next query")
    func lateAnswerIsCleared() throws {
        let (device, session) = Self.instrument()
        device.fault = .late
        #expect(throws: InstrumentError.self) {
            try session.transact([SCPIMessage("MEAS:VOLT:DC?")], timeout: .milliseconds(10))
        }
        #expect(device.controls.contains { $0.request == USBTMC.Request.initiateClear.rawValue })
        #expect(try session.transact([SCPIMessage("MEAS:VOLT:DC?")], timeout: .seconds(1)) == ["+5.02E+01"])
    }

    @Test("A refused request for the answer clears the device: the query's answer is not left for the next one")
    func refusedRequest() throws {
        let (device, session) = Self.instrument()
        device.fault = .stallRequest
        let error = #expect(throws: InstrumentError.self) {
            try session.transact([SCPIMessage("MEAS:VOLT:DC?")], timeout: .seconds(1))
        }
        #expect(error?.description.contains("cleared") == true)
        #expect(device.halts.contains(.bulkOut))
        #expect(try session.transact([SCPIMessage("MEAS:VOLT:DC?")], timeout: .seconds(1)) == ["+5.02E+01"])
    }

    @Test(
        "A device that never ends its answer (empty replies, empty packets) is cut off, not waited on forever",
        arguments: [FakeUSBTMCDevice.Fault.emptyForever, .emptyContinuation])
    func neverEnding(_ fault: FakeUSBTMCDevice.Fault) throws {
        let (device, session) = Self.instrument()
        device.fault = fault
        let error = #expect(throws: InstrumentError.self) {
            try session.transact([SCPIMessage("*IDN?")], timeout: .seconds(1))
        }
        #expect(error?.kind == .protocolError)
        #expect(device.bulkInTransfers < 5, "cut off at once, not after a thousand requests")
    }

    @Test("READ_STATUS_BYTE reads the notification for its own bTag (past a waiting service request); REN_CONTROL")
    func statusByteAndRemote() throws {
        let (device, session) = Self.instrument()
        device.pendingServiceRequest = true
        #expect(try session.readStatusByte() == 0x10)
        let request = try #require(device.controls.last { $0.request == USBTMC.Request.readStatusByte.rawValue })
        #expect((2...127).contains(request.value))
        device.interruptEndpoint = false
        #expect(try session.readStatusByte() == 0)
        try session.renControl(true)
        #expect(device.renEnabled)
        try session.renControl(false)
        #expect(!device.renEnabled)
    }
}
