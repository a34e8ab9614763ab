import AcceptanceCore
import Foundation
import ModbusCore

/// A Modbus TCP server on its own thread, answering from a `ModbusServerBackend`: libmodbus's `modbus_receive`
/// and `modbus_reply`, several clients at once through `select`.
public final class ModbusTCPServer: Sendable {
    /// The port it listens on (the one the system chose, if asked for port 0).
    public let port: Int
    public let host: String
    private let loop: ServerLoop

    /// Binds and starts serving. Listens on `host` only (loopback by default).
    public init(host: String = "127.0.0.1", port: Int, backend: any ModbusServerBackend) throws(ModbusError) {
        loop = try ServerLoop(host: host, port: port, backend: backend)
        self.port = loop.port
        self.host = host
        let loop = self.loop
        let thread = Thread { loop.run() }
        thread.name = "acceptance.modbus-server.\(port)"
        thread.start()
    }

    /// Asks the server to stop without waiting (for `defer` and `deinit`); `shutdown()` waits.
    public func stop() { loop.requestStop() }

    /// Stops serving, closes every connection and the listener, and returns when the server thread has finished.
    public func shutdown() async {
        loop.requestStop()
        await loop.finished.wait()
    }

    deinit { loop.requestStop() }
}
