import Foundation
import Testing

@testable import AcceptanceCore

@Suite("Units")
struct UnitsTests {
    @Test(arguments: [
        ("300 kPa", 300.0, "kPa"), ("300kPa", 300, "kPa"), ("-5 °C", -5, "°C"), ("1.5 L/min", 1.5, "L/min"),
        ("10min", 10, "min"), ("2 kPa/min", 2, "kPa/min"), ("45 degC", 45, "°C"), ("1e3 W", 1000, "W"),
        ("12 %", 12, "%"), ("3 bar", 3, "bar"), ("2500 rpm", 2500, "rpm"), ("230 V", 230, "V"), ("16 A", 16, "A"),
        ("5.5 kW", 5.5, "kW"), ("500 ms", 500, "ms"),
    ])
    func parsesQuantities(text: String, value: Double, symbol: String) throws {
        let quantity = try Quantity.parse(text)
        #expect(quantity.value == value)
        #expect(quantity.unit.symbol == symbol)
    }

    @Test func rejectsNumbersWithoutUnitsAndUnknownUnits() {
        #expect(throws: UnitError.notAQuantity("300")) { try Quantity.parse("300") }
        #expect(throws: UnitError.unknownUnit("furlongs")) { try Quantity.parse("3 furlongs") }
        #expect(throws: UnitError.notAQuantity("kPa")) { try Quantity.parse("kPa") }
    }

    @Test func convertsWithinADimension() throws {
        let pressure = try Quantity(3, .bar).converted(to: .kilopascal)
        #expect(abs(pressure.value - 300) < 1e-9)
        let psi = try Quantity(100, .psi).converted(to: .kilopascal)
        #expect(abs(psi.value - 689.4757) < 1e-3)
        let flow = try Quantity(60, .litersPerMinute).converted(to: .cubicMetersPerHour)
        #expect(abs(flow.value - 3.6) < 1e-9)
        let power = try Quantity(5.5, .kilowatt).converted(to: .watt)
        #expect(abs(power.value - 5500) < 1e-9)
        let time = try Quantity(10, .minute).converted(to: .second)
        #expect(time.value == 600)
        #expect(Quantity(10, .minute).duration == .seconds(600))
        #expect(Quantity(10, .kilopascal).duration == nil)
    }

    @Test func temperaturesConvertAsPointsAndAsIntervals() throws {
        let absolute = try Quantity(25, .celsius).converted(to: .kelvin)
        #expect(abs(absolute.value - 298.15) < 1e-9)
        let interval = try Quantity(2, .celsius).convertedInterval(to: .kelvin)
        #expect(abs(interval.value - 2) < 1e-9)
        let fahrenheit = try Quantity(100, .celsius).converted(to: .fahrenheit)
        #expect(abs(fahrenheit.value - 212) < 1e-9)
    }

    @Test func ratesConvertTheirTimeBase() throws {
        let perMinute = try #require(PhysicalUnit.named("kPa/min"))
        let perSecond = try #require(PhysicalUnit.named("Pa/s"))
        #expect(perMinute.dimension == .rate(of: .pressure))
        let converted = try Quantity(6, perMinute).convertedInterval(to: perSecond)
        #expect(abs(converted.value - 100) < 1e-9)
    }

    @Test func refusesToMixDimensions() {
        #expect(throws: UnitError.self) { try Quantity(300, .kilopascal).converted(to: .celsius) }
        #expect(throws: UnitError.self) { try Quantity(1, .minute).converted(to: .percent) }
    }

    @Test func bridgesToFoundationMeasurement() {
        let measurement = Quantity(250, .kilopascal).measurement
        #expect(abs(measurement.converted(to: UnitPressure.bars).value - 2.5) < 1e-9)
    }

    @Test func formatsWithoutNoise() {
        #expect(Quantity.format(2) == "2")
        #expect(Quantity.format(0.30000000000000004) == "0.3")
        #expect(Quantity.format(-0.02812345) == "-0.0281")
        #expect(Quantity(300, .kilopascal).description == "300 kPa")
    }
}
