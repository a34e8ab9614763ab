import AcceptanceCore
import InstrumentTransport
import ModbusTransport
import RedfishTransport

/// The transports this build knows, listed once. Adding a transport is a module of its own (its profile syntax,
/// station binding and connector) and a line here.
public enum Transports {
    public static let connectors = DeviceConnectors([
        ModbusConnector(),
        RedfishConnector(),
        InstrumentConnector(),
    ])

    /// How each transport's devices are written in device profiles.
    public static let protocols = connectors.protocols
}
