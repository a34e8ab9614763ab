import InstrumentCore

/// A USBTMC device in memory for the session's tests: it parses what the session sends and answers as the spec
/// says, unless a fault is armed. Not the device the umockdev tests use (that one is Python, in
/// Tests/AcceptanceCLITests/Peers): two independent readings of the spec.
final class FakeUSBTMCDevice: USBTMCLink {
    enum Fault {
        case wrongTag, badInverse, short, oversized, stall, silent, gone
        /// The answer's header announces it all, but the first transfer carries only this many data bytes.
        case splitTransfer(Int)
        /// Silent, and the answer is still being measured when the transfer is aborted: only a clear drops it.
        case late
        /// The REQUEST_DEV_DEP_MSG_IN is refused with a STALL (the query was taken; its answer waits).
        case stallRequest
        /// Every reply announces 0 bytes and no end of message.
        case emptyForever
        /// The header announces the answer, then only zero-length packets follow.
        case emptyContinuation
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
    var clock = Duration.zero
    var renEnabled = false
    var interruptEndpoint = true
    /// The status byte READ_STATUS_BYTE reports, and whether a service request waits on the interrupt endpoint.
    var statusByte: UInt8 = 0x10
    var pendingServiceRequest = false
    var interrupt: [UInt8] = []

    func now() -> Duration {
        clock += .milliseconds(1)
        return clock
    }

    func address(of endpoint: USBTMCEndpoint) -> UInt8? {
        switch endpoint {
        case .bulkOut: 0x01
        case .bulkIn: 0x82
        case .interruptIn: interruptEndpoint ? 0x83 : nil
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
        case 2:
            if case .stallRequest? = fault {
                fault = nil
                throw .stall
            }
            request = (data[1], size)
        default: throw .stall
        }
    }

    func read(_ endpoint: USBTMCEndpoint, maxLength: Int, timeout: Duration) throws(USBLinkFailure) -> [UInt8] {
        if endpoint == .interruptIn {
            guard !interrupt.isEmpty else { throw .timeout }
            let notification = Array(interrupt.prefix(2))
            interrupt.removeFirst(min(2, interrupt.count))
            return notification
        }
        bulkInTransfers += 1
        if case .emptyContinuation? = fault, request == nil { return [] }
        if !continuation.isEmpty {
            defer { continuation = [] }
            return continuation
        }
        guard let request else { throw .timeout }
        switch fault {
        case .silent?, .late?: throw .timeout
        case .emptyForever?:
            self.request = nil
            return [2, request.tag, ~request.tag, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        case .emptyContinuation?:
            self.request = nil
            return [2, request.tag, ~request.tag, 0, 200, 0, 0, 0, 1, 0, 0, 0]
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
            switch fault {
            case .late?: fault = nil  // the transfer ends, but the measurement goes on into the output queue
            case .silent?:
                fault = nil
                queued = []
            default: queued = []
            }
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
        case .renControl?:
            renEnabled = value == 1
            return [0x01]
        case .readStatusByte?:
            if pendingServiceRequest { interrupt += [0x81, 0x40] }
            interrupt += [0x80 | UInt8(truncatingIfNeeded: value) & 0x7F, statusByte]
            return [0x01, UInt8(truncatingIfNeeded: value), 0]
        default: throw .stall
        }
    }

    func clearHalt(_ endpoint: USBTMCEndpoint) throws(USBLinkFailure) {
        halts.append(endpoint)
    }
}
