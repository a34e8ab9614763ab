/// How a transfer on a USB device failed, in the terms USBTMC needs.
public enum USBLinkFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// Nothing within the timeout.
    case timeout
    /// The endpoint (or the control request) was refused with a STALL.
    case stall
    /// The device is not there any more.
    case gone
    /// The device sent more than the transfer's buffer holds.
    case overflow
    /// Anything else, with the USB stack's words.
    case failed(String)

    public var description: String {
        switch self {
        case .timeout: "timed out"
        case .stall: "STALL"
        case .gone: "no such device (unplugged?)"
        case .overflow: "overflow: the device sent more than was asked for"
        case let .failed(text): text
        }
    }
}

/// The endpoints of a USBTMC interface, by role.
public enum USBTMCEndpoint: Sendable {
    case bulkOut, bulkIn, interruptIn
}

/// One USBTMC interface's transfers, made by a transport on its own thread. Blocking; one caller at a time.
public protocol USBTMCLink: AnyObject {
    var interfaceNumber: UInt8 { get }
    /// Endpoint addresses (bit 7 set for IN), for class requests addressed to an endpoint.
    func address(of endpoint: USBTMCEndpoint) -> UInt8?
    func bulkOut(_ data: [UInt8], timeout: Duration) throws(USBLinkFailure)
    func read(_ endpoint: USBTMCEndpoint, maxLength: Int, timeout: Duration) throws(USBLinkFailure) -> [UInt8]
    /// A class or standard control request that reads up to `length` bytes back.
    func controlIn(
        requestType: UInt8, request: UInt8, value: UInt16, index: UInt16, length: Int, timeout: Duration
    ) throws(USBLinkFailure) -> [UInt8]
    func clearHalt(_ endpoint: USBTMCEndpoint) throws(USBLinkFailure)
    /// Waits between two polls of a handshake that is still pending, on the link's own thread.
    func pause(_ duration: Duration)
    /// Time on a monotonic clock, for an answer's overall deadline.
    func now() -> Duration
}

extension USBTMCLink {
    /// A link whose devices answer at once (a test double) needs no pause.
    public func pause(_ duration: Duration) {}
}

/// A USBTMC/USB488 session over a link: SCPI messages as DEV_DEP_MSG_OUT, answers asked for with
/// REQUEST_DEV_DEP_MSG_IN, each checked (MsgID, bTag, ~bTag, size) and read over as many transfers as it takes,
/// within one deadline per answer. A timeout aborts the transfer (INITIATE_ABORT_BULK_IN/OUT); then, and after any
/// other failure once a query was sent, the device is cleared (INITIATE_CLEAR: its input and output queues emptied,
/// a measurement still under way dropped), so the next query can never read a stale answer. Not thread-safe: its
/// transport calls it from one thread.
public final class USBTMCSession {
    public let link: any USBTMCLink
    private(set) var lastTag: UInt8 = 0
    /// Message bytes asked for per REQUEST_DEV_DEP_MSG_IN.
    public var chunk = 4096
    /// The longest answer accepted, over all its transfers.
    public var maxAnswer = 1 << 20
    /// How long the abort and clear handshakes may take per request, and the pause between polls of one pending.
    public var controlTimeout: Duration = .milliseconds(500)
    public var pollInterval: Duration = .milliseconds(20)
    /// One whole answer, however many transfers it takes, must come within this many times the timeout.
    public var answerDeadlineFactor = 4

    public init(link: any USBTMCLink) {
        self.link = link
    }

    func nextTag() -> UInt8 {
        lastTag = USBTMC.nextTag(after: lastTag)
        return lastTag
    }

    /// Sends each message and reads the answers of the queries, in order.
    public func transact(_ messages: [SCPIMessage], timeout: Duration) throws(InstrumentError) -> [String] {
        var answers: [String] = []
        for message in messages {
            do {
                try write(message.text, timeout: timeout)
                if message.expectsAnswer { answers.append(try read(timeout: timeout)) }
            } catch {
                throw error.about(message.text)
            }
        }
        return answers
    }

    /// Sends one message (with a newline, as SCPI instruments expect) in one DEV_DEP_MSG_OUT with EOM.
    public func write(_ text: String, timeout: Duration) throws(InstrumentError) {
        let tag = nextTag()
        let payload = Array((text.hasSuffix("\n") ? text : text + "\n").utf8)
        do {
            try link.bulkOut(USBTMC.devDepMsgOut(tag: tag, payload: payload, endOfMessage: true), timeout: timeout)
        } catch {
            throw recoverOut(error, tag: tag, timeout: timeout, answerPending: false)
        }
    }

    /// Reads one whole answer, over as many requests and transfers as it takes, without its trailing newline.
    public func read(timeout: Duration) throws(InstrumentError) -> String {
        var message: [UInt8] = []
        let deadline = link.now() + timeout * answerDeadlineFactor
        // Bounded: an answer of maxAnswer bytes takes maxAnswer / chunk requests; a device that never ends one
        // (no EOM, nothing more) is cut off by the count, the deadline or the empty-transfer check.
        for _ in 0...(maxAnswer / max(chunk, 1) + 1) {
            let tag = nextTag()
            do {
                try link.bulkOut(
                    USBTMC.requestDevDepMsgIn(tag: tag, maxLength: UInt32(clamping: chunk)), timeout: timeout)
            } catch {
                throw recoverOut(error, tag: tag, timeout: timeout, answerPending: true)
            }
            let (data, end) = try readTransfer(tag: tag, timeout: timeout, deadline: deadline)
            message += data
            if end {
                while let last = message.last, last == 0x0A || last == 0x0D { message.removeLast() }
                return String(decoding: message, as: UTF8.self)
            }
            if data.isEmpty {
                clearQuietly()
                throw InstrumentError(
                    .protocolError,
                    "an empty reply without end-of-message: the answer never ends; the instrument was cleared")
            }
            if message.count > maxAnswer {
                clearQuietly()
                throw InstrumentError(
                    .protocolError, "an answer longer than \(maxAnswer) bytes; the instrument was cleared")
            }
            if link.now() > deadline {
                clearQuietly()
                throw InstrumentError(
                    .timeout,
                    "the answer did not end within \(timeout * answerDeadlineFactor); the instrument was cleared")
            }
        }
        clearQuietly()
        throw InstrumentError(.protocolError, "an answer in more transfers than \(maxAnswer) bytes need; cleared")
    }

    /// One DEV_DEP_MSG_IN: its header checked, its data read to its TransferSize.
    func readTransfer(tag: UInt8, timeout: Duration, deadline: Duration) throws(InstrumentError) -> ([UInt8], Bool) {
        let capacity = USBTMC.headerSize + chunk + 3
        let first: [UInt8]
        do {
            first = try link.read(.bulkIn, maxLength: capacity, timeout: timeout)
        } catch {
            throw recoverIn(error, tag: tag, timeout: timeout)
        }
        let header: USBTMC.InHeader
        do {
            header = try USBTMC.parseIn(first, tag: tag, requested: chunk)
        } catch {
            clearQuietly()
            throw InstrumentError(.protocolError, error.description + "; the instrument was cleared")
        }
        var data = Array(first.dropFirst(USBTMC.headerSize))
        // Padding to a multiple of 4 follows the data; anything beyond that is not USBTMC.
        if data.count > header.transferSize + 3 {
            clearQuietly()
            throw InstrumentError(
                .protocolError,
                "a transfer of \(data.count) data bytes for a reply announcing \(header.transferSize); the "
                    + "instrument was cleared")
        }
        // A reply may span several bulk-IN transfers (the header announces the whole).
        while data.count < header.transferSize {
            let more: [UInt8]
            do {
                more = try link.read(.bulkIn, maxLength: header.transferSize - data.count + 3, timeout: timeout)
            } catch {
                throw recoverIn(error, tag: tag, timeout: timeout)
            }
            guard !more.isEmpty, link.now() <= deadline else {
                clearQuietly()
                throw InstrumentError(
                    more.isEmpty ? .protocolError : .timeout,
                    (more.isEmpty
                        ? "an empty transfer after \(data.count) of the \(header.transferSize) bytes announced"
                        : "the \(header.transferSize) bytes announced did not come within \(timeout * answerDeadlineFactor)")
                        + "; the instrument was cleared")
            }
            data += more
        }
        return (Array(data.prefix(header.transferSize)), header.endOfMessage)
    }

    /// After a failed bulk-OUT: abort the transfer or clear the halt, and say what happened. When a query had been
    /// sent (`answerPending`: the failure was on the request for its answer), the device is cleared as well, or its
    /// answer would be the next one read.
    func recoverOut(_ failure: USBLinkFailure, tag: UInt8, timeout: Duration, answerPending: Bool) -> InstrumentError {
        var error: InstrumentError
        switch failure {
        case .timeout:
            abortBulkOut(tag: tag)
            error = InstrumentError(
                .timeout, "the instrument took no message within \(timeout); the transfer was aborted")
        case .stall:
            try? link.clearHalt(.bulkOut)
            error = InstrumentError(.refused, "the instrument refused the message (bulk-OUT STALL); halt cleared")
        case .gone: return InstrumentError(.gone, "the instrument is gone (unplugged or powered off)")
        case .overflow, .failed: error = InstrumentError(.refused, "sending failed: \(failure)")
        }
        if answerPending {
            clearQuietly()
            error.detail += "; the instrument was cleared"
        }
        return error
    }

    /// After a failed bulk-IN: abort the transfer (timeout), clear the halt (STALL), or clear the device.
    func recoverIn(_ failure: USBLinkFailure, tag: UInt8, timeout: Duration) -> InstrumentError {
        switch failure {
        case .timeout:
            // The abort ends the transfer; the clear drops an answer the instrument is still working on, which
            // would otherwise arrive later and be read as the next query's.
            abortBulkIn(tag: tag)
            clearQuietly()
            return InstrumentError(
                .timeout,
                "no answer within \(timeout); the transfer was aborted (INITIATE_ABORT_BULK_IN) and the instrument "
                    + "cleared")
        case .stall:
            try? link.clearHalt(.bulkIn)
            clearQuietly()
            return InstrumentError(.refused, "the instrument refused to answer (bulk-IN STALL); halt cleared")
        case .gone: return InstrumentError(.gone, "the instrument is gone (unplugged or powered off)")
        case .overflow:
            clearQuietly()
            return InstrumentError(.protocolError, "\(failure); the instrument was cleared")
        case .failed:
            clearQuietly()
            return InstrumentError(.refused, "reading failed: \(failure); the instrument was cleared")
        }
    }

    func control(
        _ type: UInt8, _ request: USBTMC.Request, value: UInt16 = 0, index: UInt16, length: Int
    )
        throws(USBLinkFailure) -> [UInt8]
    {
        try link.controlIn(
            requestType: type, request: request.rawValue, value: value, index: index, length: length,
            timeout: controlTimeout)
    }

    /// INITIATE_ABORT_BULK_IN for `tag`, then drain bulk-IN and poll CHECK_ABORT_BULK_IN_STATUS until it is done.
    /// (FAILED or TRANSFER_NOT_IN_PROGRESS: nothing to abort; the caller clears the device either way.)
    public func abortBulkIn(tag: UInt8) {
        guard let endpoint = link.address(of: .bulkIn),
            let reply = try? control(
                USBTMC.toEndpoint, .initiateAbortBulkIn, value: UInt16(tag), index: UInt16(endpoint), length: 2),
            reply.first == USBTMC.Status.success.rawValue
        else { return }
        for _ in 0..<25 {
            // The device ends what it had started with a short packet; read it away.
            _ = try? link.read(.bulkIn, maxLength: USBTMC.headerSize + chunk + 3, timeout: .milliseconds(50))
            guard
                let check = try? control(
                    USBTMC.toEndpoint, .checkAbortBulkInStatus, index: UInt16(endpoint), length: 8),
                check.first == USBTMC.Status.pending.rawValue
            else { return }
            link.pause(pollInterval)
        }
    }

    /// INITIATE_ABORT_BULK_OUT for `tag`, wait for it, and clear the bulk-OUT halt.
    public func abortBulkOut(tag: UInt8) {
        guard let endpoint = link.address(of: .bulkOut) else { return clearQuietly() }
        guard
            let reply = try? control(
                USBTMC.toEndpoint, .initiateAbortBulkOut, value: UInt16(tag), index: UInt16(endpoint), length: 2),
            reply.first == USBTMC.Status.success.rawValue
        else { return }
        for _ in 0..<25 {
            guard
                let check = try? control(
                    USBTMC.toEndpoint, .checkAbortBulkOutStatus, index: UInt16(endpoint), length: 8),
                check.first == USBTMC.Status.pending.rawValue
            else { break }
            link.pause(pollInterval)
        }
        try? link.clearHalt(.bulkOut)
    }

    /// INITIATE_CLEAR, CHECK_CLEAR_STATUS until done (draining bulk-IN when asked), then clear the bulk-OUT halt:
    /// the device's input and output buffers are empty afterwards.
    public func clear() throws(InstrumentError) {
        let interface = UInt16(link.interfaceNumber)
        try handshake("clearing the instrument") {
            let reply = try control(USBTMC.toInterface, .initiateClear, index: interface, length: 1)
            guard reply.first == USBTMC.Status.success.rawValue else {
                throw InstrumentError(
                    .refused, "INITIATE_CLEAR answered status \(reply.first.map { String($0) } ?? "none")")
            }
            var done = false
            for _ in 0..<50 where !done {
                let check = try control(USBTMC.toInterface, .checkClearStatus, index: interface, length: 2)
                done = check.first != USBTMC.Status.pending.rawValue
                if !done, check.count > 1, check[1] & 0x01 != 0 {
                    _ = try? link.read(.bulkIn, maxLength: USBTMC.headerSize + chunk + 3, timeout: .milliseconds(50))
                }
                if !done { link.pause(pollInterval) }
            }
            guard done else {
                throw InstrumentError(.refused, "the instrument was still clearing after 50 polls (CHECK_CLEAR_STATUS)")
            }
            try link.clearHalt(.bulkOut)
        }
    }

    /// Runs a class request's exchange, its link failures told as the instrument's: `what` failed, and how.
    func handshake<T>(_ what: String, _ body: () throws -> T) throws(InstrumentError) -> T {
        do {
            return try body()
        } catch let error as InstrumentError {
            throw error
        } catch let failure as USBLinkFailure {
            let kind: InstrumentError.Kind =
                switch failure {
                case .gone: .gone
                case .timeout: .timeout
                default: .refused
                }
            throw InstrumentError(kind, "\(what) failed: \(failure)")
        } catch {
            throw InstrumentError(.refused, "\(what) failed: \(error)")
        }
    }

    func clearQuietly() { try? clear() }

    /// GET_CAPABILITIES.
    public func capabilities() throws(InstrumentError) -> USBTMC.Capabilities {
        let reply: [UInt8]
        do {
            reply = try control(USBTMC.toInterface, .getCapabilities, index: UInt16(link.interfaceNumber), length: 0x18)
        } catch {
            throw InstrumentError(error == .gone ? .gone : .refused, "GET_CAPABILITIES failed: \(error)")
        }
        guard let capabilities = USBTMC.Capabilities(reply: reply) else {
            throw InstrumentError(
                .protocolError, "GET_CAPABILITIES answered \(reply.count) bytes, status \(reply.first ?? 0)")
        }
        return capabilities
    }

    /// USB488 REN_CONTROL: remote enable on or off.
    public func renControl(_ enable: Bool) throws(InstrumentError) {
        try handshake("REN_CONTROL") {
            let reply = try control(
                USBTMC.toInterface, .renControl, value: enable ? 1 : 0, index: UInt16(link.interfaceNumber), length: 1)
            guard reply.first == USBTMC.Status.success.rawValue else {
                throw InstrumentError(.refused, "REN_CONTROL answered status \(reply.first ?? 0)")
            }
        }
    }

    /// USB488 READ_STATUS_BYTE: the status byte, from the control reply or, on a device with an interrupt-IN
    /// endpoint, from its notification.
    public func readStatusByte() throws(InstrumentError) -> UInt8 {
        let tag = UInt8(2 + (Int(nextTag()) % 126))
        return try handshake("READ_STATUS_BYTE") {
            let reply = try control(
                USBTMC.toInterface, .readStatusByte, value: UInt16(tag), index: UInt16(link.interfaceNumber), length: 3)
            guard reply.count >= 3, reply[0] == USBTMC.Status.success.rawValue, reply[1] == tag else {
                throw InstrumentError(.refused, "READ_STATUS_BYTE answered \(reply) for bTag \(tag)")
            }
            guard link.address(of: .interruptIn) != nil else { return reply[2] }
            // A service request (0x81) may be waiting on the interrupt endpoint before ours.
            for _ in 0..<4 {
                let notification = try link.read(.interruptIn, maxLength: 2, timeout: controlTimeout)
                if notification.count == 2, notification[0] == 0x81 { continue }
                guard notification.count == 2, notification[0] == 0x80 | (tag & 0x7F) else {
                    throw InstrumentError(
                        .protocolError, "READ_STATUS_BYTE notification \(notification) is not for bTag \(tag)")
                }
                return notification[1]
            }
            throw InstrumentError(.protocolError, "READ_STATUS_BYTE: only service requests on the interrupt endpoint")
        }
    }
}
