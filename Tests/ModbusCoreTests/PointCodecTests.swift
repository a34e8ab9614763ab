import AcceptanceCore
import Foundation
import Testing

@testable import ModbusCore

@Suite("Point encoding")
struct PointCodecTests {
    func point(
        _ type: RegisterType, _ order: WordOrder = .abcd, scale: Double = 1, offset: Double = 0,
        unit: PhysicalUnit? = nil, table: ModbusTable = .holdingRegister, states: [Int: String] = [:],
        bit: Int? = nil
    ) -> PointDefinition {
        PointDefinition(
            name: "p", table: table, address: 10, type: type, wordOrder: order, scale: scale, offset: offset,
            unit: unit, access: .readWrite, states: states, bit: bit)
    }

    // Reference encodings worked out by hand from the Modbus byte order names: A is the most significant byte.
    @Test(arguments: [
        (WordOrder.abcd, [UInt16(0x42F6), 0xE979]), (.cdab, [0xE979, 0x42F6]), (.badc, [0xF642, 0x79E9]),
        (.dcba, [0x79E9, 0xF642]),
    ])
    func float32InEveryWordOrder(order: WordOrder, registers: [UInt16]) throws {
        let definition = point(.float32, order)
        let value = try PointCodec.decode(registers, for: definition)
        #expect(value == .number(Double(Float(123.456))))
        #expect(try PointCodec.encode(.number(123.456), for: definition) == registers)
    }

    @Test(arguments: [
        (WordOrder.abcd, [UInt16(0x1234), 0x5678]), (.cdab, [0x5678, 0x1234]), (.badc, [0x3412, 0x7856]),
        (.dcba, [0x7856, 0x3412]),
    ])
    func uint32InEveryWordOrder(order: WordOrder, registers: [UInt16]) throws {
        let definition = point(.uint32, order)
        #expect(try PointCodec.decode(registers, for: definition) == .number(Double(0x1234_5678)))
        #expect(try PointCodec.encode(.number(Double(0x1234_5678)), for: definition) == registers)
    }

    @Test(arguments: [
        (WordOrder.abcd, [UInt16(0xFFFF), 0xFFFE]), (.cdab, [0xFFFE, 0xFFFF]),
        (.badc, [0xFFFF, 0xFEFF]), (.dcba, [0xFEFF, 0xFFFF]),
    ])
    func int32NegativeInEveryWordOrder(order: WordOrder, registers: [UInt16]) throws {
        let definition = point(.int32, order)
        #expect(try PointCodec.decode(registers, for: definition) == .number(-2))
        #expect(try PointCodec.encode(.number(-2), for: definition) == registers)
    }

    @Test func int16WithScaleAndUnit() throws {
        let definition = point(.int16, scale: 0.1, unit: .kilopascal)
        let value = try PointCodec.decode([0xFB2E], for: definition)
        let quantity = try #require(value.quantity)
        #expect(abs(quantity.value - -123.4) < 1e-9)
        #expect(quantity.unit == .kilopascal)
        #expect(try PointCodec.encode(.quantity(Quantity(-123.4, .kilopascal)), for: definition) == [0xFB2E])
        // A write in another unit of the same dimension is converted first: 3 bar = 300.0 kPa = raw 3000.
        #expect(try PointCodec.encode(.quantity(Quantity(3, .bar)), for: definition) == [3000])
    }

    @Test func uint16ByteSwappedAndOffset() throws {
        let swapped = point(.uint16, .badc)
        #expect(try PointCodec.decode([0x1234], for: swapped) == .number(Double(0x3412)))
        #expect(try PointCodec.encode(.number(Double(0x3412)), for: swapped) == [0x1234])
        let offsetPoint = point(.uint16, scale: 0.1, offset: -40, unit: .celsius)
        #expect(try PointCodec.decode([650], for: offsetPoint) == .quantity(Quantity(25, .celsius)))
        #expect(try PointCodec.encode(.quantity(Quantity(25, .celsius)), for: offsetPoint) == [650])
    }

    @Test func statesAndBits() throws {
        let mode = point(.uint16, states: [0: "automatic", 1: "manual"])
        #expect(try PointCodec.decode([1], for: mode) == .text("manual"))
        #expect(try PointCodec.decode([7], for: mode) == .text("unknown(7)"))
        #expect(try PointCodec.encode(.text("automatic"), for: mode) == [0])
        #expect(throws: PointCodecError.self) { try PointCodec.encode(.text("turbo"), for: mode) }
        let valve = point(.bool, table: .coil, states: [0: "closed", 1: "open"])
        #expect(try PointCodec.decode([1], for: valve) == .text("open"))
        #expect(try PointCodec.encode(.text("closed"), for: valve) == [0])
        let coil = point(.bool, table: .coil)
        #expect(try PointCodec.encode(.bool(true), for: coil) == [1])
        let alarm = point(.bitfield, bit: 3)
        #expect(try PointCodec.decode([0b1000], for: alarm) == .bool(true))
        #expect(try PointCodec.decode([0b0111], for: alarm) == .bool(false))
        #expect(throws: PointCodecError.self) { try PointCodec.encode(.bool(true), for: alarm) }
    }

    @Test func refusesValuesThatDoNotFit() {
        let small = point(.int16, scale: 0.1, unit: .kilopascal)
        #expect(throws: PointCodecError.self) {
            try PointCodec.encode(.quantity(Quantity(4000, .kilopascal)), for: small)
        }
        #expect(throws: PointCodecError.self) { try PointCodec.encode(.quantity(Quantity(20, .celsius)), for: small) }
        #expect(throws: PointCodecError.self) { try PointCodec.encode(.number(20), for: small) }
        #expect(throws: PointCodecError.self) { try PointCodec.encode(.number(-1), for: point(.uint16)) }
        #expect(throws: PointCodecError.self) { try PointCodec.encode(.number(70000), for: point(.uint16)) }
        #expect(throws: PointCodecError.self) { try PointCodec.decode([0x7FC0, 0x0000], for: point(.float32)) }
        #expect(throws: PointCodecError.self) { try PointCodec.decode([0x0001], for: point(.float32)) }
    }

    @Test func aMissingSensorSentinelReadsAsNoReading() throws {
        var humidity = point(.int16, scale: 0.1, unit: .percent)
        humidity.modbus?.missing = -32768
        #expect(try PointCodec.decode([0x8000], for: humidity) == .missing)
        #expect(try PointCodec.decode([0x01F4], for: humidity) == .quantity(Quantity(50, .percent)))
        #expect(try PointCodec.encode(.missing, for: humidity) == [0x8000])
        var pressure = point(.float32, .cdab, unit: .bar)
        pressure.modbus?.missing = -9999
        // -9999.0f is 0xC61C3C00; CDAB puts the low word first.
        #expect(try PointCodec.decode([0x3C00, 0xC61C], for: pressure) == .missing)
        #expect(throws: PointCodecError.self) { try PointCodec.encode(.missing, for: point(.int16)) }
    }

    @Test func stringsAndFractionBits() throws {
        var serial = point(.string)
        serial.modbus?.length = 4
        // "SN-123" in 4 registers, high byte first, padded with spaces.
        #expect(try PointCodec.encode(.text("SN-123"), for: serial) == [0x534E, 0x2D31, 0x3233, 0x2020])
        #expect(try PointCodec.decode([0x534E, 0x2D31, 0x3233, 0x0000], for: serial) == .text("SN-123"))
        let path = NSTemporaryDirectory() + "fixed-\(UUID().uuidString).yaml"
        try """
        model: m
        points:
          volts: {table: holding-register, address: 0, type: uint16, fraction_bits: 10, unit: V, access: read-only}
          name: {table: holding-register, address: 1, type: string, length: 2}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let profile = try DeviceProfile.load(path: path, protocols: DeviceProtocols([ModbusProfileSyntax()]))
        let volts = try #require(profile.point(named: "volts"))
        // 50.0 V with 10 fraction bits is raw 51200.
        #expect(try PointCodec.decode([51200], for: volts) == .quantity(Quantity(50, .volt)))
        #expect(profile.point(named: "name")?.access == .readOnly, "strings default to read-only")
        #expect(profile.point(named: "name")?.modbus?.registerCount == 2)
    }

    @Test func everyTypeRoundTrips() throws {
        for type in [RegisterType.int16, .uint16, .int32, .uint32, .float32] {
            for order in WordOrder.allCases {
                let definition = point(type, order, scale: 0.5, unit: .kilowatt)
                for raw in [0.0, 1, 2, 100, 32767] {
                    let value = Value.quantity(Quantity(raw * 0.5, .kilowatt))
                    let registers = try PointCodec.encode(value, for: definition)
                    #expect(registers.count == type.registerCount)
                    #expect(try PointCodec.decode(registers, for: definition) == value, "\(type) \(order) \(raw)")
                }
            }
        }
    }
}

@Suite("Reading devices in blocks")
struct ModbusPointDeviceTests {
    /// Counts requests, serves a fixed register image.
    final class RecordingClient: ModbusClient, @unchecked Sendable {
        // Only touched from one test task at a time.
        var requests: [(ModbusTable, UInt16, Int)] = []
        var endpoint: String { "test" }
        func readCoils(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [Bool] {
            requests.append((.coil, address, count))
            return Array(repeating: true, count: count)
        }
        func readDiscreteInputs(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [Bool] {
            requests.append((.discreteInput, address, count))
            return Array(repeating: false, count: count)
        }
        func readHoldingRegisters(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [UInt16] {
            requests.append((.holdingRegister, address, count))
            return (0..<count).map { UInt16(Int(address) + $0) }
        }
        func readInputRegisters(startingAt address: UInt16, count: Int) async throws(ModbusError) -> [UInt16] {
            requests.append((.inputRegister, address, count))
            return (0..<count).map { UInt16(Int(address) + $0) }
        }
        func writeCoils(startingAt address: UInt16, values: [Bool]) async throws(ModbusError) {}
        func writeRegisters(startingAt address: UInt16, values: [UInt16]) async throws(ModbusError) {}
    }

    @Test func readsAdjacentPointsTogetherAndNeverAcrossGaps() async throws {
        let points = [
            PointDefinition(name: "a", table: .inputRegister, address: 0, type: .uint16),
            PointDefinition(name: "b", table: .inputRegister, address: 1, type: .uint32),
            PointDefinition(name: "c", table: .inputRegister, address: 5, type: .uint16),
            PointDefinition(name: "d", table: .discreteInput, address: 0, type: .bool),
        ]
        let profile = DeviceProfile(model: "m", protocolName: "modbus", points: points)
        let client = RecordingClient()
        let device = ModbusPointDevice(name: "dev", profile: profile, client: client)
        let values = try await device.read(points)
        #expect(values[0] == .number(0))
        #expect(values[1] == .number(Double(1 << 16 | 2)))
        #expect(values[2] == .number(5))
        #expect(values[3] == .bool(false))
        #expect(client.requests.count == 3)
        #expect(client.requests.contains { $0.0 == .inputRegister && $0.1 == 0 && $0.2 == 3 })
        #expect(client.requests.contains { $0.0 == .inputRegister && $0.1 == 5 && $0.2 == 1 })
    }

    @Test func refusesToWriteReadOnlyPoints() async {
        let point = PointDefinition(name: "p", table: .inputRegister, address: 0, type: .uint16)
        let profile = DeviceProfile(model: "m", protocolName: "modbus", points: [point])
        let device = ModbusPointDevice(name: "dev", profile: profile, client: RecordingClient())
        await #expect(throws: DeviceError.self) { try await device.write(point, .number(1)) }
    }
}
