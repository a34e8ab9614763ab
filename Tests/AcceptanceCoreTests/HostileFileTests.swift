import Foundation
import Testing

@testable import AcceptanceCore

/// Files written to break the loaders (issue 10, cases 1, 4 and 5): each is refused with a position, in time
/// linear in its size, and never crashes the process.
@Suite("Hostile files")
struct HostileFileTests {
    static let header = ProcedureLoaderTests.header

    /// Case 1: a flat chain of 3,000 operators overflowed the stack of the recursive evaluator (SIGSEGV).
    @Test func aFlatChainOfOperatorsIsRefusedNotACrash() throws {
        let chain = "dev.pressure > 0 kPa" + String(repeating: " + 0 kPa", count: 3000)
        #expect(throws: ExpressionError.self) { try Expression.parse(chain) }
        for op in ["and true", "or false", "* 1", "- 0 kPa"] {
            let text = "1" + String(repeating: " \(op)", count: 3000)
            #expect(throws: ExpressionError.self, "\(op)") { try Expression.parse(text) }
        }
        let bench = try TestBench()
        let result = try bench.check(Self.header + "main:\n  - check: \(chain)\n")
        let error = try #require(result.diagnostics.first { $0.message.contains("nests deeper than 64") })
        #expect(error.location.line == 6)
        #expect(throws: DiagnosticsError.self) { try bench.load(Self.header + "main:\n  - check: \(chain)\n") }
        // A long chain that stays under the limit is still an expression like any other.
        let fine = try Expression.parse("1" + String(repeating: " + 1", count: 60))
        #expect(fine.references.isEmpty)
    }

    /// Case 4: a 7-level alias bomb used as a mapping key took 32 s in libyaml's composer (×10 per level).
    @Test func aliasesAreRefusedWithTheirPositionBeforeParsing() throws {
        var text = "station: s\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...7 {
            text +=
                "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ")
                + "]\n"
        }
        text += "? *a7\n: 1\n"
        var sink = DiagnosticSink(file: "station.yaml", text: text)
        let source = YAMLSource.parse(text, path: "station.yaml", into: &sink)
        #expect(source.treeForChecking == nil)
        let error = try #require(sink.diagnostics.first)
        #expect(error.message.contains("aliases"))
        #expect(error.location.line == 3)
        #expect(error.location.column == 10)
        // A key alias alone is found too, and aliases in flow collections.
        func alias(_ text: String) -> [Int]? { YAMLLimits.firstAlias(in: text).map { [$0.line, $0.column] } }
        #expect(alias("a: &k x\n? *k\n: 1\n") == [2, 3])
        #expect(alias("a: &k x\nb: [1, *k]\n") == [2, 8])
        #expect(alias("a: &k x\n- {b: *k}\n") == [2, 7])
        // An anchor ends at a flow indicator, as libyaml reads it: `&z,*a` hides nothing.
        #expect(alias("a: &a x\nb: &b [&z,*a,*a]\n") == [2, 11])
        // A block scalar ends at the first line indented less than its content, not less than its header line.
        #expect(alias("x:\n  - t: |\n      z\n    l1: &b [*a, *a]\n") == [4, 13])
        // Line numbers stay right after an escaped line break in double quotes.
        #expect(alias("a: \"one \\\n two\"\nb: *a\n") == [3, 4])
    }

    /// A `*` that is not an alias is left alone: in expressions, quoted text, comments and block scalars.
    @Test func starsThatAreNotAliasesAreAccepted() {
        let texts = [
            "limit: pump_speed * 2\n",
            "prompt: \"*Press* Enter\"\n",
            "prompt: '*Press* Enter, it''s *ok*'\n",
            "a: 1 # *not an alias\n",
            "prompt: |\n  *Bold* line\n  * bullet\nnext: 1\n",
            "- >\n    *folded*\n- x\n",
            "value: \"multi\n  *line*\"\n",
            "urls: [https://a:1, \"*x\"]\n",
            // A plain scalar continued on a deeper line may begin that line with `*` (YAML folds it in).
            "- check: cdu.flow_rate > nominal_flow\n    * 0.9\n- x\n",
            "key: a\n  *b continues\nnext: 1\n",
        ]
        for text in texts { #expect(YAMLLimits.firstAlias(in: text) == nil, "\(text)") }
        // Every shipped YAML file loads, and none uses an alias.
        let enumerator = FileManager.default.enumerator(atPath: repositoryRoot + "/Fixtures")
        var checked = 0
        while let file = enumerator?.nextObject() as? String {
            guard file.hasSuffix(".yaml") else { continue }
            let text = (try? String(contentsOfFile: repositoryRoot + "/Fixtures/" + file, encoding: .utf8)) ?? ""
            #expect(YAMLLimits.firstAlias(in: text) == nil, "\(file)")
            checked += 1
        }
        #expect(checked > 10)
    }

    /// Case 5: 20,000 unknown keys took 29 s (every report searched every earlier one), and the terminal got 20,000
    /// errors. Now reports are found in a set and a file shows at most 200, then says the rest were cut.
    @Test(.timeLimit(.minutes(1))) func twentyThousandUnknownKeysReportAFewHundred() throws {
        let bench = try TestBench()
        var text = Self.header + "main: []\n"
        for index in 0..<20_000 { text += "unknown_key_\(index): 1\n" }
        let result = try bench.check(text)
        #expect(result.diagnostics.count == DiagnosticSink.maximumDiagnostics + 1)
        #expect(result.diagnostics.last?.message.contains("the rest are not shown") == true)
        #expect(result.diagnostics.first?.message.contains("unknown key 'unknown_key_0'") == true)
    }

    /// Case 5: a 10,000-step procedure took 62 s to validate (every name looked up scanned every step for operator
    /// inputs). The bench (`acceptance-bench load`) measures it; here it must load and keep its steps.
    @Test(.timeLimit(.minutes(1))) func aTenThousandStepProcedureLoads() throws {
        let bench = try TestBench()
        var text = Self.header + "parameters:\n  p: {default: 30 kPa}\nmain:\n"
        for index in 0..<2_500 {
            text += """
                  - prompt: Scan \(index)
                    input: serial_\(index)
                  - check: dev.pressure > p - 1 kPa and serial_\(index) == "x"
                  - measure: dev.pressure
                    limits: {low: p - 10 kPa, high: p + 10 kPa}
                  - set: dev.valve
                    value: open

                """
        }
        let (procedure, _) = try bench.load(text)
        #expect(procedure.main.count == 10_000)
    }

    @Test func oversizedAndIrregularFilesAreRefusedBeforeReading() throws {
        let bench = try TestBench()
        let big = bench.directory + "/big.yaml"
        try Data(repeating: UInt8(ascii: "#"), count: YAMLLimits.maximumFileBytes + 1).write(
            to: URL(fileURLWithPath: big))
        let (sink, source) = YAMLSource.open(path: big)
        #expect(source == nil)
        #expect(sink.diagnostics.first?.message.contains("limited to \(YAMLLimits.maximumFileBytes) bytes") == true)

        // A FIFO would block a plain read forever.
        let fifo = bench.directory + "/fifo.yaml"
        #expect(mkfifo(fifo, 0o600) == 0)
        let (fifoSink, fifoSource) = YAMLSource.open(path: fifo)
        #expect(fifoSource == nil)
        #expect(fifoSink.diagnostics.first?.message.contains("not a regular file") == true)
        let folderResult = ProcedureLoader(fixtures: bench.directory, protocols: testProtocols)
            .check(path: bench.directory)
        #expect(folderResult.diagnostics.first?.message.contains("not a regular file") == true)
    }

    /// Profile values that loaded before and could only mislead: two raw values with one state name (a reading
    /// could not be told apart), a subnormal scale (every reading 0), a group prefix that is not a name.
    @Test func profileValuesThatCouldOnlyMisleadAreRefused() throws {
        let bench = try TestBench()
        let profile = try bench.write(
            """
            model: m
            points:
              a: {table: holding-register, address: 0, type: uint16, states: {0: closed, 1: closed}}
              b: {table: input-register, address: 1, type: int16, scale: 1e-320}
            """, name: "profile.yaml")
        do {
            _ = try DeviceProfile.load(path: profile, protocols: testProtocols)
            Issue.record("accepted")
        } catch {
            let messages = error.diagnostics.map(\.message)
            #expect(messages.contains { $0.contains("state 'closed' is already the name of 0") })
            #expect(messages.contains { $0.contains("scale must be a number between 1e-12 and 1e12") })
        }
        let rack = try bench.write(
            "id: r\ngroups:\n  trays: {model: test-device, prefix: '', count: 2}\n", name: "rack.yaml")
        #expect(throws: DiagnosticsError.self) { try RackProfile.load(path: rack) }
    }

    @Test func aSymbolicLinkToAFileIsReadLikeTheFile() throws {
        let bench = try TestBench()
        let target = try bench.write(Self.header + "main:\n  - check: dev.pressure > 1 kPa\n", name: "real.yaml")
        let link = bench.directory + "/linked.yaml"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        let result = ProcedureLoader(fixtures: bench.directory, protocols: testProtocols).check(path: link)
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        #expect(result.procedure?.main.count == 1)
    }

    @Test func aTenMegabyteLineIsNotEchoedBack() throws {
        let line = "title: " + String(repeating: "x", count: 100_000) + ": y"
        var sink = DiagnosticSink(file: "f.yaml", text: line)
        sink.error("bad", line: 1, column: 1)
        let shown = try #require(sink.diagnostics.first?.sourceLine)
        #expect(shown.count < 300)
        #expect(shown.hasSuffix("…"))
    }
}
