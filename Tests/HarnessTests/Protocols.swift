import Harness

/// The device protocols, as the harness lists them.
let testProtocols = Transports.protocols
