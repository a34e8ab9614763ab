// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "acceptance",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "acceptance", targets: ["acceptance"]),
        .executable(name: "acceptance-bench", targets: ["acceptance-bench"]),
        .executable(name: "acceptance-fuzz", targets: ["acceptance-fuzz"]),
        .library(name: "AcceptanceCore", targets: ["AcceptanceCore"]),
        .library(name: "Simulation", targets: ["Simulation"]),
        .library(name: "Harness", targets: ["Harness"]),
        .library(name: "ModbusCore", targets: ["ModbusCore"]),
        .library(name: "ModbusTransport", targets: ["ModbusTransport"]),
        .library(name: "RedfishCore", targets: ["RedfishCore"]),
        .library(name: "RedfishTransport", targets: ["RedfishTransport"]),
        .library(name: "RedfishServer", targets: ["RedfishServer"]),
        .library(name: "Reports", targets: ["Reports"]),
        .library(name: "ArchivePostgres", targets: ["ArchivePostgres"]),
        .library(name: "InstrumentCore", targets: ["InstrumentCore"]),
        .library(name: "InstrumentTransport", targets: ["InstrumentTransport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.30.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.20.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.90.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.10.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.25.0"),
    ],
    targets: [
        // Procedures, units, expressions, device profiles and points by name, the device protocol every transport
        // implements, clock, runner, journal and record. Imports no transport, no C library and no network.
        .target(
            name: "AcceptanceCore",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // libmodbus, as a system library: headers and linking only.
        .systemLibrary(
            name: "CModbus",
            pkgConfig: "libmodbus",
            providers: [.apt(["libmodbus-dev"])]
        ),
        // Modbus without I/O: data tables, exceptions and errors, the client protocol, the retry policy, the point
        // codec, Modbus device profiles and Modbus points as devices. The simulator builds on it.
        .target(
            name: "ModbusCore",
            dependencies: ["AcceptanceCore", .product(name: "Yams", package: "Yams")]
        ),
        // Modbus TCP and RTU through libmodbus: clients on their own threads, and servers for the simulator.
        // Only LibModbus.swift touches libmodbus's pointers.
        .target(
            name: "ModbusTransport",
            dependencies: ["AcceptanceCore", "ModbusCore", "CModbus", .product(name: "Yams", package: "Yams")]
        ),
        // Redfish without I/O: requests and responses as values, errors, services, Redfish device profiles, the
        // client (sessions, retries, paging, ETags) over a transport protocol, and Redfish points as devices.
        .target(
            name: "RedfishCore",
            dependencies: ["AcceptanceCore", .product(name: "Yams", package: "Yams")]
        ),
        // Redfish over HTTPS on AsyncHTTPClient: the client's transport (CA files, pinning, timeouts).
        .target(
            name: "RedfishTransport",
            dependencies: [
                "AcceptanceCore",
                "RedfishCore",
                .product(name: "Yams", package: "Yams"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Any Redfish service (a simulated BMC, a DMTF mockup) served over HTTP(S) on loopback with Hummingbird,
        // with a certificate generated at start.
        .target(
            name: "RedfishServer",
            dependencies: [
                "AcceptanceCore",
                "RedfishCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Instruments without I/O: SCPI instrument profiles (`protocol: scpi`), SCPI instruments as devices (error
        // queue read after every command), and USBTMC/USB488 as bytes and a session over a link protocol.
        .target(
            name: "InstrumentCore",
            dependencies: ["AcceptanceCore", .product(name: "Yams", package: "Yams")]
        ),
        // libusb-1.0, as a system library: headers, linking and a shim for the variadic libusb_set_option.
        .systemLibrary(
            name: "CLibUSB",
            pkgConfig: "libusb-1.0",
            providers: [.apt(["libusb-1.0-0-dev"])]
        ),
        // Instruments reached for real: USBTMC through libusb and raw SCPI over TCP (LAN instruments, port 5025), each
        // on its own thread; station bindings by USB identity or address; listing what is attached. Only LibUSB.swift
        // touches libusb's pointers.
        .target(
            name: "InstrumentTransport",
            dependencies: ["AcceptanceCore", "InstrumentCore", "CLibUSB", .product(name: "Yams", package: "Yams")]
        ),
        // Report bundles: junit.xml, ocp.jsonl, report.html, verify.sh, a DSSE/in-toto attestation signed with Ed25519;
        // keys, keyrings, verification, approval, and the archive (SQLite through GRDB).
        .target(
            name: "Reports",
            dependencies: [
                "AcceptanceCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // The factory's archive on PostgreSQL through PostgresNIO: the same archive interface as the folder archive,
        // bundle files stored in the database by content hash; addresses and credentials (PGPASSWORD, .pgpass files).
        .target(
            name: "ArchivePostgres",
            dependencies: [
                "AcceptanceCore", "Reports",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The simulated rack: CDU physics, scenarios, in-memory Modbus devices, simulated instruments.
        .target(
            name: "Simulation",
            dependencies: [
                "AcceptanceCore", "ModbusCore", "RedfishCore", "InstrumentCore",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Wiring a run together: locating files, station/simulated devices, console, prompts, signals.
        .target(
            name: "Harness",
            dependencies: [
                "AcceptanceCore", "Simulation", "ModbusCore", "ModbusTransport", "RedfishCore", "RedfishTransport",
                "RedfishServer", "Reports", "ArchivePostgres", "InstrumentCore", "InstrumentTransport",
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "acceptance",
            dependencies: [
                "Harness", "AcceptanceCore", "RedfishServer", "Reports", "Simulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Fuzz entry points (YAML loaders, expressions, Modbus replies, Redfish JSON, bundle verification) and the
        // libFuzzer driver; the test suite replays Tests/FuzzCorpus through the same functions.
        .target(
            name: "FuzzTargets",
            dependencies: [
                "AcceptanceCore", "ModbusCore", "RedfishCore", "Reports", "Simulation",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(name: "acceptance-fuzz", dependencies: ["FuzzTargets"]),
        // Benchmarks; Peers/ holds the scripts that measure the peers named beside our figures (OpenHTF).
        .executableTarget(
            name: "acceptance-bench",
            dependencies: [
                "Harness", "AcceptanceCore", "Simulation", "ModbusCore", "ModbusTransport", "RedfishCore", "Reports",
                "InstrumentCore", "InstrumentTransport",
            ],
            exclude: ["Peers"]
        ),
        // Helpers several test targets share: scratch folders, free ports, running peer programs.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        // The core's own tests load Modbus and Redfish profiles as a station would, so they list both syntaxes.
        .testTarget(
            name: "AcceptanceCoreTests",
            dependencies: ["AcceptanceCore", "ModbusCore", "RedfishCore", "InstrumentCore", "TestSupport"]),
        .testTarget(name: "InstrumentTests", dependencies: ["InstrumentCore", "AcceptanceCore"]),
        .testTarget(name: "FuzzTargetTests", dependencies: ["FuzzTargets", "TestSupport"]),
        .testTarget(name: "ModbusCoreTests", dependencies: ["ModbusCore", "AcceptanceCore"]),
        .testTarget(
            name: "SimulationTests",
            dependencies: ["Simulation", "AcceptanceCore", "ModbusCore", "RedfishCore", "InstrumentCore"]),
        .testTarget(
            name: "ModbusTransportTests",
            dependencies: [
                "ModbusTransport", "ModbusCore", "RedfishCore", "Simulation", "InstrumentCore",
                "AcceptanceCore", "TestSupport",
            ],
            exclude: ["Peers"]),
        .testTarget(
            name: "RedfishTests",
            dependencies: [
                "RedfishCore", "RedfishTransport", "RedfishServer", "Simulation", "Harness",
                "AcceptanceCore", "TestSupport", .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]),
        .testTarget(
            name: "ReportsTests", dependencies: ["Reports", "Harness", "AcceptanceCore", "TestSupport"],
            exclude: ["Peers"]),
        .testTarget(
            name: "HarnessTests",
            dependencies: [
                "Harness", "Simulation", "AcceptanceCore", "ModbusCore", "ModbusTransport", "TestSupport",
            ]),
        // Runs the built `acceptance` binary as a technician would (the dependency builds it; nothing imports it).
        // Peers/ holds the script that plays the technician at a pseudo-terminal (Python's pty).
        // Reports and AcceptanceCore only to make many signed bundles quickly for the archive tests.
        .testTarget(
            name: "AcceptanceCLITests", dependencies: ["acceptance", "TestSupport", "Reports", "AcceptanceCore"],
            exclude: ["Peers"]),
    ],
    swiftLanguageModes: [.v6]
)
