import Testing

@testable import ModbusCore

/// Replies checked field by field against their request, on bytes alone (issue 10, case 11).
@Suite("Modbus frames")
struct FrameTests {
    let read: ModbusRequest

    init() throws { read = try ModbusRequest.read(.holdingRegister, address: 0x10, count: 2) }

    @Test func requestsAreFramedAsTheSpecificationSays() throws {
        #expect(read.tcpFrame(transaction: 0x1234, unit: 192) == [0x12, 0x34, 0, 0, 0, 6, 192, 3, 0, 0x10, 0, 2])
        // The specification's own RTU example: unit 1, read 2 holding registers at 0 → CRC C4 0B.
        let example = try ModbusRequest.read(.holdingRegister, address: 0, count: 2)
        #expect(example.rtuFrame(unit: 1) == [1, 3, 0, 0, 0, 2, 0xC4, 0x0B])
        let coils = try ModbusRequest.write(.coil, address: 19, values: [1, 0, 1, 1, 0, 0, 1, 1, 1, 0])
        #expect(coils.pdu == [0x0F, 0, 19, 0, 10, 2, 0xCD, 0x01])
        #expect(throws: ModbusError.self) { try ModbusRequest.read(.inputRegister, address: 0xFFFF, count: 2) }
        #expect(throws: ModbusError.self) { try ModbusRequest.write(.inputRegister, address: 0, values: [1]) }
    }

    @Test func aMatchingTCPReplyIsRead() throws {
        let reply: [UInt8] = [0, 7, 0, 0, 0, 7, 9, 3, 4, 0x01, 0x02, 0xFF, 0xFE]
        #expect(
            try ModbusReply.parse(reply, framing: .tcp(transaction: 7), unit: 9, request: read)
                == .values([0x0102, 0xFFFE]))
    }

    @Test(
        arguments: [
            ([0, 7, 0, 7, 0, 7, 9, 3, 4, 1, 2, 3, 4], "protocol id 7"),
            ([0, 8, 0, 0, 0, 7, 9, 3, 4, 1, 2, 3, 4], "transaction id 8"),
            ([0, 7, 0, 0, 0xFF, 0xFF, 9, 3, 4, 1, 2, 3, 4], "MBAP length 65535"),
            ([0, 7, 0, 0, 0, 7, 8, 3, 4, 1, 2, 3, 4], "reply from unit 8"),
            ([0, 7, 0, 0, 0, 7, 9, 4, 4, 1, 2, 3, 4], "function 0x04"),
            ([0, 7, 0, 0, 0, 5, 9, 3, 2, 1, 2], "byte count 2 for 2 registers"),
            ([0, 7, 0, 0, 0, 8, 9, 3, 4, 1, 2, 3, 4, 5], "5 data bytes after a byte count of 4"),
            ([0, 7, 0, 0, 0, 2, 9, 3], "shorter than any"),
        ] as [([UInt8], String)])
    func aMismatchedTCPReplyIsRefused(_ reply: [UInt8], _ fragment: String) {
        do {
            let parsed = try ModbusReply.parse(reply, framing: .tcp(transaction: 7), unit: 9, request: read)
            Issue.record("accepted \(parsed)")
        } catch {
            #expect(error.message.contains(fragment), "\(error.message)")
        }
    }

    @Test func rtuRepliesAreCheckedForAddressAndCRC() throws {
        let body: [UInt8] = [9, 3, 4, 0, 1, 0, 2]
        let good = body + ModbusCRC.bytes(of: body)
        #expect(try ModbusReply.parse(good, framing: .rtu, unit: 9, request: read) == .values([1, 2]))
        var corrupted = good
        corrupted[4] ^= 0x40
        #expect(throws: ModbusReplyError.self) {
            try ModbusReply.parse(corrupted, framing: .rtu, unit: 9, request: read)
        }
        let other = [8] + body.dropFirst() + ModbusCRC.bytes(of: [8] + body.dropFirst())
        do {
            _ = try ModbusReply.parse(other, framing: .rtu, unit: 9, request: read)
            Issue.record("another unit's reply was accepted")
        } catch {
            #expect(error.message == "reply from unit 8; the request went to unit 9")
        }
    }

    @Test func writesMustEchoWhatWasSent() throws {
        let write = try ModbusRequest.write(.holdingRegister, address: 5, values: [0x1234])
        #expect(try ModbusReply.parse(pdu: [6, 0, 5, 0x12, 0x34], request: write) == .written)
        #expect(throws: ModbusReplyError.self) { try ModbusReply.parse(pdu: [6, 0, 5, 0x12, 0x35], request: write) }
        #expect(try ModbusReply.parse(pdu: [0x86, 4], request: write) == .exception(.serverDeviceFailure))
    }
}
