import AcceptanceCore
import InstrumentCore
import Yams

/// How a station reaches an instrument: on USB by its identity (vendor:product and serial number, never a bus or
/// port number, which change when a cable moves), on the LAN by address (its serial checked against `*IDN?`), or a
/// simulated instrument answering in memory.
public struct InstrumentBinding: DeviceBinding {
    public enum Line: Sendable {
        case usb(vendor: UInt16, product: UInt16, serial: String)
        case tcp(host: String, port: Int, serial: String?)
        case memory(any SCPIPort)
    }

    public var line: Line

    public init(line: Line) {
        self.line = line
    }

    public var protocolName: String { SCPIProfileSyntax().name }

    public var summary: String {
        switch line {
        case let .usb(vendor, product, serial): "USB \(USBID.text(vendor: vendor, product: product)) serial \(serial)"
        case let .tcp(host, port, serial): "LAN \(host):\(port)" + (serial.map { " serial \($0)" } ?? "")
        case let .memory(port): port.summary
        }
    }
}

/// Instruments as a station binds them: `scpi: {usb: 2a8d:0101, serial: MY60001234}` (USBTMC through libusb) or
/// `scpi: {tcp: 10.0.4.31:5025, serial: MY60001234}` (raw SCPI on the LAN). Each is opened when the run connects,
/// identified (`*IDN?`) and configured; an instrument that is not there is an error before anything is actuated.
public struct InstrumentConnector: DeviceConnector {
    public init() {}

    public var syntax: any DeviceProtocolSyntax { SCPIProfileSyntax() }

    public func parseBinding(
        _ node: Node, device: String, file: String, reader: inout YAMLReader
    ) -> (any DeviceBinding)? {
        guard let fields = reader.mapping(node, "scpi") else { return nil }
        reader.rejectUnknownKeys(fields, allowed: ["usb", "tcp", "serial"], in: "scpi settings of '\(device)'")
        func field(_ key: String) -> Node? { fields.first { $0.key == key }?.value }
        var serial: String?
        if let serialNode = field("serial") {
            guard let text = reader.scalar(serialNode, "serial"),
                !text.isEmpty, text.count <= 126, text.allSatisfy({ $0.isASCII && !$0.isWhitespace })
            else {
                reader.error("serial must be the instrument's serial number (printable, no spaces)", at: serialNode)
                return nil
            }
            serial = text
        }
        switch (field("usb"), field("tcp")) {
        case let (usb?, nil):
            guard let text = reader.scalar(usb, "usb"), let (vendor, product) = USBID.parse(text) else {
                reader.error("usb must be vendor:product in hex, as lsusb shows it, such as 2a8d:0101", at: usb)
                return nil
            }
            guard let serial else {
                reader.error(
                    "instrument '\(device)' on USB is bound by its serial number too ('serial: MY60001234'): bus and "
                        + "port numbers change when a cable moves", at: node)
                return nil
            }
            return InstrumentBinding(line: .usb(vendor: vendor, product: product, serial: serial))
        case let (nil, tcp?):
            guard let text = reader.scalar(tcp, "tcp"), let colon = text.lastIndex(of: ":"),
                let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port),
                !text[..<colon].isEmpty, !text[..<colon].contains(where: { $0.isWhitespace || $0 == "/" })
            else {
                reader.error("tcp must be host:port, such as 10.0.4.31:5025", at: tcp)
                return nil
            }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return InstrumentBinding(line: .tcp(host: host, port: port, serial: serial))
        default:
            reader.error(
                "instrument '\(device)': give exactly one of 'usb: <vendor>:<product>' (with 'serial') or "
                    + "'tcp: host:port'", at: node)
            return nil
        }
    }

    public func withDevices<Result: Sendable>(
        _ devices: [BoundDevice], context: ConnectionContext,
        _ body: (ConnectedDevices) async -> Result
    ) async throws(ConnectionError) -> Result {
        var connected = ConnectedDevices()
        var opened: [USBTMCPort] = []
        var sockets: [SCPISocketPort] = []
        func closeAll() async {
            for port in opened { await port.close() }
            for port in sockets { await port.close() }
        }
        for device in devices {
            guard let binding = device.binding as? InstrumentBinding else {
                await closeAll()
                throw ConnectionError(device: device.name, "is not bound as an instrument")
            }
            let port: any SCPIPort
            var interface: String?
            var simulated = false
            switch binding.line {
            case let .memory(memory):
                port = memory
                simulated = true
            case let .tcp(host, number, _):
                let socket = SCPISocketPort(host: host, port: number)
                sockets.append(socket)
                port = socket
            case let .usb(vendor, product, serial):
                let usb = USBTMCPort(vendor: vendor, product: product, serial: serial)
                do {
                    let found = try await usb.open()
                    interface = found.capabilities?.summary
                } catch {
                    await usb.close()
                    await closeAll()
                    throw ConnectionError(
                        device: device.name, "instrument \(device.profile.model) (\(binding.summary)): \(error)")
                }
                opened.append(usb)
                port = usb
            }
            let instrument = SCPIPointDevice(name: device.name, profile: device.profile, port: port)
            do {
                try await instrument.connect()
            } catch {
                await closeAll()
                throw ConnectionError(
                    device: device.name, "instrument \(device.profile.model) (\(binding.summary)): \(error.reason)")
            }
            if case let .tcp(_, _, serial?) = binding.line, let identity = instrument.identity,
                identity.serial != serial
            {
                await closeAll()
                throw ConnectionError(
                    device: device.name,
                    "instrument at \(binding.summary) is serial \(identity.serial), not \(serial): another "
                        + "instrument answers at this address")
            }
            connected.devices[device.name] = instrument
            connected.endpoints[device.name] = instrument.endpoint
            if let identity = instrument.identity {
                connected.instruments[device.name] = InstrumentRecord(
                    name: device.name, profile: device.profile.model, manufacturer: identity.manufacturer,
                    model: identity.model, serial: identity.serial, firmware: identity.firmware,
                    connection: simulated ? "simulated, \(port.summary)" : port.summary, interface: interface,
                    simulated: simulated)
            }
        }
        let result = await body(connected)
        await closeAll()
        return result
    }
}
