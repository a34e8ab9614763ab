import InstrumentCore

/// A USBTMC device in memory for the session's tests: it parses what the session sends and answers as the spec
/// says, unless a fault is armed. Not the device the umockdev tests use (that one is Python, in
/// Tests/AcceptanceCLITests/Peers): two independent readings of the spec.
final class FakeUSBTMCDevice: USBTMCLink {
    enum Fault {
        case wrongTag, badInverse, short, oversized, stall, silent, gone
        /// The answer's header announces it all, but the first transfer carries only this many data bytes.
        case splitTransfer(Int)
    }

    let interfaceNumber: UInt8 = 0
    var answer: (String) -> String? = { _ in nil }
    /// The device's output queue: answers not yet read.
    var queued: [UInt8] = []
    var request: (tag: UInt8, maxLength: Int)?
    var fault: Fault?
    var received: [String] = []
    var controls: [(request: UInt8, value: UInt16, index: UInt16)] = []
    var halts: [USBTMCEndpoint] = []
    var bulkInTransfers = 0
    var continuation: [UInt8] = []

    func address(of endpoint: USBTMCEndpoint) -> UInt8? {
        switch endpoint {
        case .bulkOut: 0x01
        case .bulkIn: 0x82
        case .interruptIn: nil
        }
    }

    func bulkOut(_ data: [UInt8], timeout: Duration) throws(USBLinkFailure) {
        if case .gone = fault { throw .gone }
        precondition(data.count % 4 == 0, "bulk-OUT transfers are padded to 4 bytes")
        precondition(data[2] == ~data[1] && data[1] != 0, "bTag 1...255 with its inverse")
        let size = Int(data[4]) | Int(data[5]) << 8 | Int(data[6]) << 16 | Int(data[7]) << 24
        switch data[0] {
        case 1:
            let text = String(decoding: data[12..<(12 + size)], as: UTF8.self)
            received.append(text)
            if let reply = answer(text.trimmingCharacters(in: .newlines)) { queued += Array((reply + "\n").utf8) }
        case 2: request = (data[1], size)
        default: throw .stall
        }
    }

    func read(_ endpoint: USBTMCEndpoint, maxLength: Int, timeout: Duration) throws(USBLinkFailure) -> [UInt8] {
        bulkInTransfers += 1
        if !continuation.isEmpty {
            defer { continuation = [] }
            return continuation
        }
        guard let request else { throw .timeout }
        switch fault {
        case .silent?: throw .timeout
        case .stall?:
            fault = nil
            throw .stall
        case .gone?: throw .gone
        case .short?:
            fault = nil
            return [2, request.tag, ~request.tag, 0, 1]
        default: break
        }
        guard !queued.isEmpty else { throw .timeout }
        self.request = nil
        let count = min(queued.count, request.maxLength)
        let data = Array(queued.prefix(count))
        queued.removeFirst(count)
        var tag = request.tag
        var inverse = ~request.tag
        var announced = count
        switch fault {
        case .wrongTag?:
            tag = request.tag &+ 7
            inverse = ~tag
        case .badInverse?: inverse = request.tag
        case .oversized?: announced = request.maxLength + 100
        default: break
        }
        let end: UInt8 = queued.isEmpty ? 1 : 0
        var bytes: [UInt8] = [
            2, tag, inverse, 0, UInt8(announced & 0xFF), UInt8(announced >> 8 & 0xFF), UInt8(announced >> 16 & 0xFF),
            0, end, 0, 0, 0,
        ]
        if case let .splitTransfer(first)? = fault {
            fault = nil
            continuation = Array(data.dropFirst(first))
            return bytes + data.prefix(first)
        }
        if case .oversized? = fault {
            fault = nil
            return bytes + data + [UInt8](repeating: 0x41, count: 100)
        }
        if case .wrongTag? = fault { fault = nil }
        if case .badInverse? = fault { fault = nil }
        bytes += data
        bytes += [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4)
        return bytes
    }

    func controlIn(
        requestType: UInt8, request code: UInt8, value: UInt16, index: UInt16, length: Int, timeout: Duration
    ) throws(USBLinkFailure) -> [UInt8] {
        if case .gone = fault { throw .gone }
        controls.append((code, value, index))
        switch USBTMC.Request(rawValue: code) {
        case .initiateAbortBulkIn?:
            // Only a transfer in progress can be aborted; its answer is thrown away.
            guard request?.tag == UInt8(truncatingIfNeeded: value) else { return [0x80, 0] }
            request = nil
            queued = []
            if case .silent? = fault { fault = nil }
            return [0x01, UInt8(truncatingIfNeeded: value)]
        case .checkAbortBulkInStatus?: return [0x01, 0, 0, 0, 0, 0, 0, 0]
        case .initiateAbortBulkOut?: return [0x01, UInt8(truncatingIfNeeded: value)]
        case .checkAbortBulkOutStatus?: return [0x01, 0, 0, 0, 0, 0, 0, 0]
        case .initiateClear?:
            queued = []
            request = nil
            return [0x01]
        case .checkClearStatus?: return [0x01, 0]
        case .getCapabilities?:
            var reply = [UInt8](repeating: 0, count: 24)
            reply[0] = 1
            reply[2] = 0x00
            reply[3] = 0x01
            reply[4] = 0x04
            reply[5] = 0x01
            reply[12] = 0x00
            reply[13] = 0x01
            reply[14] = 0x06
            reply[15] = 0x0F
            return reply
        case .renControl?: return [0x01]
        default: throw .stall
        }
    }

    func clearHalt(_ endpoint: USBTMCEndpoint) throws(USBLinkFailure) {
        halts.append(endpoint)
    }
}
