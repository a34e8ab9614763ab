import AcceptanceCore
import InstrumentCore

/// `2a8d:1301` and back.
public enum USBID {
    public static func text(vendor: UInt16, product: UInt16) -> String {
        func four(_ value: UInt16) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: 4 - digits.count) + digits
        }
        return "\(four(vendor)):\(four(product))"
    }

    public static func parse(_ text: String) -> (vendor: UInt16, product: UInt16)? {
        let parts = text.lowercased().split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ (1...4).contains($0.count) && $0.allSatisfy(\.isHexDigit) }),
            let vendor = UInt16(parts[0], radix: 16), let product = UInt16(parts[1], radix: 16)
        else { return nil }
        return (vendor, product)
    }
}

/// A USBTMC instrument over libusb: opened, claimed and spoken to on its own thread, never on the cooperative pool.
public final class USBTMCPort: SCPIPort {
    /// The libusb link and the session over it. Touched only by jobs on `thread`, one at a time, which is what makes
    /// it safe to hand to them.
    final class Confined: @unchecked Sendable {
        var link: LibUSBTMCLink?
        var session: USBTMCSession?
    }

    public let vendor: UInt16
    public let product: UInt16
    public let serial: String?
    let thread: ConnectionThread
    let confined = Confined()

    public init(vendor: UInt16, product: UInt16, serial: String?) {
        self.vendor = vendor
        self.product = product
        self.serial = serial
        thread = ConnectionThread(name: "usbtmc \(USBID.text(vendor: vendor, product: product))")
    }

    public var summary: String {
        "USB \(USBID.text(vendor: vendor, product: product))" + (serial.map { " serial \($0)" } ?? "")
    }

    /// What opening found: the device and its interface's capabilities.
    public struct Opened: Sendable {
        public var device: USBDeviceInfo
        public var capabilities: USBTMC.Capabilities?
    }

    /// Finds the instrument by vendor:product and serial, detaches the kernel's driver, claims the interface, asks
    /// its capabilities and (USB488) enables remote control.
    public func open() async throws(InstrumentError) -> Opened {
        let (vendor, product, serial, confined) = (self.vendor, self.product, self.serial, self.confined)
        let result = await thread.run { () -> Result<Opened, InstrumentError> in
            if let link = confined.link { return .success(Opened(device: link.info, capabilities: nil)) }
            let link: LibUSBTMCLink
            do throws(USBOpenError) {
                link = try LibUSBTMCLink(vendor: vendor, product: product, serial: serial)
            } catch {
                if case .library = error { return .failure(InstrumentError(.refused, "opening it: \(error)")) }
                return .failure(InstrumentError(.gone, error.description))
            }
            let session = USBTMCSession(link: link)
            confined.link = link
            confined.session = session
            // Anything left in the instrument from before (a run that stopped mid-answer) is thrown away.
            try? session.clear()
            let capabilities = try? session.capabilities()
            if capabilities?.acceptsRENControl == true { try? session.renControl(true) }
            return .success(Opened(device: link.info, capabilities: capabilities))
        }
        return try result.get()
    }

    public func transact(_ messages: [SCPIMessage], timeout: Duration) async throws(InstrumentError) -> [String] {
        let confined = self.confined
        let result = await thread.run { () -> Result<[String], InstrumentError> in
            guard let session = confined.session else {
                return .failure(InstrumentError(.gone, "the instrument is not open"))
            }
            do throws(InstrumentError) {
                return .success(try session.transact(messages, timeout: timeout))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    public func clear() async throws(InstrumentError) {
        let confined = self.confined
        let result = await thread.run { () -> Result<Void, InstrumentError> in
            guard let session = confined.session else { return .failure(InstrumentError(.gone, "not open")) }
            do throws(InstrumentError) {
                try session.clear()
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// USB488 READ_STATUS_BYTE.
    public func statusByte() async throws(InstrumentError) -> UInt8 {
        let confined = self.confined
        let result = await thread.run { () -> Result<UInt8, InstrumentError> in
            guard let session = confined.session else { return .failure(InstrumentError(.gone, "not open")) }
            do throws(InstrumentError) {
                return .success(try session.readStatusByte())
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Gives the instrument back to local control, releases the interface (re-attaching the kernel's driver) and
    /// frees the handle and context.
    public func close() async {
        let confined = self.confined
        await thread.run {
            if let session = confined.session {
                try? session.renControl(false)
            }
            confined.session = nil
            confined.link?.close()
            confined.link = nil
        }
    }
}

/// The USBTMC instruments attached to this machine, for `acceptance instruments`.
public enum USBInstruments {
    /// One attached instrument: the device, its capabilities and what `*IDN?` answered (or why not).
    public struct Listing: Sendable {
        public var device: USBDeviceInfo
        public var capabilities: USBTMC.Capabilities?
        public var identity: Result<InstrumentIdentity, InstrumentError>
    }

    /// Lists every USBTMC device and asks each its `*IDN?`, on a thread of its own.
    public static func list(timeout: Duration = .seconds(2)) async throws(InstrumentError) -> [Listing] {
        let thread = ConnectionThread(name: "usb scan")
        let scanned = await thread.run { () -> Result<[USBDeviceInfo], LibUSBError> in
            do throws(LibUSBError) {
                return .success(try LibUSBScan.devices())
            } catch {
                return .failure(error)
            }
        }
        let devices: [USBDeviceInfo]
        switch scanned {
        case let .success(found): devices = found
        case let .failure(error): throw InstrumentError(.refused, "scanning USB: \(error)")
        }
        var listings: [Listing] = []
        for device in devices {
            let port = USBTMCPort(vendor: device.vendor, product: device.product, serial: device.serial)
            var listing = Listing(
                device: device, capabilities: nil, identity: .failure(InstrumentError(.gone, "not asked")))
            do {
                let opened = try await port.open()
                listing.capabilities = opened.capabilities
                let answer = try await port.transact([SCPIMessage("*IDN?")], timeout: timeout).first ?? ""
                listing.identity =
                    InstrumentIdentity(idn: answer).map { .success($0) }
                    ?? .failure(InstrumentError(.unreadable, command: "*IDN?", "'\(answer)'"))
            } catch {
                listing.identity = .failure(error)
            }
            await port.close()
            listings.append(listing)
        }
        return listings
    }
}
