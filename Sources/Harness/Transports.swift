import AcceptanceCore
import ModbusCore
import RedfishCore

/// The transports this build knows, listed once. Adding a transport is a module of its own and a line here.
public enum Transports {
    /// How each transport's devices are written in device profiles.
    public static let protocols = DeviceProtocols([ModbusProfileSyntax(), RedfishProfileSyntax()])
}
