import Foundation

// Units are Foundation `Dimension`s. Foundation lacks volumetric flow, ratio (percent) and rotational speed, so
// those are declared here the way Foundation declares its own: a base unit and linear converters.

/// Volumetric flow; base unit cubic metres per second.
public final class UnitVolumetricFlow: Dimension, @unchecked Sendable {
    public static let cubicMetersPerSecond = UnitVolumetricFlow(
        symbol: "m³/s", converter: UnitConverterLinear(coefficient: 1))
    public static let litersPerMinute = UnitVolumetricFlow(
        symbol: "L/min", converter: UnitConverterLinear(coefficient: 1.0 / 60_000))
    public static let cubicMetersPerHour = UnitVolumetricFlow(
        symbol: "m³/h", converter: UnitConverterLinear(coefficient: 1.0 / 3600))
    public static let usGallonsPerMinute = UnitVolumetricFlow(
        symbol: "gpm", converter: UnitConverterLinear(coefficient: 0.003_785_411_784 / 60))

    override public class func baseUnit() -> Self {
        Self(symbol: "m³/s", converter: UnitConverterLinear(coefficient: 1))
    }
}

/// A dimensionless ratio; base unit the plain fraction.
public final class UnitRatio: Dimension, @unchecked Sendable {
    public static let fraction = UnitRatio(symbol: "ratio", converter: UnitConverterLinear(coefficient: 1))
    public static let percent = UnitRatio(symbol: "%", converter: UnitConverterLinear(coefficient: 0.01))

    override public class func baseUnit() -> Self {
        Self(symbol: "ratio", converter: UnitConverterLinear(coefficient: 1))
    }
}

/// Rotational speed; base unit revolutions per minute.
public final class UnitRotationalSpeed: Dimension, @unchecked Sendable {
    public static let revolutionsPerMinute = UnitRotationalSpeed(
        symbol: "rpm", converter: UnitConverterLinear(coefficient: 1))

    override public class func baseUnit() -> Self {
        Self(symbol: "rpm", converter: UnitConverterLinear(coefficient: 1))
    }
}

/// What a quantity measures. Two quantities can be compared or added only if their dimensions are equal.
public indirect enum PhysicalDimension: Sendable, Hashable, CustomStringConvertible {
    case pressure, temperature, volumetricFlow, ratio, voltage, current, power, energy, rotationalSpeed, time
    case frequency
    /// A rate of change, such as a pressure decay in kPa/min.
    case rate(of: PhysicalDimension)

    public var description: String {
        switch self {
        case .pressure: "pressure"
        case .temperature: "temperature"
        case .volumetricFlow: "flow"
        case .ratio: "ratio"
        case .voltage: "voltage"
        case .current: "current"
        case .power: "power"
        case .energy: "energy"
        case .rotationalSpeed: "rotational speed"
        case .time: "time"
        case .frequency: "frequency"
        case let .rate(base): "\(base) per time"
        }
    }
}

/// A unit of measure: a Foundation `Dimension`, optionally per unit of time (`kPa/min`).
public struct PhysicalUnit: Sendable, Hashable, CustomStringConvertible {
    /// The symbol the unit is printed with.
    public let symbol: String
    public let dimension: PhysicalDimension
    /// The Foundation unit the values are expressed in (for rates: the numerator).
    public var foundationUnit: Dimension { storage.unit }
    /// For a rate, the time unit of the denominator.
    public var perTime: UnitDuration? { storage.perTime }

    private let storage: Storage

    /// Foundation's unit classes are immutable once created, so sharing them across tasks is safe.
    private struct Storage: @unchecked Sendable {
        let unit: Dimension
        let perTime: UnitDuration?
    }

    init(_ symbol: String, _ dimension: PhysicalDimension, _ unit: Dimension, per perTime: UnitDuration? = nil) {
        self.symbol = symbol
        self.dimension = dimension
        self.storage = Storage(unit: unit, perTime: perTime)
    }

    public var description: String { symbol }

    public static func == (lhs: PhysicalUnit, rhs: PhysicalUnit) -> Bool {
        lhs.symbol == rhs.symbol && lhs.dimension == rhs.dimension
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(symbol)
        hasher.combine(dimension)
    }

    private var linear: UnitConverterLinear? { foundationUnit.converter as? UnitConverterLinear }

    /// The value in the dimension's base unit (Pa, K, m³/s, ..., per second for rates).
    public func baseValue(of value: Double) -> Double {
        var base = foundationUnit.converter.baseUnitValue(fromValue: value)
        if let perTime { base /= perTime.converter.baseUnitValue(fromValue: 1) }
        return base
    }

    /// The value in this unit of a value given in the dimension's base unit.
    public func value(fromBase base: Double) -> Double {
        var base = base
        if let perTime { base *= perTime.converter.baseUnitValue(fromValue: 1) }
        return foundationUnit.converter.value(fromBaseUnitValue: base)
    }

    /// Converts a difference (an interval) rather than a point on the scale: 2 °C of change is 2 K, not 275.15 K.
    public func baseInterval(of value: Double) -> Double {
        var base = value * (linear?.coefficient ?? 1)
        if let perTime { base /= perTime.converter.baseUnitValue(fromValue: 1) }
        return base
    }

    public func interval(fromBase base: Double) -> Double {
        var base = base
        if let perTime { base *= perTime.converter.baseUnitValue(fromValue: 1) }
        return base / (linear?.coefficient ?? 1)
    }

    /// This unit per minute, per second or per hour.
    public func per(_ time: PhysicalUnit) -> PhysicalUnit? {
        guard time.dimension == .time, perTime == nil, let timeUnit = time.foundationUnit as? UnitDuration else {
            return nil
        }
        return PhysicalUnit("\(symbol)/\(time.symbol)", .rate(of: dimension), foundationUnit, per: timeUnit)
    }
}

extension PhysicalUnit {
    public static let pascal = PhysicalUnit("Pa", .pressure, UnitPressure.newtonsPerMetersSquared)
    public static let kilopascal = PhysicalUnit("kPa", .pressure, UnitPressure.kilopascals)
    public static let megapascal = PhysicalUnit("MPa", .pressure, UnitPressure.megapascals)
    public static let bar = PhysicalUnit("bar", .pressure, UnitPressure.bars)
    public static let millibar = PhysicalUnit("mbar", .pressure, UnitPressure.millibars)
    public static let psi = PhysicalUnit("psi", .pressure, UnitPressure.poundsForcePerSquareInch)
    public static let celsius = PhysicalUnit("°C", .temperature, UnitTemperature.celsius)
    public static let kelvin = PhysicalUnit("K", .temperature, UnitTemperature.kelvin)
    public static let fahrenheit = PhysicalUnit("°F", .temperature, UnitTemperature.fahrenheit)
    public static let litersPerMinute = PhysicalUnit("L/min", .volumetricFlow, UnitVolumetricFlow.litersPerMinute)
    public static let cubicMetersPerHour = PhysicalUnit("m³/h", .volumetricFlow, UnitVolumetricFlow.cubicMetersPerHour)
    public static let gallonsPerMinute = PhysicalUnit("gpm", .volumetricFlow, UnitVolumetricFlow.usGallonsPerMinute)
    public static let percent = PhysicalUnit("%", .ratio, UnitRatio.percent)
    public static let volt = PhysicalUnit("V", .voltage, UnitElectricPotentialDifference.volts)
    public static let millivolt = PhysicalUnit("mV", .voltage, UnitElectricPotentialDifference.millivolts)
    public static let ampere = PhysicalUnit("A", .current, UnitElectricCurrent.amperes)
    public static let milliampere = PhysicalUnit("mA", .current, UnitElectricCurrent.milliamperes)
    public static let watt = PhysicalUnit("W", .power, UnitPower.watts)
    public static let kilowatt = PhysicalUnit("kW", .power, UnitPower.kilowatts)
    public static let megawatt = PhysicalUnit("MW", .power, UnitPower.megawatts)
    public static let kilowattHour = PhysicalUnit("kWh", .energy, UnitEnergy.kilowattHours)
    public static let joule = PhysicalUnit("J", .energy, UnitEnergy.joules)
    public static let rpm = PhysicalUnit("rpm", .rotationalSpeed, UnitRotationalSpeed.revolutionsPerMinute)
    public static let hertz = PhysicalUnit("Hz", .frequency, UnitFrequency.hertz)
    public static let millisecond = PhysicalUnit("ms", .time, UnitDuration.milliseconds)
    public static let second = PhysicalUnit("s", .time, UnitDuration.seconds)
    public static let minute = PhysicalUnit("min", .time, UnitDuration.minutes)
    public static let hour = PhysicalUnit("h", .time, UnitDuration.hours)

    static let all: [PhysicalUnit] = [
        .pascal, .kilopascal, .megapascal, .bar, .millibar, .psi, .celsius, .kelvin, .fahrenheit, .litersPerMinute,
        .cubicMetersPerHour, .gallonsPerMinute, .percent, .volt, .millivolt, .ampere, .milliampere, .watt, .kilowatt,
        .megawatt, .kilowattHour, .joule, .rpm, .hertz, .millisecond, .second, .minute, .hour,
    ]

    /// Other spellings technicians and vendor manuals use.
    static let aliases: [String: PhysicalUnit] = [
        "degC": .celsius, "C": .celsius, "℃": .celsius, "degF": .fahrenheit, "l/min": .litersPerMinute,
        "lpm": .litersPerMinute, "LPM": .litersPerMinute, "m3/h": .cubicMetersPerHour, "GPM": .gallonsPerMinute,
        "percent": .percent, "RPM": .rpm, "sec": .second, "secs": .second, "seconds": .second, "second": .second,
        "mins": .minute, "minutes": .minute, "minute": .minute, "hours": .hour, "hr": .hour, "kpa": .kilopascal,
        "PSI": .psi,
    ]

    private static let bySymbol: [String: PhysicalUnit] = {
        var table = aliases
        for unit in all { table[unit.symbol] = unit }
        return table
    }()

    /// Every symbol the parser accepts, longest first, for scanning text such as `1.5L/min`.
    static let symbolsLongestFirst: [String] = {
        var symbols = Set(bySymbol.keys)
        for unit in all where unit.dimension != .time {
            for time in ["s", "min", "h"] { symbols.insert("\(unit.symbol)/\(time)") }
        }
        return symbols.sorted { $0.count > $1.count }
    }()

    /// The unit with this symbol: `kPa`, `°C`, `L/min`, `%`, `min`, or a rate such as `kPa/min`.
    public static func named(_ symbol: String) -> PhysicalUnit? {
        if let unit = bySymbol[symbol] { return unit }
        if let slash = symbol.lastIndex(of: "/"),
            let base = bySymbol[String(symbol[..<slash])],
            let time = bySymbol[String(symbol[symbol.index(after: slash)...])]
        {
            return base.per(time)
        }
        return nil
    }
}

/// Why a quantity could not be parsed or converted.
public enum UnitError: Error, Sendable, Hashable, CustomStringConvertible {
    case unknownUnit(String)
    case notAQuantity(String)
    case incompatible(from: PhysicalUnit, to: PhysicalUnit)

    public var description: String {
        switch self {
        case let .unknownUnit(symbol):
            "unknown unit '\(symbol)'"
        case let .notAQuantity(text):
            "'\(text)' is not a quantity with a unit (for example 300 kPa, 10 min, 45 °C)"
        case let .incompatible(from, to):
            "cannot convert \(from.dimension) (\(from)) to \(to.dimension) (\(to))"
        }
    }
}

/// A number with a unit.
public struct Quantity: Sendable, Hashable, CustomStringConvertible {
    public var value: Double
    public var unit: PhysicalUnit

    public init(_ value: Double, _ unit: PhysicalUnit) {
        self.value = value
        self.unit = unit
    }

    /// As a Foundation measurement, for code that works with Foundation's unit system.
    public var measurement: Measurement<Dimension> { Measurement(value: value, unit: unit.foundationUnit) }

    public var dimension: PhysicalDimension { unit.dimension }

    public func converted(to target: PhysicalUnit) throws(UnitError) -> Quantity {
        guard target.dimension == unit.dimension else { throw .incompatible(from: unit, to: target) }
        if target == unit { return self }
        return Quantity(target.value(fromBase: unit.baseValue(of: value)), target)
    }

    /// Converts as a difference between two readings (matters only for temperatures).
    public func convertedInterval(to target: PhysicalUnit) throws(UnitError) -> Quantity {
        guard target.dimension == unit.dimension else { throw .incompatible(from: unit, to: target) }
        if target == unit { return self }
        return Quantity(target.interval(fromBase: unit.baseInterval(of: value)), target)
    }

    /// A time quantity as a Swift `Duration`; nil if this is not a time.
    public var duration: Duration? {
        guard unit.dimension == .time else { return nil }
        let seconds = unit.baseValue(of: value)
        return Duration.exactly(seconds: seconds)
    }

    public static func seconds(_ value: Double) -> Quantity { Quantity(value, .second) }

    public var description: String { "\(Quantity.format(value)) \(unit.symbol)" }

    /// Numbers as a technician reads them: no trailing zeros, at most 4 decimals.
    public static func format(_ value: Double) -> String {
        guard value.isFinite else { return "\(value)" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        var text = String(format: "%.4f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    /// Parses `300 kPa`, `10min`, `-5 °C`, `1.5 L/min`, `2 kPa/min`.
    public static func parse(_ text: String) throws(UnitError) -> Quantity {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var numberEnd = trimmed.startIndex
        for index in trimmed.indices {
            let character = trimmed[index]
            let isSign = (character == "-" || character == "+") && index == trimmed.startIndex
            let isExponentSign =
                (character == "-" || character == "+") && index > trimmed.startIndex
                && "eE".contains(trimmed[trimmed.index(before: index)])
            guard
                character.isNumber || character == "." || isSign || isExponentSign
                    || ((character == "e" || character == "E") && index > trimmed.startIndex
                        && trimmed[trimmed.index(after: index)...].first.map { $0.isNumber || $0 == "-" || $0 == "+" }
                            == true)
            else { break }
            numberEnd = trimmed.index(after: index)
        }
        guard let value = Double(trimmed[..<numberEnd]) else { throw .notAQuantity(text) }
        let symbol = trimmed[numberEnd...].trimmingCharacters(in: .whitespaces)
        guard !symbol.isEmpty else { throw .notAQuantity(text) }
        guard let unit = PhysicalUnit.named(symbol) else { throw .unknownUnit(symbol) }
        return Quantity(value, unit)
    }
}
