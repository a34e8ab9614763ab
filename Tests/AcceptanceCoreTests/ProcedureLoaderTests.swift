import Foundation
import Testing

@testable import AcceptanceCore

@Suite("Loading and validating procedures")
struct ProcedureLoaderTests {
    static let header = """
        id: t
        title: Test
        version: 1.0.0
        rack: test-rack

        """

    @Test func theShippedProceduresAreClean() throws {
        let loader = ProcedureLoader(fixtures: "\(repositoryRoot)/Fixtures", protocols: testProtocols)
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(repositoryRoot)/Procedures")
        #expect(!files.isEmpty)
        for file in files where file.hasSuffix(".yaml") {
            let result = loader.check(path: "\(repositoryRoot)/Procedures/\(file)")
            #expect(result.diagnostics.isEmpty, "\(file): \(result.diagnostics)")
            #expect(result.procedure != nil)
        }
    }

    @Test func leakTestHasTheDocumentedShape() throws {
        let (procedure, _) = try ProcedureLoader(fixtures: "\(repositoryRoot)/Fixtures", protocols: testProtocols)
            .load(path: "\(repositoryRoot)/Procedures/leak-test.yaml")
        #expect(procedure.id == "leak-test")
        #expect(procedure.parameter(named: "hold")?.defaultValue == Quantity(10, .minute))
        #expect(procedure.sha256.count == 64)
        #expect(procedure.cleanup.contains { if case .set("cdu.isolation_valve", _) = $0.kind { true } else { false } })
        #expect(procedure.main.contains { if case .sample = $0.kind { true } else { false } })
    }

    /// A line's estimate of a run: the waits and holds the procedure plans, with the run's parameters.
    @Test func leakTestPlansItsStabiliseAndHold() throws {
        let (procedure, _) = try ProcedureLoader(fixtures: "\(repositoryRoot)/Fixtures", protocols: testProtocols)
            .load(path: "\(repositoryRoot)/Procedures/leak-test.yaml")
        let defaults = procedure.plannedSeconds(parameters: try procedure.resolveParameters([:]))
        #expect(defaults.map(\.id) == procedure.allSteps.map(\.id), "every step, in running order")
        let planned = defaults.filter { $0.seconds > 0 }
        #expect(planned.map(\.seconds) == [120, 600], "Stabilise 2 min and Hold 10 min: \(planned)")
        #expect(procedure.allSteps.first { $0.id == planned.last?.id }?.name == "Hold")
        let short = procedure.plannedSeconds(parameters: try procedure.resolveParameters(["hold": "30s"]))
        #expect(short.reduce(0) { $0 + $1.seconds } == 150)
    }

    /// The acceptance example: a YAML slip, an unknown point and kPa compared with °C, all reported at once.
    @Test func reportsAllThreeMistakesWithPositions() throws {
        let bench = try TestBench()
        let result = try bench.check(
            Self.header + """
                main:
                  - set: dev.pressure
                    value: [80 kPa
                  - wait-until: dev.presure >= 100 kPa
                    timeout: 2 min
                  - check: dev.pressure > 45 °C
                """)
        let errors = result.diagnostics.filter { $0.severity == .error }
        let positions = errors.map { "\($0.location.line):\($0.location.column)" }
        #expect(positions.contains("7:12"), "YAML slip at the unclosed '[': \(errors)")
        #expect(positions.contains("8:17"), "unknown point: \(errors)")
        #expect(positions.contains("10:25"), "kPa against °C at the operator: \(errors)")
        #expect(errors.contains { $0.message.contains("did you mean 'dev.pressure'") })
        #expect(result.procedure == nil, "a file with a syntax error must never run")
        let rendered = errors.first { $0.location.line == 10 }?.description ?? ""
        #expect(rendered.contains("procedure.yaml:10:25: error:"))
        #expect(rendered.hasSuffix("  - check: dev.pressure > 45 °C\n                            ^"))
    }

    @Test func findsProfileAndLimitMistakes() throws {
        let bench = try TestBench()
        let result = try bench.check(
            Self.header + """
                parameters:
                  hold: 10
                  level: {default: 5 kPa, min: 1 kPa, max: 2 °C}
                main:
                  - set: dev.temperature
                    value: 20 °C
                  - measure: dev.pressure
                    limits: {low: 310 kPa, high: 290 kPa}
                  - measure: dev.pressure
                    unit: °C
                  - sample: [dev.pressure, dev.alarm]
                    every: 1 s
                    for: 10 kPa
                    measurements:
                      - {of: dev.pressure, statistic: slope, limits: {high: 1 kPa}}
                  - chek: dev.alarm
                  - wait: 5
                  - set: dev.mode
                    value: turbo
                  - check: dev.alarm
                    timout: 1 s
                """)
        let messages = result.diagnostics.map(\.message)
        func has(_ fragment: String) -> Bool { messages.contains { $0.contains(fragment) } }
        #expect(has("parameter 'hold' has no unit"))
        #expect(has("bound 2 °C is not a pressure"))
        #expect(has("'dev.temperature' is read-only"))
        #expect(has("low limit 310 kPa is above high limit 290 kPa"))
        #expect(has("unit °C is a temperature"))
        #expect(has("'dev.alarm' is true/false; only numeric points can be sampled"))
        #expect(has("for must be a time"))
        #expect(has("pressure per time"), "slope limits are rates: \(messages)")
        #expect(has("did you mean 'check' instead of 'chek'"))
        #expect(has("wait must be a time"))
        #expect(has("expected one of auto, manual"))
        #expect(has("unknown key 'timout'"))
    }

    @Test func resolvesParameterOverridesWithUnitsAndRanges() throws {
        let bench = try TestBench()
        let (procedure, _) = try bench.load(
            Self.header + """
                parameters:
                  hold: {default: 10 min, min: 10 s, max: 2 h}
                  test_pressure: 300 kPa
                main:
                  - wait: hold
                """)
        let values = try procedure.resolveParameters(["hold": "2min", "test_pressure": "3.1 bar"])
        #expect(values["hold"] == Quantity(2, .minute))
        #expect(values["test_pressure"] == Quantity(3.1, .bar))
        #expect(throws: ParameterError.self) { try procedure.resolveParameters(["hold": "2 kPa"]) }
        #expect(throws: ParameterError.self) { try procedure.resolveParameters(["hold": "1 s"]) }
        #expect(throws: ParameterError.self) { try procedure.resolveParameters(["hold": "3 h"]) }
        #expect(throws: ParameterError.self) { try procedure.resolveParameters(["hod": "1 min"]) }
        #expect(throws: ParameterError.self) { try procedure.resolveParameters(["hold": "120"]) }
    }

    @Test func bindsEnumerationStatesInSetSteps() throws {
        let bench = try TestBench()
        let (procedure, _) = try bench.load(
            Self.header + """
                main:
                  - set: dev.valve
                    value: closed
                  - check: dev.mode == manual
                """)
        guard case let .set(_, value) = procedure.main[0].kind else {
            Issue.record("expected a set step")
            return
        }
        #expect(try value.evaluate([:]) == .text("closed"))
    }

    @Test func catchesTyposThatWouldBlameTheRack() throws {
        let bench = try TestBench()
        let result = try bench.check(
            Self.header + """
                parameters:
                  settle: {default: 10 s, min: 30 s}
                main:
                  - check: dev.mode == "manul"
                  - set: dev.mode
                    value: "Manual"
                  - sample: dev.pressure
                    every: 1 s
                    for: 1 min
                    measurements: [{statistic: drop, limits: {high: dev.pressure}}]
                  - check: \(String(repeating: "(", count: 200))1\(String(repeating: ")", count: 200)) == 1
                """)
        let messages = result.diagnostics.map(\.message)
        func has(_ fragment: String) -> Bool { messages.contains { $0.contains(fragment) } }
        #expect(has("'manul' is not a state of this point; use one of auto, manual (did you mean 'manual'?)"))
        #expect(has("unknown name 'Manual'; expected one of auto, manual"))
        #expect(has("default 10 s is below its min 30 s"))
        #expect(has("not the point 'dev.pressure'"))
        #expect(has("nests deeper than 64 levels"))
    }

    @Test func signedSentinelsAreBitPatterns() throws {
        let path = NSTemporaryDirectory() + "sentinel-\(UUID().uuidString).yaml"
        try """
        model: m
        points:
          a: {table: input-register, address: 0, type: int16, missing: 0x8000}
          b: {table: input-register, address: 1, type: float32, missing: -9999}
          c: {table: input-register, address: 3, type: uint16, missing: 0xFFFF}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let profile = try DeviceProfile.load(path: path, protocols: testProtocols)
        #expect(profile.points.map(\.modbus?.missing) == [-32768, -9999, 65535])
    }

    @Test func emptyFilesSaySo() throws {
        let bench = try TestBench()
        let result = try bench.check("# nothing but a comment\n")
        #expect(result.diagnostics.map(\.message) == ["file is empty"])
    }

    @Test func unknownRackIsReported() throws {
        let bench = try TestBench()
        let result = try bench.check("id: t\ntitle: T\nversion: 1\nrack: no-such-rack\nmain: []\n")
        #expect(result.diagnostics.contains { $0.message.contains("no rack profile 'no-such-rack'") })
    }
}
