import AcceptanceCore
import ArgumentParser
import Foundation
import Harness

extension RunCommand {
    /// `acceptance run leak-test --line FILE`: every bay at once, each line of output prefixed with its bay, then a
    /// table of every bay; the exit code is the worst bay's verdict.
    func runLine(_ request: LineRequest, style: ConsoleStyle, stop: StopController) async throws {
        let line: LineRun
        do {
            line = try await LineRun.prepare(request)
        } catch {
            throw Self.cannotStart(error)
        }
        ConsoleOutput.standardOutput.write(
            style.bold(
                "━━━━ LINE \(line.line.id)\(line.line.title.isEmpty ? "" : " · \(line.line.title)") · "
                    + "\(request.run.procedure) on bays \(line.bays.map { String($0.bay.number) }.joined(separator: ", "))"
            )
                + "\n")
        // Bays share the terminal: no live line each (eight would overwrite each other), every line says its bay;
        // on a terminal one live table of every bay stays under them.
        let bayStyle = ConsoleStyle(color: style.color, live: false)
        let terminal = isatty(STDIN_FILENO) == 1
        let turns = TurnTaking()
        let yes = yes
        let timeScale = request.run.timeScale
        // The line's status for `acceptance line status` (and its page), kept as the bays go.
        let board = LineStatusBoard(
            path: LineStatus.file(line: line.line.id, stateDirectory: StationState.defaultDirectory()),
            line: line.line, procedure: line.bays.first?.prepared.settings.procedure.id ?? request.run.procedure,
            bays: line.bays.map { ($0.bay, $0.prepared.settings.procedure.allSteps.count) })
        let table = style.live ? LineLiveTable(board: board, output: .standardOutput, style: style) : nil
        let refresher = Task { await table?.keepFresh() }
        // Each bay stops on its own: SIGTERM stops them all; Ctrl-C, on a terminal, asks which (all by default).
        let stops = line.bays.map { _ in StopController() }
        if let reason = stop.reason { for bayStop in stops { bayStop.requestStop(reason) } }
        let lineConfiguration = line.line
        var ask: (@Sendable ([Int]) async -> [Int]?)?
        if terminal {
            ask = { @Sendable running in
                await LineStopQuestion.ask(running, line: lineConfiguration, turns: turns, table: table, style: style)
            }
        }
        // Its messages go above the live table, like the bays' lines (written straight, a redraw would erase them).
        let trap = LineSignalTrap(
            bays: zip(line.bays, stops).map { ($0.bay.number, $1) },
            output: table.map { table in ConsoleOutput { table.log($0) } } ?? .standardError, style: style, ask: ask)
        let outcomes = await line.run(
            console: { bay in
                let screen: any OperatorConsole =
                    table.map { PausingConsole(table: $0, terminal: TerminalOperator(style: style)) }
                    ?? TerminalOperator(style: style)
                let asking: (any OperatorConsole)? =
                    terminal ? BayConsole(bay: bay.number, terminal: screen, turns: turns) : nil
                if !yes, let asking { return asking }
                return AutomaticOperator(hazards: asking)
            },
            observer: { bay, prepared in
                let reporter = ConsoleReporter(
                    style: bayStyle,
                    output: table.map { table in
                        ConsoleOutput(prefix: "[bay \(bay.number)] ") { table.log($0) }
                    } ?? ConsoleOutput(descriptor: STDOUT_FILENO, prefix: "[bay \(bay.number)] "),
                    clock: prepared.clock,
                    header: .init(
                        scenario: prepared.settings.scenario, simulated: prepared.isSimulated, timeScale: timeScale,
                        folder: prepared.folder?.path, endpoints: prepared.endpoints))
                return board.observer(
                    bay: bay.number, clock: prepared.clock,
                    plan: prepared.settings.procedure.plannedSeconds(parameters: prepared.settings.parameters),
                    next: reporter)
            }, stops: stops)
        withExtendedLifetime(trap) {}
        refresher.cancel()
        await refresher.value
        table?.finish()
        ConsoleOutput.standardOutput.write(Self.lineTable(line.line, outcomes, style: style))
        throw ExitCode(LineRun.verdict(outcomes).exitCode)
    }

    /// Every bay in one table: bay, rack serial, verdict, why, bundle.
    static func lineTable(_ line: LineConfiguration, _ outcomes: [LineRun.Outcome], style: ConsoleStyle) -> String {
        var rows = [["BAY", "RACK", "PROCEDURE", "VERDICT", "BUNDLE", "WHY"]]
        for outcome in outcomes {
            let bundle: String =
                switch outcome.bundle {
                case .signed?: "signed"
                case .unsigned?: "UNSIGNED"
                case .failed?: "NOT WRITTEN"
                case nil: "-"
                }
            rows.append([
                String(outcome.bay.number), outcome.record.rackSerial ?? "-", outcome.record.procedure.id,
                outcome.record.verdict.rawValue + (outcome.record.isSimulated ? " (SIMULATED)" : ""), bundle,
                outcome.record.message ?? "",
            ])
        }
        let widths = (0..<5).map { column in rows.map { $0[column].count }.max() ?? 0 }
        var text = "\n" + style.bold("━━━━ LINE \(line.id): \(LineRun.verdict(outcomes).rawValue)") + "\n"
        for row in rows {
            text +=
                ((0..<5).map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) } + [row[5]])
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }
        for outcome in outcomes {
            if case let .signed(folder, _)? = outcome.bundle { text += "  bay \(outcome.bay.number): \(folder)\n" }
            if case let .unsigned(folder)? = outcome.bundle { text += "  bay \(outcome.bay.number): \(folder)\n" }
        }
        return text
    }
}
