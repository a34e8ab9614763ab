import TestSupport
import Testing

@testable import AcceptanceCore

@Suite("Expressions")
struct ExpressionTests {
    let types: [String: ValueType] = [
        "cdu.loop_pressure": .quantity(.pressure), "cdu.supply_temperature": .quantity(.temperature),
        "test_pressure": .quantity(.pressure), "cdu.mode": .text(choices: ["automatic", "manual", "standby"]),
        "cdu.leak_detected": .bool, "cdu.heartbeat": .number, "hold": .quantity(.time),
    ]

    func evaluate(_ source: String, _ values: [String: Value] = [:]) throws -> Value {
        let (bound, _, errors) = try Expression.parse(source).bind { types[$0] }
        #expect(errors.isEmpty, "\(errors)")
        return try bound.evaluate(values)
    }

    func errors(_ source: String, expecting: ValueType? = nil) throws -> [ExpressionError] {
        try Expression.parse(source).bind(expecting: expecting) { types[$0] }.errors
    }

    @Test func comparesAcrossUnitsOfOneDimension() throws {
        #expect(try evaluate("3 bar == 300 kPa") == .bool(true))
        #expect(
            try evaluate(
                "cdu.loop_pressure >= test_pressure - 5 kPa",
                [
                    "cdu.loop_pressure": .quantity(Quantity(2.96, .bar)),
                    "test_pressure": .quantity(Quantity(300, .kilopascal)),
                ]) == .bool(true))
        #expect(
            try evaluate(
                "cdu.loop_pressure >= test_pressure - 5 kPa",
                [
                    "cdu.loop_pressure": .quantity(Quantity(294, .kilopascal)),
                    "test_pressure": .quantity(Quantity(300, .kilopascal)),
                ]) == .bool(false))
        #expect(try evaluate("10 min > 599 s") == .bool(true))
    }

    @Test func respectsPrecedenceAndParentheses() throws {
        #expect(try evaluate("1 + 2 * 3") == .number(7))
        #expect(try evaluate("(1 + 2) * 3") == .number(9))
        #expect(try evaluate("-2 * -3") == .number(6))
        #expect(try evaluate("not false and true or false") == .bool(true))
        #expect(try evaluate("300 kPa * 0.9") == .quantity(Quantity(270, .kilopascal)))
        #expect(try evaluate("hold / 2", ["hold": .quantity(Quantity(10, .minute))]) == .quantity(Quantity(5, .minute)))
        #expect(try evaluate("600 kPa / 3 bar") == .number(2))
        #expect(try evaluate("abs(-3 kPa)") == .quantity(Quantity(3, .kilopascal)))
        #expect(try evaluate("max(1 bar, 120 kPa, 90 kPa)") == .quantity(Quantity(120, .kilopascal)))
        #expect(try evaluate("min(1 bar, 120 kPa, 90 kPa)") == .quantity(Quantity(90, .kilopascal)))
    }

    @Test func readsBareEnumerationStatesInContext() throws {
        #expect(try evaluate("cdu.mode == manual", ["cdu.mode": .text("manual")]) == .bool(true))
        #expect(try evaluate("automatic != cdu.mode", ["cdu.mode": .text("manual")]) == .bool(true))
        let problems = try errors("cdu.mode == manul")
        #expect(problems.count == 1)
        #expect(problems[0].message.contains("expected one of automatic, manual, standby"))
    }

    @Test func rejectsMixedDimensionsAtTheRightColumn() throws {
        let problems = try errors("cdu.loop_pressure > 45 °C")
        #expect(problems.count == 1)
        #expect(problems[0].offset == 18)
        #expect(problems[0].message.contains("pressure") && problems[0].message.contains("temperature"))
        let sum = try errors("test_pressure + 5 min")
        #expect(sum.count == 1)
    }

    @Test func demandsUnitsOnNumbersComparedWithQuantities() throws {
        let problems = try errors("cdu.loop_pressure > 300")
        #expect(problems.count == 1)
        #expect(problems[0].message.contains("give the number a unit"))
    }

    @Test func reportsUnknownNamesAndFunctions() throws {
        let unknown = try errors("cdu.loop_presure > 1 kPa")
        #expect(unknown.first?.message == "unknown point 'cdu.loop_presure'")
        #expect(unknown.first?.offset == 0)
        let function = try errors("sqrt(4)")
        #expect(function.first?.message.contains("unknown function 'sqrt'") == true)
    }

    @Test(arguments: [
        ("cdu.loop_pressure >", 19), ("(1 + 2", 6), ("1 = 1", 2), ("'open", 0), ("1 < 2 < 3", 6), ("1 $ 2", 2),
        ("", 0), ("and", 0),
    ])
    func reportsSyntaxErrorsWithOffsets(source: String, offset: Int) {
        #expect(throws: ExpressionError.self) { try Expression.parse(source) }
        do {
            _ = try Expression.parse(source)
        } catch {
            #expect(error.offset == offset, "\(source): \(error.message)")
        }
    }

    @Test func failsCleanlyAtRunTime() throws {
        #expect(throws: ExpressionError.self) { try evaluate("1 kPa / 0") }
        let expression = try Expression.parse("cdu.loop_pressure > 1 kPa")
        #expect(throws: ExpressionError.self) { try expression.evaluate([:]) }
    }

    @Test func shortCircuitsLogic() throws {
        let expression = try Expression.parse("false and cdu.loop_pressure > 1 kPa")
        #expect(try expression.evaluate([:]) == .bool(false))
    }

    @Test func typesResults() throws {
        let (_, type, _) = try Expression.parse("test_pressure - 5 kPa").bind { types[$0] }
        #expect(type == .quantity(.pressure))
        let bad = try errors("test_pressure - 5 kPa", expecting: .bool)
        #expect(bad.isEmpty)
        #expect(
            try Expression.parse("cdu.mode == manual and not cdu.leak_detected").references
                == ["cdu.mode", "manual", "cdu.leak_detected"])
    }

    /// 5,000 strings drawn from the expression alphabet with a fixed seed (the same every run, so a failure is
    /// reproducible): each either parses or is refused with an error inside the text; each that parses either binds
    /// or reports errors inside the text; evaluating any of them returns a value or an error, never a crash.
    @Test(arguments: [UInt64(0x5EED_0001), 0x5EED_0002, 0x5EED_0003])
    func survivesHostileInput(seed: UInt64) {
        var generator = SplitMix64(seed: seed)
        let alphabet = Array("abc.d_01 23+-*/()<>=!&|'\"kPa°C%,")
        var parsed = 0
        var refused = 0
        for _ in 0..<5000 {
            let length = Int.random(in: 0..<24, using: &generator)
            let source = String((0..<length).map { _ in alphabet.randomElement(using: &generator) ?? "a" })
            let expression: Expression
            do {
                expression = try Expression.parse(source)
                parsed += 1
            } catch {
                refused += 1
                #expect((0...source.count).contains(error.offset), "\(source): offset \(error.offset)")
                #expect(!error.message.isEmpty)
                continue
            }
            let (_, _, errors) = expression.bind { types[$0] }
            for error in errors {
                #expect((0...source.count).contains(error.offset), "\(source): offset \(error.offset)")
            }
            do {
                _ = try expression.evaluate([:])
            } catch {
                #expect((0...source.count).contains(error.offset), "\(source): offset \(error.offset)")
            }
        }
        #expect(parsed > 100 && refused > 100, "both paths exercised: \(parsed) parsed, \(refused) refused")
    }
}
