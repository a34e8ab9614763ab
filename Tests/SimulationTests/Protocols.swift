import AcceptanceCore
import InstrumentCore
import ModbusCore
import RedfishCore

/// The device protocols the fixtures use, as the harness lists them.
let testProtocols = DeviceProtocols([ModbusProfileSyntax(), RedfishProfileSyntax(), SCPIProfileSyntax()])
