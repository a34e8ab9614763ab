import AcceptanceCore
import CLibUSB
import Foundation
import InstrumentCore

// The only file that touches libusb's pointers. Each context, device list, configuration descriptor and device
// handle has one owner here that frees it; everything in this file runs on one instrument's own thread (or, for a
// scan, on the scanning thread), never on Swift's cooperative pool.

/// A USBTMC interface of a device: its number, protocol and endpoints.
public struct USBTMCInterfaceInfo: Sendable, Hashable {
    public var number: UInt8
    /// 0 plain USBTMC, 1 USB488.
    public var protocolCode: UInt8
    public var bulkOut: UInt8
    public var bulkIn: UInt8
    public var bulkInMaxPacket: Int
    public var interruptIn: UInt8?
}

/// A USB device as a scan sees it, identified the way a station binds it: vendor:product and serial number.
public struct USBDeviceInfo: Sendable, Hashable {
    public var vendor: UInt16
    public var product: UInt16
    public var serial: String?
    public var manufacturer: String?
    public var productName: String?
    /// Where it is plugged in now (changes when a cable moves: never used to bind).
    public var bus: UInt8
    public var address: UInt8
    public var usbtmc: USBTMCInterfaceInfo?

    /// `2a8d:1301`.
    public var id: String { USBID.text(vendor: vendor, product: product) }
}

/// libusb's failure, with its own name for the code.
public struct LibUSBError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var code: Int32

    init(_ operation: String, _ code: Int32) {
        self.operation = operation
        self.code = code
    }

    public var name: String { String(cString: libusb_error_name(code)) }
    public var description: String { "\(operation): \(name)" }

    var failure: USBLinkFailure {
        switch code {
        case Int32(LIBUSB_ERROR_TIMEOUT.rawValue): .timeout
        case Int32(LIBUSB_ERROR_PIPE.rawValue): .stall
        case Int32(LIBUSB_ERROR_NO_DEVICE.rawValue): .gone
        case Int32(LIBUSB_ERROR_OVERFLOW.rawValue): .overflow
        default: .failed(description)
        }
    }
}

/// A libusb context with its device list; freed when released.
final class LibUSBContext {
    let context: OpaquePointer
    private var list: UnsafeMutablePointer<OpaquePointer?>?
    private(set) var devices: [OpaquePointer] = []

    init() throws(LibUSBError) {
        var context: OpaquePointer?
        let status = libusb_init(&context)
        guard status == 0, let context else { throw LibUSBError("libusb_init", status) }
        self.context = context
        _ = acceptance_libusb_set_log_level(context, Int32(LIBUSB_LOG_LEVEL_NONE.rawValue))
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = libusb_get_device_list(context, &list)
        guard count >= 0, let list else {
            libusb_exit(context)
            throw LibUSBError("libusb_get_device_list", Int32(truncatingIfNeeded: count))
        }
        self.list = list
        devices = (0..<Int(count)).compactMap { list[$0] }
    }

    /// Frees the device list (devices opened from it stay referenced by their handles) and the context.
    func close(keepingContext: Bool = false) {
        if let list { libusb_free_device_list(list, 1) }
        list = nil
        devices = []
        if !keepingContext { libusb_exit(context) }
    }

    /// A device's descriptor fields, without opening it.
    static func describe(_ device: OpaquePointer) -> USBDeviceInfo? {
        var descriptor = libusb_device_descriptor()
        guard libusb_get_device_descriptor(device, &descriptor) == 0 else { return nil }
        var info = USBDeviceInfo(
            vendor: descriptor.idVendor, product: descriptor.idProduct, serial: nil, manufacturer: nil,
            productName: nil, bus: libusb_get_bus_number(device), address: libusb_get_device_address(device))
        info.usbtmc = usbtmcInterface(device)
        return info
    }

    /// The device's first USBTMC interface in its active (or first) configuration.
    static func usbtmcInterface(_ device: OpaquePointer) -> USBTMCInterfaceInfo? {
        var config: UnsafeMutablePointer<libusb_config_descriptor>?
        if libusb_get_active_config_descriptor(device, &config) != 0 || config == nil {
            guard libusb_get_config_descriptor(device, 0, &config) == 0 else { return nil }
        }
        guard let config else { return nil }
        defer { libusb_free_config_descriptor(config) }
        for interfaceIndex in 0..<Int(config.pointee.bNumInterfaces) {
            let interface = config.pointee.interface[interfaceIndex]
            for settingIndex in 0..<Int(interface.num_altsetting) {
                let setting = interface.altsetting[settingIndex]
                guard setting.bInterfaceClass == USBTMC.interfaceClass,
                    setting.bInterfaceSubClass == USBTMC.interfaceSubclass
                else { continue }
                var bulkIn: (UInt8, Int)?
                var bulkOut: UInt8?
                var interruptIn: UInt8?
                for endpointIndex in 0..<Int(setting.bNumEndpoints) {
                    let endpoint = setting.endpoint[endpointIndex]
                    let isIn = endpoint.bEndpointAddress & 0x80 != 0
                    switch (endpoint.bmAttributes & 0x03, isIn) {
                    case (2, true): bulkIn = (endpoint.bEndpointAddress, Int(endpoint.wMaxPacketSize))
                    case (2, false): bulkOut = endpoint.bEndpointAddress
                    case (3, true): interruptIn = endpoint.bEndpointAddress
                    default: break
                    }
                }
                guard let bulkIn, let bulkOut else { continue }
                return USBTMCInterfaceInfo(
                    number: setting.bInterfaceNumber, protocolCode: setting.bInterfaceProtocol, bulkOut: bulkOut,
                    bulkIn: bulkIn.0, bulkInMaxPacket: max(bulkIn.1, 1), interruptIn: interruptIn)
            }
        }
        return nil
    }
}

/// An open device handle; closed (interface released, kernel driver given back) exactly once.
final class LibUSBHandle {
    let handle: OpaquePointer
    private var claimed: UInt8?
    /// The interface the kernel's driver was detached from, to give back.
    private var detached: UInt8?
    private var isClosed = false

    init(_ device: OpaquePointer) throws(LibUSBError) {
        var handle: OpaquePointer?
        let status = libusb_open(device, &handle)
        guard status == 0, let handle else { throw LibUSBError("libusb_open", status) }
        self.handle = handle
    }

    /// A string descriptor (serial, manufacturer, product) by index, as ASCII; nil when there is none.
    func string(_ index: UInt8) -> String? {
        guard index != 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBufferPointer {
            libusb_get_string_descriptor_ascii(handle, index, $0.baseAddress, Int32($0.count))
        }
        guard count > 0 else { return nil }
        return String(decoding: buffer.prefix(Int(count)), as: UTF8.self)
    }

    func strings(of device: OpaquePointer) -> (serial: String?, manufacturer: String?, product: String?) {
        var descriptor = libusb_device_descriptor()
        guard libusb_get_device_descriptor(device, &descriptor) == 0 else { return (nil, nil, nil) }
        return (string(descriptor.iSerialNumber), string(descriptor.iManufacturer), string(descriptor.iProduct))
    }

    /// Detaches the kernel's driver (usbtmc) if one is bound, remembering to give it back, and claims `interface`.
    func claim(_ interface: UInt8) throws(LibUSBError) {
        if libusb_kernel_driver_active(handle, Int32(interface)) == 1 {
            let status = libusb_detach_kernel_driver(handle, Int32(interface))
            guard status == 0 else { throw LibUSBError("detaching the kernel's usbtmc driver", status) }
            detached = interface
        }
        let status = libusb_claim_interface(handle, Int32(interface))
        guard status == 0 else { throw LibUSBError("claiming interface \(interface)", status) }
        claimed = interface
    }

    /// Releases the interface, gives the kernel its driver back (even when the claim failed after the detach), and
    /// closes the handle. Once.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        if let claimed { libusb_release_interface(handle, Int32(claimed)) }
        if let detached { libusb_attach_kernel_driver(handle, Int32(detached)) }
        libusb_close(handle)
    }

    static func milliseconds(_ timeout: Duration) -> UInt32 {
        let (seconds, attoseconds) = timeout.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow, seconds >= 0 else { return seconds < 0 ? 1 : UInt32.max }
        return UInt32(clamping: max(1, whole + attoseconds / 1_000_000_000_000_000))
    }

    /// A bulk or interrupt transfer on `endpoint` (its direction in bit 7); the bytes moved.
    func transfer(
        _ endpoint: UInt8, _ data: inout [UInt8], timeout: Duration, interrupt: Bool = false
    ) throws(LibUSBError) -> Int {
        var transferred: Int32 = 0
        let length = Int32(clamping: data.count)
        let status = data.withUnsafeMutableBufferPointer { buffer in
            interrupt
                ? libusb_interrupt_transfer(
                    handle, endpoint, buffer.baseAddress, length, &transferred, Self.milliseconds(timeout))
                : libusb_bulk_transfer(
                    handle, endpoint, buffer.baseAddress, length, &transferred, Self.milliseconds(timeout))
        }
        guard status == 0 else {
            throw LibUSBError("\(interrupt ? "interrupt" : "bulk") transfer on endpoint 0x\(hex(endpoint))", status)
        }
        return Int(transferred)
    }

    func controlIn(
        requestType: UInt8, request: UInt8, value: UInt16, index: UInt16, length: Int, timeout: Duration
    ) throws(LibUSBError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max(length, 1))
        let status = buffer.withUnsafeMutableBufferPointer {
            libusb_control_transfer(
                handle, requestType, request, value, index, $0.baseAddress, UInt16(length), Self.milliseconds(timeout))
        }
        guard status >= 0 else { throw LibUSBError("control request \(request)", status) }
        return Array(buffer.prefix(Int(status)))
    }

    func clearHalt(_ endpoint: UInt8) throws(LibUSBError) {
        let status = libusb_clear_halt(handle, endpoint)
        guard status == 0 else { throw LibUSBError("clearing the halt on endpoint 0x\(hex(endpoint))", status) }
    }
}

func hex(_ byte: UInt8) -> String { String(byte, radix: 16, uppercase: false) }

/// The USBTMC devices attached now: each opened briefly to read its strings (serial number, names).
enum LibUSBScan {
    static func devices(usbtmcOnly: Bool = true) throws(LibUSBError) -> [USBDeviceInfo] {
        let context = try LibUSBContext()
        defer { context.close() }
        var found: [USBDeviceInfo] = []
        for device in context.devices {
            guard var info = LibUSBContext.describe(device), !usbtmcOnly || info.usbtmc != nil else { continue }
            if let handle = try? LibUSBHandle(device) {
                (info.serial, info.manufacturer, info.productName) = handle.strings(of: device)
                handle.close()
            }
            found.append(info)
        }
        return found.sorted { ($0.bus, $0.address) < ($1.bus, $1.address) }
    }
}

/// One instrument's USBTMC interface, opened and claimed: the link a `USBTMCSession` talks over. Owns its context
/// and handle and frees both in `close()` (or when released). Used only on its instrument's thread.
final class LibUSBTMCLink: USBTMCLink {
    let context: LibUSBContext
    let handle: LibUSBHandle
    let info: USBDeviceInfo
    let interface: USBTMCInterfaceInfo
    private var isClosed = false

    /// Opens the one device with this vendor:product and serial number (any, when `serial` is nil) and claims its
    /// USBTMC interface.
    init(vendor: UInt16, product: UInt16, serial: String?) throws(USBOpenError) {
        let context: LibUSBContext
        do {
            context = try LibUSBContext()
        } catch {
            throw .library(error)
        }
        var candidates: [(OpaquePointer, USBDeviceInfo)] = []
        var seen: [USBDeviceInfo] = []
        for device in context.devices {
            guard var info = LibUSBContext.describe(device), info.vendor == vendor, info.product == product else {
                continue
            }
            if let probe = try? LibUSBHandle(device) {
                (info.serial, info.manufacturer, info.productName) = probe.strings(of: device)
                probe.close()
            }
            seen.append(info)
            if serial == nil || info.serial == serial { candidates.append((device, info)) }
        }
        guard let (device, info) = candidates.first, candidates.count == 1 else {
            context.close()
            throw candidates.isEmpty ? .notFound(seen: seen) : .ambiguous(candidates.map(\.1))
        }
        guard let interface = info.usbtmc else {
            context.close()
            throw .notUSBTMC(info)
        }
        let handle: LibUSBHandle
        do {
            handle = try LibUSBHandle(device)
        } catch {
            context.close()
            throw .library(error)
        }
        do {
            try handle.claim(interface.number)
        } catch {
            // Busy (another program has it), or the driver would not let go: the handle is closed before the
            // context it belongs to.
            handle.close()
            context.close()
            throw .library(error)
        }
        context.close(keepingContext: true)
        self.context = context
        self.handle = handle
        self.info = info
        self.interface = interface
    }

    deinit { close() }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        handle.close()
        libusb_exit(context.context)
    }

    var interfaceNumber: UInt8 { interface.number }

    /// Pauses this instrument's own thread between polls of a pending abort or clear (never the cooperative pool).
    func pause(_ duration: Duration) { Thread.sleep(forTimeInterval: max(0, min(duration.seconds, 1))) }

    func now() -> Duration { ContinuousClock.now - Self.origin }

    static let origin = ContinuousClock.now

    func address(of endpoint: USBTMCEndpoint) -> UInt8? {
        switch endpoint {
        case .bulkOut: interface.bulkOut
        case .bulkIn: interface.bulkIn
        case .interruptIn: interface.interruptIn
        }
    }

    func bulkOut(_ data: [UInt8], timeout: Duration) throws(USBLinkFailure) {
        guard !isClosed else { throw .gone }
        var buffer = data
        do {
            let sent = try handle.transfer(interface.bulkOut, &buffer, timeout: timeout)
            guard sent == data.count else { throw USBLinkFailure.failed("sent \(sent) of \(data.count) bytes") }
        } catch let error as LibUSBError {
            throw error.failure
        } catch let failure as USBLinkFailure {
            throw failure
        } catch {
            throw .failed("\(error)")
        }
    }

    func read(_ endpoint: USBTMCEndpoint, maxLength: Int, timeout: Duration) throws(USBLinkFailure) -> [UInt8] {
        guard !isClosed else { throw .gone }
        guard let address = address(of: endpoint) else { throw .failed("the interface has no \(endpoint) endpoint") }
        // Whole packets: a bulk-IN buffer that is not a multiple of the packet size can overflow on a full packet.
        let packet = endpoint == .bulkIn ? interface.bulkInMaxPacket : 64
        var buffer = [UInt8](repeating: 0, count: (maxLength + packet - 1) / packet * packet)
        do {
            let count = try handle.transfer(address, &buffer, timeout: timeout, interrupt: endpoint == .interruptIn)
            return Array(buffer.prefix(count))
        } catch {
            throw error.failure
        }
    }

    func controlIn(
        requestType: UInt8, request: UInt8, value: UInt16, index: UInt16, length: Int, timeout: Duration
    ) throws(USBLinkFailure) -> [UInt8] {
        guard !isClosed else { throw .gone }
        do {
            return try handle.controlIn(
                requestType: requestType, request: request, value: value, index: index, length: length,
                timeout: timeout)
        } catch {
            throw error.failure
        }
    }

    func clearHalt(_ endpoint: USBTMCEndpoint) throws(USBLinkFailure) {
        guard !isClosed else { throw .gone }
        guard let address = address(of: endpoint) else { return }
        do {
            try handle.clearHalt(address)
        } catch {
            throw error.failure
        }
    }
}

/// Why an instrument could not be opened.
public enum USBOpenError: Error, Sendable, CustomStringConvertible {
    case library(LibUSBError)
    case notFound(seen: [USBDeviceInfo])
    case ambiguous([USBDeviceInfo])
    case notUSBTMC(USBDeviceInfo)

    public var description: String {
        switch self {
        case let .library(error): "\(error)"
        case let .notFound(seen):
            seen.isEmpty
                ? "not attached (no USB device with this vendor:product; check the cable and `acceptance instruments`)"
                : "not attached; with this vendor:product there is only serial "
                    + seen.map { $0.serial ?? "(none)" }.joined(separator: ", ")
        case let .ambiguous(devices):
            "\(devices.count) devices match; bind the instrument by its serial number ("
                + devices.map { $0.serial ?? "(none)" }.joined(separator: ", ") + ")"
        case let .notUSBTMC(info): "device \(info.id) has no USBTMC interface (class FE, subclass 03)"
        }
    }
}
