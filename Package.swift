// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "acceptance",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "acceptance", targets: ["acceptance"]),
        .executable(name: "acceptance-bench", targets: ["acceptance-bench"]),
        .library(name: "AcceptanceCore", targets: ["AcceptanceCore"]),
        .library(name: "Simulation", targets: ["Simulation"]),
        .library(name: "Harness", targets: ["Harness"]),
        .library(name: "ModbusTransport", targets: ["ModbusTransport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
    ],
    targets: [
        // Procedures, units, expressions, profiles, point codec, device protocols, clock, runner, journal and record.
        // Imports no C library and no network.
        .target(
            name: "AcceptanceCore",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // libmodbus, as a system library: headers and linking only.
        .systemLibrary(
            name: "CModbus",
            pkgConfig: "libmodbus",
            providers: [.apt(["libmodbus-dev"])]
        ),
        // Modbus TCP and RTU through libmodbus: clients on their own threads, and a server for the simulator.
        // Only LibModbus.swift touches libmodbus's pointers.
        .target(
            name: "ModbusTransport",
            dependencies: ["AcceptanceCore", "CModbus"]
        ),
        // The simulated rack: CDU physics, scenarios, in-memory Modbus devices.
        .target(
            name: "Simulation",
            dependencies: ["AcceptanceCore", .product(name: "Yams", package: "Yams")]
        ),
        // Wiring a run together: locating files, station/simulated devices, console, prompts, signals.
        .target(
            name: "Harness",
            dependencies: ["AcceptanceCore", "Simulation", "ModbusTransport", .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "acceptance",
            dependencies: ["Harness", "AcceptanceCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "acceptance-bench",
            dependencies: ["Harness", "AcceptanceCore", "Simulation", "ModbusTransport"]
        ),
        .testTarget(name: "AcceptanceCoreTests", dependencies: ["AcceptanceCore"]),
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "AcceptanceCore"]),
        .testTarget(name: "ModbusTransportTests", dependencies: ["ModbusTransport", "Simulation", "AcceptanceCore"],
                    exclude: ["Peers"]),
        .testTarget(name: "HarnessTests", dependencies: ["Harness", "Simulation", "AcceptanceCore"]),
        // Runs the built `acceptance` binary as a technician would: exit codes, signals, kill -9.
        .testTarget(name: "AcceptanceCLITests", dependencies: ["acceptance"]),
    ],
    swiftLanguageModes: [.v6]
)
