import AcceptanceCore
import ArgumentParser
import Foundation
import Harness

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a procedure on this station's rack, or on the built-in simulated rack.",
        discussion: """
            Examples:
              acceptance run leak-test
              acceptance run leak-test --param hold=2min --scenario loop-leak
              acceptance run leak-test --rack-serial NVL72-000123 --operator "J. Smith"
            Exit codes: 0 PASS, 1 FAIL, 2 ERROR, 3 ABORTED.
            """
    )

    @Argument(
        help: "Procedure or suite id (a file in the procedures folder) or path to a procedure file.",
        completion: .custom(Completions.procedures))
    var procedure: String

    @OptionGroup var workspace: WorkspaceOptions

    @Option(
        name: .customLong("param"), help: ArgumentHelp("Override a parameter, with its unit.", valueName: "name=value"))
    var parameters: [String] = []

    @Option(
        name: .customLong("input"),
        help: ArgumentHelp("Answer a prompt that asks for a value.", valueName: "name=value"))
    var inputs: [String] = []

    @Option(help: "Rack serial number (same as --input rack_serial=...).")
    var rackSerial: String?

    @Option(name: .customLong("operator"), help: "Operator name for the record.")
    var operatorName: String?

    @Flag(
        name: .shortAndLong,
        help: """
            Confirm every prompt automatically (the record says so). Hazardous steps still ask identified \
            operators on a real station.
            """)
    var yes = false

    @Option(help: "Ed25519 private key (PKCS#8 PEM, mode 0600) that signs the report bundle (default: the station's).")
    var signingKey: String?

    @Flag(
        help: """
            Run even when an instrument's calibration is past due (or not recorded): the record, report and \
            attestation say UNCALIBRATED.
            """)
    var allowUncalibrated = false

    @Option(
        help: ArgumentHelp(
            "Judge the rack by this limit set (its SKU's limits, Fixtures/limits/NAME.yaml or a file), not the procedure's defaults.",
            valueName: "name"))
    var limits: String?

    @Option(help: "Why a limit of the procedure is changed for this run (a recorded deviation, for the approver).")
    var deviationReason: String?

    @OptionGroup var devices: DeviceOptions

    @Option(help: "Pace simulated time at this many simulated seconds per wall second (default: as fast as possible).")
    var timeScale: Double?

    @Option(help: "Folder for run records.")
    var reportDir = "reports"

    @Flag(
        help: "Print report.pdf into the bundle with WeasyPrint (signed with it); a station's report_pdf does the same."
    )
    var pdf = false

    @Flag(help: "For a suite: go on to the next procedure after one FAILs (never after an ERROR or an abort).")
    var continueOnFail = false

    @Option(help: "Run on every bay of this line at once (a line file: its bays and their stations).")
    var line: String?

    @Option(help: "With --line: only these bays (1-8, or 1,3,5).")
    var bays: String?

    func validate() throws {
        for pair in parameters + inputs where !pair.contains("=") {
            throw ValidationError("'\(pair)' must be name=value")
        }
        if let timeScale, !(0.001...1_000_000).contains(timeScale) {
            throw ValidationError("--time-scale must be between 0.001 and 1000000 simulated seconds per wall second")
        }
    }

    static func pairs(_ list: [String]) -> [String: String] {
        var result: [String: String] = [:]
        for pair in list {
            guard let equals = pair.firstIndex(of: "=") else { continue }
            result[String(pair[..<equals]).trimmingCharacters(in: .whitespaces)] = String(
                pair[pair.index(after: equals)...])
        }
        return result
    }

    func run() async throws {
        // The run's own handlers, before anything is created: a stop from here on ends in an ABORTED record (or, while
        // the run is being prepared, in nothing created at all) instead of an empty run folder.
        let style = ConsoleStyle.detect()
        let stop = StopController()
        let trap = SignalTrap(stop: stop, style: style)
        let location = Workspace.locate(procedures: workspace.procedures, fixtures: workspace.fixtures)
        let bayScenarios = try devices.bayScenarios()
        if let line {
            if devices.station != nil { throw ValidationError("--line names each bay's station: drop --station") }
            var request = devices.request(procedure: procedure, workspace: location, station: nil)
            configure(&request)
            var lineRequest = LineRequest(line: line, run: request)
            lineRequest.bays = bays
            lineRequest.scenarios = bayScenarios
            try await runLine(lineRequest, style: style, stop: stop)
            withExtendedLifetime(trap) {}
            return
        }
        if !bayScenarios.isEmpty || bays != nil {
            throw ValidationError("--bays and --scenario BAY=… are for a line: add --line FILE")
        }
        let station = try devices.resolvedStation(workspace: location)
        if let station, station.source != "--station" {
            ConsoleOutput.standardError.write("station \(station.station) (configured by \(station.source))\n")
        }
        var request = devices.request(procedure: procedure, workspace: location, station: station)
        configure(&request)
        if location.isSuite(procedure) {
            try await runSuite(request, style: style, stop: stop)
            withExtendedLifetime(trap) {}
            return
        }
        let prepared: PreparedRun
        do {
            prepared = try await PreparedRun.prepare(request)
        } catch {
            throw Self.cannotStart(error)
        }
        if let set = prepared.settings.limitSet {
            ConsoleOutput.standardError.write(
                "limit set \(set.name) (\(set.file), SHA-256 \(set.sha256.prefix(12))…): "
                    + set.values.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                    + "\n")
        }
        for warning in prepared.warnings { ConsoleOutput.standardError.write("\(warning)\n") }
        for warning in prepared.transportWarnings {
            ConsoleOutput.standardError.write("WARNING: \(warning)\n")
        }

        let console = makeConsole(style: style)
        let reporter = ConsoleReporter(
            style: style, clock: prepared.clock,
            header: .init(
                scenario: prepared.settings.scenario, simulated: prepared.isSimulated, timeScale: request.timeScale,
                folder: prepared.folder?.path, endpoints: prepared.endpoints))
        let (record, bundle) = await prepared.runAndBundle(console: console, observer: reporter, stop: stop)
        Self.report(bundle, style: style)
        withExtendedLifetime(trap) {}
        throw ExitCode(record.verdict.exitCode)
    }

    /// Why a run, suite or line could not start: a mistake on the command line is a usage error (64); anything else
    /// (a file that does not load, a station that refuses) is the station's ERROR, said on standard error.
    static func cannotStart(_ error: HarnessError) -> any Error {
        switch error {
        case .procedureNotFound, .parameter, .input, .deviation, .unknownName:
            return ValidationError(error.description)
        default:
            ConsoleOutput.standardError.write("error: \(error)\n")
            return ExitCode(Verdict.error.exitCode)
        }
    }

    /// What every run of this command shares, whatever rack it is on.
    func configure(_ request: inout RunRequest) {
        request.parameters = Self.pairs(parameters)
        request.inputs = Self.pairs(inputs)
        if let rackSerial { request.inputs["rack_serial"] = rackSerial }
        request.operatorName = operatorName ?? ProcessInfo.processInfo.environment["USER"]
        request.timeScale = timeScale
        request.reportsDirectory = reportDir
        request.signingKey = signingKey
        request.stateDirectory = StationState.defaultDirectory()
        request.allowUncalibrated = allowUncalibrated
        request.deviationReason = deviationReason
        request.pdf = pdf
        request.limits = limits
    }

    /// --yes confirms prompts, never a hazard on a real station: a terminal still asks for operators' ids.
    func makeConsole(style: ConsoleStyle) -> any OperatorConsole {
        let terminal = isatty(STDIN_FILENO) == 1
        return !yes && terminal
            ? TerminalOperator(style: style)
            : AutomaticOperator(hazards: terminal ? TerminalOperator(style: style) : nil)
    }

    /// Where the bundle went, and how to check it (or why there is none).
    static func report(_ bundle: PreparedRun.BundleOutcome?, style: ConsoleStyle) {
        switch bundle {
        case let .signed(folder, keyID)?:
            ConsoleOutput.standardOutput.write(
                "  Report bundle signed (keyid \(keyID.prefix(16))…): \(folder)\n"
                    + "  Check it: acceptance verify \(folder) --keyring KEYRING   or   sh verify.sh STATION.pub.pem\n")
        case let .unsigned(folder)?:
            ConsoleOutput.standardOutput.write(
                style.paint(
                    "  UNSIGNED report bundle: this station has no signing key. Nothing "
                        + "proves who produced \(folder); it cannot be archived.", "1;31") + "\n")
        case let .failed(reason)?:
            ConsoleOutput.standardError.write(style.paint("  report bundle NOT written: \(reason)", "1;31") + "\n")
        case nil:
            break
        }
    }

    /// `acceptance run fat-suite`: each procedure with its own live output, then the suite's verdict and bundle.
    func runSuite(_ request: RunRequest, style: ConsoleStyle, stop: StopController) async throws {
        var suiteRequest = SuiteRequest(suite: procedure, run: request)
        if continueOnFail { suiteRequest.continueOnFail = true }
        let suite: SuiteRun
        do {
            suite = try SuiteRun.prepare(suiteRequest)
        } catch {
            throw Self.cannotStart(error)
        }
        let count = suite.procedures.count
        ConsoleOutput.standardOutput.write(
            style.bold("━━━━ SUITE \(suite.suite.id) \(suite.suite.version) · \(suite.suite.title)") + "\n"
                + "     \(suite.procedures.map(\.procedure.id).joined(separator: " → ")) · run \(suite.runID)"
                + (suite.isSimulated ? " · " + style.paint("SIMULATED rack", "1;36") : "") + "\n\n")
        let timeScale = request.timeScale
        let (record, bundle) = await suite.run(
            console: makeConsole(style: style),
            observer: { index, prepared in
                ConsoleOutput.standardOutput.write(
                    "\n" + style.bold("━━━━ \(index + 1) of \(count): \(prepared.inputs.procedure.id)") + "\n")
                for warning in prepared.transportWarnings {
                    ConsoleOutput.standardError.write("WARNING: \(warning)\n")
                }
                return ConsoleReporter(
                    style: style, clock: prepared.clock,
                    header: .init(
                        scenario: prepared.settings.scenario, simulated: prepared.isSimulated, timeScale: timeScale,
                        folder: prepared.folder?.path, endpoints: prepared.endpoints))
            }, stop: stop)
        var summary = "\n" + style.bold("━━━━ SUITE \(record.suite.id): \(record.verdict.rawValue)") + "\n"
        for (index, procedure) in record.procedures.enumerated() {
            summary +=
                "  \(index + 1). \(procedure.id.padding(toLength: 16, withPad: " ", startingAt: 0)) "
                + style.verdict(procedure.verdict) + (procedure.message.map { "  \($0)" } ?? "") + "\n"
        }
        if record.isSimulated {
            summary += "  " + style.paint("SIMULATED rack: no real rack was tested", "1;36") + "\n"
        }
        ConsoleOutput.standardOutput.write(summary)
        Self.report(bundle, style: style)
        throw ExitCode(record.verdict.exitCode)
    }
}
