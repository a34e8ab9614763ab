import AcceptanceCore
import Foundation
import ModbusCore
import Simulation
import TestSupport
import Testing

@testable import ModbusTransport

// Interop with peers we did not write: pymodbus (server, TCP and RTU) and mbpoll (client). `.ci/setup` installs
// them; a missing peer fails the test with the command that installs it.

func executable(_ name: String, install: String) throws -> String {
    for directory in ["/usr/bin", "/usr/local/bin", "/bin"]
    where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
        return "\(directory)/\(name)"
    }
    throw PeerMissing(description: "\(name) is not installed: run `bash .ci/setup` (\(install))")
}

func python() throws -> String {
    let candidates = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/python3" }
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw PeerMissing(description: "python3 not found")
    }
    return found
}

/// A long-running peer process, stopped when the test is done with it.
final class PeerProcess: @unchecked Sendable {
    // Created and stopped from the test's task only; posix_spawn, not Foundation's Process (see `ChildProcess`).
    let process: ChildProcess
    let output = NSTemporaryDirectory() + "peer-\(UUID().uuidString).txt"

    init(_ path: String, _ arguments: [String], readyWhen marker: String) async throws {
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        process = try ChildProcess(
            path, arguments, environment: ProcessInfo.processInfo.environment, stdout: output, stderr: output)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: output, encoding: .utf8), text.contains(marker) { return }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw PeerMissing(
            description: "\(path) \(arguments) did not start: "
                + ((try? String(contentsOfFile: output, encoding: .utf8)) ?? ""))
    }

    /// Kills the peer (pymodbus's asyncio server ignores SIGTERM) and waits a bounded time for it to go.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { usleep(10_000) }
    }
}

let peerScript = "\(repositoryRoot)/Tests/ModbusTransportTests/Peers/pymodbus_server.py"

/// The point map of the pymodbus register image, as a device profile.
func peerProfile() throws -> DeviceProfile {
    let path = NSTemporaryDirectory() + "peer-device-\(UUID().uuidString).yaml"
    try """
    model: peer-image
    kind: test
    points:
      pressure: {table: holding-register, address: 0, type: int16, scale: 0.1, unit: kPa, access: read-write}
      count_abcd: {table: holding-register, address: 2, type: uint32, word_order: ABCD}
      count_cdab: {table: holding-register, address: 4, type: uint32, word_order: CDAB}
      power_abcd: {table: holding-register, address: 6, type: float32, word_order: ABCD, unit: W}
      power_cdab: {table: holding-register, address: 8, type: float32, word_order: CDAB, unit: W}
      setpoint_cdab: {table: holding-register, address: 10, type: float32, word_order: CDAB, unit: W, access: read-write}
      offset_abcd: {table: holding-register, address: 12, type: int32, word_order: ABCD, access: read-write}
      level: {table: holding-register, address: 14, type: int16, scale: 0.1, unit: kPa, access: read-write}
    """.write(toFile: path, atomically: true, encoding: .utf8)
    return try DeviceProfile.load(path: path, protocols: testProtocols)
}

/// Raw holding registers as pymodbus's own client reads them from its server.
func pymodbusRead(port: Int, address: Int, count: Int) async throws -> [Int] {
    let script = """
        from pymodbus.client import ModbusTcpClient
        c = ModbusTcpClient('127.0.0.1', port=\(port)); c.connect()
        print(c.read_holding_registers(\(address), count=\(count)).registers)
        """
    let (status, output) = try await runProgram(try python(), ["-c", script])
    #expect(status == 0, "\(output)")
    let inner = output.trimmingCharacters(in: .whitespacesAndNewlines).trimmingCharacters(
        in: CharacterSet(charactersIn: "[]"))
    return inner.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
}

func assertRead(_ device: ModbusPointDevice, _ profile: DeviceProfile) async throws {
    let values = try await device.read(profile.points)
    func number(_ name: String) -> Double? {
        guard let index = profile.points.firstIndex(where: { $0.name == name }) else { return nil }
        return values[index].quantity?.value
            ?? { if case let .number(n) = values[index] { return n } else { return nil } }()
    }
    #expect(abs((number("pressure") ?? 0) - -123.4) < 1e-9)
    #expect(values[0].quantity?.unit == .kilopascal)
    #expect(number("count_abcd") == 305_419_896)
    #expect(number("count_cdab") == 305_419_896)
    #expect(abs((number("power_abcd") ?? 0) - 123.456) < 1e-4)
    #expect(number("power_cdab") == -0.5)
}

@Suite("Interop with pymodbus and mbpoll", .serialized)
struct PeerTests {
    @Test func readsAndWritesAPymodbusTCPServer() async throws {
        let port = freePort()
        let server = try await PeerProcess(try python(), [peerScript, "tcp", "\(port)"], readyWhen: "READY")
        defer { server.stop() }
        let profile = try peerProfile()
        // The Python server may take a moment to listen after it says READY: retry the first connection.
        let client = RetryingModbusClient(
            try LibModbusClient(endpoint: .tcp(host: "127.0.0.1", port: port), unit: 1),
            policy: RetryPolicy(retries: 5, backoff: .milliseconds(100)), clock: WallClock(),
            device: "peer", events: DiscardingTransportEvents())
        let device = ModbusPointDevice(name: "peer", profile: profile, client: client)
        try await assertRead(device, profile)

        // Writes land exactly the raw words Python's struct module gives.
        let setpoint = try #require(profile.point(named: "setpoint_cdab"))
        try await device.write(setpoint, .quantity(Quantity(42.5, .watt)))  // float32 0x422A0000, CDAB
        let offset = try #require(profile.point(named: "offset_abcd"))
        try await device.write(offset, .number(-2))  // int32 0xFFFFFFFE, ABCD
        let level = try #require(profile.point(named: "level"))
        try await device.write(level, .quantity(Quantity(-1.23, .bar)))  // -123.0 kPa = raw -1230 = 0xFB32
        #expect(try await pymodbusRead(port: port, address: 10, count: 5) == [0x0000, 0x422A, 0xFFFF, 0xFFFE, 0xFB32])
    }

    @Test func readsAPymodbusRTUServerOverAPtyPair() async throws {
        let socat = try executable("socat", install: "apt-get install socat")
        let directory = NSTemporaryDirectory() + "pty-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let serverEnd = "\(directory)/server"
        let clientEnd = "\(directory)/client"
        let pair = try await PeerProcess(
            socat, ["-d", "-d", "pty,raw,echo=0,link=\(serverEnd)", "pty,raw,echo=0,link=\(clientEnd)"],
            readyWhen: "starting data transfer loop")
        defer { pair.stop() }
        let server = try await PeerProcess(try python(), [peerScript, "rtu", serverEnd], readyWhen: "READY")
        defer { server.stop() }
        let profile = try peerProfile()
        // A pty ignores framing, and pyserial cannot set parity on one: 8N1 here (a real line would be 8E1).
        let client = RetryingModbusClient(
            try LibModbusClient(
                endpoint: .rtu(device: clientEnd, baud: 19200, parity: .none, dataBits: 8, stopBits: 1), unit: 1),
            policy: RetryPolicy(retries: 5, backoff: .milliseconds(200)), clock: WallClock(), device: "peer",
            events: DiscardingTransportEvents())
        try await assertRead(ModbusPointDevice(name: "peer", profile: profile, client: client), profile)
    }

    @Test func mbpollReadsAndDrivesTheSimulator() async throws {
        let mbpoll = try executable("mbpoll", install: "apt-get install mbpoll")
        let clock = SimulationClock()
        let cdu = try quietCDU(clock: clock)
        let server = try ModbusTCPServer(port: 0, backend: cdu)
        defer { server.stop() }
        let port = "\(server.port)"
        // Raw input registers as mbpoll prints them (hex) are the simulator's encoding of its values.
        let (status, output) = try await runProgram(
            mbpoll,
            [
                "-m", "tcp", "-a", "1", "-0", "-r", "0", "-c", "9", "-t", "3:hex",
                "-1", "-p", port, "127.0.0.1",
            ])
        #expect(status == 0, "\(output)")
        let polled = output.split(separator: "\n").compactMap { line -> UInt16? in
            guard line.hasPrefix("["), let hex = line.split(separator: "0x").last else { return nil }
            return UInt16(hex.trimmingCharacters(in: .whitespaces), radix: 16)
        }
        #expect(polled == (try await cdu.readInputRegisters(startingAt: 0, count: 9)))
        let loop = try #require(polled.count > 2 ? polled[2] : nil)
        #expect(abs(Double(Int16(bitPattern: loop)) / 10 - cdu.snapshot().loopPressure) < 0.06)

        // A setpoint written with mbpoll changes what the simulated CDU does.
        for arguments in [["-r", "0", "-t", "4", "1"], ["-r", "1", "-t", "4", "900"], ["-r", "0", "-t", "0", "1"]] {
            let (written, text) = try await runProgram(
                mbpoll,
                ["-m", "tcp", "-a", "1", "-0"] + arguments.dropLast()
                    + ["-p", port, "127.0.0.1"] + [arguments.last ?? ""])
            #expect(written == 0, "\(text)")
        }
        let before = cdu.snapshot().pumpPressure
        clock.advance(to: .seconds(60))
        let after = cdu.snapshot()
        #expect(after.reportedMode == "manual")
        #expect(abs(after.pumpSpeed - 90) < 0.01)
        #expect(after.pumpPressure > before + 50)
    }
}

@Suite("The power shelf on a Modbus RTU line", .serialized)
struct RTUShelfTests {
    @Test func mbpollAndSharedLineClientsReadEverySupplyByUnitId() async throws {
        let socat = try executable("socat", install: "apt-get install socat")
        let mbpoll = try executable("mbpoll", install: "apt-get install mbpoll")
        let directory = NSTemporaryDirectory() + "rtu-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let serverEnd = "\(directory)/shelf"
        let clientEnd = "\(directory)/station"
        let pair = try await PeerProcess(
            socat, ["-d", "-d", "pty,raw,echo=0,link=\(serverEnd)", "pty,raw,echo=0,link=\(clientEnd)"],
            readyWhen: "starting data transfer loop")
        defer { pair.stop() }
        let configuration = try RackConfiguration.load(
            rackID: "gb200-nvl72", fixtures: "\(repositoryRoot)/Fixtures", protocols: testProtocols)
        let rack = try SimulatedRack(configuration: configuration, scenario: .nominal, clock: SimulationClock())
        let router = UnitRouter(
            devices: Dictionary(uniqueKeysWithValues: rack.psus.values.map { ($0.address, $0.device) }))
        let server = try ModbusRTUServer(device: serverEnd, backend: router)
        defer { server.stop() }

        // An independent client: mbpoll reads unit 192's model string and unit 195's output power (2 fraction bits).
        let (status, output) = try await runProgram(
            mbpoll,
            [
                "-m", "rtu", "-a", "192", "-b", "19200", "-P", "none", "-0",
                "-r", "0", "-c", "8", "-t", "4:hex", "-1", clientEnd,
            ])
        #expect(status == 0, "\(output)")
        let words = output.split(separator: "\n").compactMap { line -> UInt16? in
            guard line.hasPrefix("["), let hex = line.split(separator: "0x").last else { return nil }
            return UInt16(hex.trimmingCharacters(in: .whitespaces), radix: 16)
        }
        let text = String(decoding: words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }, as: UTF8.self)
        #expect(text == "ORV3-PSU-5K5-SIM")
        let (powerStatus, powerOutput) = try await runProgram(
            mbpoll,
            [
                "-m", "rtu", "-a", "195", "-b", "19200", "-P", "none",
                "-0", "-r", "38", "-c", "1", "-t", "4", "-1", clientEnd,
            ])
        #expect(powerStatus == 0)
        #expect(powerOutput.contains("[38]: \t12000"), "3000 W in quarter-watts: \(powerOutput)")

        // The harness: six libmodbus clients sharing one line, each addressing its supply.
        let line = try ModbusLine(
            endpoint: .rtu(device: clientEnd, baud: 19200, parity: .none, dataBits: 8, stopBits: 1))
        let profile = try #require(configuration.profiles["orv3-psu"])
        let points = ["serial_number", "output_power", "output_on"].compactMap { profile.point(named: $0) }
        for unit in UInt8(192)...197 {
            let device = ModbusPointDevice(
                name: "psu", profile: profile, client: LibModbusClient(line: line, unit: unit))
            let values = try await device.read(points)
            #expect(values[0] == .text("SIMPSU-000\(unit - 191)"))
            #expect(values[1] == .quantity(Quantity(3_000, .watt)))
            #expect(values[2] == .bool(true))
        }
        // A unit that is not on the line does not answer.
        let absent = LibModbusClient(line: line, unit: 200)
        await #expect(throws: ModbusError.self) { try await absent.readHoldingRegisters(startingAt: 0, count: 1) }
    }

    @Test func crcMatchesTheModbusReference() {
        // The specification's example: 01 03 00 00 00 0A has CRC C5CD (sent CD C5).
        #expect(ModbusRTUServer.crc16([0x01, 0x03, 0x00, 0x00, 0x00, 0x0A]) == 0xCDC5)
    }
}

@Suite("Hostile requests are answered, never fatal")
struct HostileRequestTests {
    func framed(_ bytes: [UInt8]) -> [UInt8] {
        let crc = ModbusRTUServer.crc16(bytes)
        return bytes + [UInt8(crc & 0xFF), UInt8(crc >> 8)]
    }

    func rack() throws -> SimulatedRack {
        let configuration = try RackConfiguration.load(
            rackID: "gb200-nvl72", fixtures: "\(repositoryRoot)/Fixtures", protocols: testProtocols)
        return try SimulatedRack(configuration: configuration, scenario: .nominal, clock: SimulationClock())
    }

    @Test func rtuFramesThatLieAboutTheirLengthGetExceptions() throws {
        let backend = UnitRouter(
            devices: Dictionary(uniqueKeysWithValues: try rack().psus.values.map { ($0.address, $0.device) }))
        // Quantity 2, byte count 0: must not read past the frame.
        let short = framed([192, 0x10, 0x00, 0x40, 0x00, 0x02, 0x00])
        #expect(ModbusRTUServer.response(to: short, backend: backend) == [192, 0x90, 0x03])
        // Quantity 0.
        let empty = framed([192, 0x10, 0x00, 0x40, 0x00, 0x00, 0x00])
        #expect(ModbusRTUServer.response(to: empty, backend: backend) == [192, 0x90, 0x03])
        // A coil value that is neither ON (FF00) nor OFF (0000).
        let coil = framed([192, 0x05, 0x00, 0x00, 0x12, 0x34])
        #expect(ModbusRTUServer.response(to: coil, backend: backend) == [192, 0x85, 0x03])
        // Past the end of the address space.
        let overflow = framed([192, 0x03, 0xFF, 0xFF, 0x00, 0x02])
        #expect(ModbusRTUServer.response(to: overflow, backend: backend) == [192, 0x83, 0x02])
        // Broadcasts are never answered.
        let broadcast = framed([0, 0x06, 0x00, 0x40, 0x00, 0x01])
        #expect(ModbusRTUServer.response(to: broadcast, backend: backend) == nil)
    }

    @Test func tcpWritesPastTheLastAddressAreRefused() async throws {
        let rack = try rack()
        let cdu = try #require(rack.cdus["cdu"])
        let server = try ModbusTCPServer(port: 0, backend: cdu)
        defer { server.stop() }
        // Sent below the client (which refuses such a write before sending it): write multiple registers, 2 at 65535.
        let frame: [UInt8] = [0, 9, 0, 0, 0, 11, 1, 0x10, 0xFF, 0xFF, 0, 2, 4, 0, 1, 0, 2]
        #expect(rawExchange(port: server.port, frame, replyLength: 9) == [0, 9, 0, 0, 0, 3, 1, 0x90, 0x02])
        let client = try LibModbusClient(endpoint: .tcp(host: "127.0.0.1", port: server.port), unit: 1)
        do {
            try await client.writeRegisters(startingAt: 65535, values: [1, 2])
            Issue.record("a write past address 65535 was accepted")
        } catch {
            guard case .invalidRequest = error.kind else {
                Issue.record("expected the client to refuse the write itself, got \(error)")
                return
            }
        }
        // The server is still there.
        #expect(try await client.readHoldingRegisters(startingAt: 0, count: 1).count == 1)
    }

    @Test func duplicateUnitIdsAreRefusedWhenTheRackLoads() throws {
        let directory = NSTemporaryDirectory() + "dup-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: "\(directory)/racks", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(repositoryRoot)/Fixtures/devices", toPath: "\(directory)/devices")
        try """
        id: dup
        devices:
          psu1: {model: orv3-psu, address: 193}
          psu2: {model: orv3-psu, address: 193}
        """.write(toFile: "\(directory)/racks/dup.yaml", atomically: true, encoding: .utf8)
        #expect(throws: DiagnosticsError.self) {
            try RackConfiguration.load(rackID: "dup", fixtures: directory, protocols: testProtocols)
        }
    }
}
