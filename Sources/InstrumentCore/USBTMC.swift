/// USBTMC 1.0 and USB488 as bytes, with no I/O: the 12-byte bulk headers, the class requests and their replies.
public enum USBTMC {
    /// Interface class, subclass and protocols of a USBTMC interface.
    public static let interfaceClass: UInt8 = 0xFE
    public static let interfaceSubclass: UInt8 = 0x03
    public static let protocolUSB488: UInt8 = 0x01

    /// Bulk message ids.
    public enum MessageID: UInt8, Sendable {
        case devDepMsgOut = 1
        /// REQUEST_DEV_DEP_MSG_IN on bulk-OUT, and DEV_DEP_MSG_IN on bulk-IN.
        case devDepMsgIn = 2
        case vendorSpecificOut = 126
        case requestVendorSpecificIn = 127
        case trigger = 128
    }

    /// Class-specific control requests (USBTMC table 15, USB488 table 9).
    public enum Request: UInt8, Sendable {
        case initiateAbortBulkOut = 1
        case checkAbortBulkOutStatus = 2
        case initiateAbortBulkIn = 3
        case checkAbortBulkInStatus = 4
        case initiateClear = 5
        case checkClearStatus = 6
        case getCapabilities = 7
        case indicatorPulse = 64
        case readStatusByte = 128
        case renControl = 160
        case goToLocal = 161
        case localLockout = 162
    }

    /// USBTMC_status values in control replies.
    public enum Status: UInt8, Sendable {
        case success = 0x01
        case pending = 0x02
        case failed = 0x80
        case transferNotInProgress = 0x81
        case splitNotInProgress = 0x82
        case splitInProgress = 0x83
    }

    /// bmRequestType of a class request to the interface (IN) and to an endpoint (IN).
    public static let toInterface: UInt8 = 0xA1
    public static let toEndpoint: UInt8 = 0xA2

    public static let headerSize = 12

    /// A DEV_DEP_MSG_OUT transfer: header, `payload`, zero padding to a multiple of 4.
    public static func devDepMsgOut(tag: UInt8, payload: [UInt8], endOfMessage: Bool) -> [UInt8] {
        var bytes = header(.devDepMsgOut, tag: tag, size: UInt32(payload.count), attributes: endOfMessage ? 0x01 : 0)
        bytes += payload
        bytes += [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4)
        return bytes
    }

    /// A REQUEST_DEV_DEP_MSG_IN transfer asking for up to `maxLength` bytes, ending early at `termChar` if given.
    public static func requestDevDepMsgIn(tag: UInt8, maxLength: UInt32, termChar: UInt8? = nil) -> [UInt8] {
        var bytes = header(.devDepMsgIn, tag: tag, size: maxLength, attributes: termChar == nil ? 0 : 0x02)
        if let termChar { bytes[9] = termChar }
        return bytes
    }

    static func header(_ id: MessageID, tag: UInt8, size: UInt32, attributes: UInt8) -> [UInt8] {
        [
            id.rawValue, tag, ~tag, 0,
            UInt8(size & 0xFF), UInt8((size >> 8) & 0xFF), UInt8((size >> 16) & 0xFF), UInt8(size >> 24),
            attributes, 0, 0, 0,
        ]
    }

    /// The next bTag after `tag`: 1 to 255, never 0.
    public static func nextTag(after tag: UInt8) -> UInt8 { tag == 255 ? 1 : tag + 1 }

    /// A DEV_DEP_MSG_IN transfer's header, checked against the request it answers.
    public struct InHeader: Sendable, Hashable {
        /// Bytes of message data this transfer announces (TransferSize).
        public var transferSize: Int
        public var endOfMessage: Bool

        public init(transferSize: Int, endOfMessage: Bool) {
            self.transferSize = transferSize
            self.endOfMessage = endOfMessage
        }
    }

    /// What is wrong with a bulk-IN transfer.
    public enum FrameError: Error, Sendable, Hashable, CustomStringConvertible {
        case tooShort(Int)
        case wrongMessageID(UInt8)
        case wrongTag(expected: UInt8, got: UInt8)
        case badInverse(tag: UInt8, inverse: UInt8)
        case oversized(announced: Int, requested: Int)

        public var description: String {
            switch self {
            case let .tooShort(count): "a bulk-IN transfer of \(count) bytes, shorter than the 12-byte header"
            case let .wrongMessageID(id): "a reply with MsgID \(id), not DEV_DEP_MSG_IN (2)"
            case let .wrongTag(expected, got): "a reply for bTag \(got), not the request's bTag \(expected)"
            case let .badInverse(tag, inverse):
                "a reply whose bTagInverse \(inverse) is not the inverse of its bTag \(tag)"
            case let .oversized(announced, requested):
                "a reply announcing \(announced) bytes when \(requested) were asked for"
            }
        }
    }

    /// Checks a DEV_DEP_MSG_IN header for the request with `tag` that asked for up to `requested` bytes.
    public static func parseIn(_ bytes: [UInt8], tag: UInt8, requested: Int) throws(FrameError) -> InHeader {
        guard bytes.count >= headerSize else { throw .tooShort(bytes.count) }
        guard bytes[0] == MessageID.devDepMsgIn.rawValue else { throw .wrongMessageID(bytes[0]) }
        guard bytes[2] == ~bytes[1] else { throw .badInverse(tag: bytes[1], inverse: bytes[2]) }
        guard bytes[1] == tag else { throw .wrongTag(expected: tag, got: bytes[1]) }
        let size = Int(bytes[4]) | Int(bytes[5]) << 8 | Int(bytes[6]) << 16 | Int(bytes[7]) << 24
        guard size <= requested else { throw .oversized(announced: size, requested: requested) }
        return InHeader(transferSize: size, endOfMessage: bytes[8] & 0x01 != 0)
    }

    /// GET_CAPABILITIES, decoded (USBTMC table 37, USB488 table 8).
    public struct Capabilities: Sendable, Hashable, Codable {
        public var usbtmcVersion: String
        public var acceptsIndicatorPulse: Bool
        public var talkOnly: Bool
        public var listenOnly: Bool
        public var supportsTermChar: Bool
        /// USB488 fields, when the interface is USB488.
        public var usb488Version: String?
        public var is488Interface: Bool
        public var acceptsRENControl: Bool
        public var acceptsTrigger: Bool
        public var understandsSCPI: Bool

        /// The 24-byte reply; nil when it is not a successful one.
        public init?(reply bytes: [UInt8]) {
            guard bytes.count >= 6, bytes[0] == Status.success.rawValue else { return nil }
            func bcd(_ low: UInt8, _ high: UInt8) -> String { "\(high >> 4)\(high & 0xF).\(low >> 4)\(low & 0xF)" }
            usbtmcVersion = bcd(bytes[2], bytes[3])
            acceptsIndicatorPulse = bytes[4] & 0x04 != 0
            talkOnly = bytes[4] & 0x02 != 0
            listenOnly = bytes[4] & 0x01 != 0
            supportsTermChar = bytes[5] & 0x01 != 0
            if bytes.count >= 16, bytes[12] != 0 || bytes[13] != 0 {
                usb488Version = bcd(bytes[12], bytes[13])
                is488Interface = bytes[14] & 0x04 != 0
                acceptsRENControl = bytes[14] & 0x02 != 0
                acceptsTrigger = bytes[14] & 0x01 != 0
                understandsSCPI = bytes[15] & 0x08 != 0
            } else {
                usb488Version = nil
                is488Interface = false
                acceptsRENControl = false
                acceptsTrigger = false
                understandsSCPI = false
            }
        }

        /// For listings: `USBTMC 1.00, USB488 1.00 (SCPI, REN, trigger, TermChar)`.
        public var summary: String {
            var features: [String] = []
            if understandsSCPI { features.append("SCPI") }
            if acceptsRENControl { features.append("REN") }
            if acceptsTrigger { features.append("trigger") }
            if supportsTermChar { features.append("TermChar") }
            if acceptsIndicatorPulse { features.append("pulse") }
            return "USBTMC \(usbtmcVersion)" + (usb488Version.map { ", USB488 \($0)" } ?? "")
                + (features.isEmpty ? "" : " (" + features.joined(separator: ", ") + ")")
        }
    }
}
