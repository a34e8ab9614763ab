import AcceptanceCore
import Foundation
import Harness

/// A line under load, beside one rack: simulated racks over the real transports (`--sim-transport tcp`: each rack's
/// CDU on Modbus TCP through libmodbus, its 35 BMCs — 18 compute trays, 9 switch trays, 8 power shelves — on HTTPS
/// through AsyncHTTPClient), every endpoint read once a simulated second for a simulated hour, with the rack's
/// interlocks watching as in any run. Each configuration runs in a process of its own (this binary again,
/// `line-child`), so peak memory is its own; the parent prints them side by side.
///
/// Wall time, peak RSS (VmHWM), and RSS and open descriptors at the start (10 % of the simulated hour: everything
/// connected), middle (50 %) and end (90 %) of the run, and descriptors before (bays prepared, nothing connected)
/// and after (every bay finished, bundles written). Flat means no growth from the middle to the end.
enum LineBench {
    /// Reads every endpoint of the rack each simulated second until the CDU's heartbeat (seconds since it started)
    /// passes `minutes`: all 35 BMCs and the CDU are named in the condition, and a condition's points are all read
    /// before it is judged.
    static func procedure(minutes: Int) -> String {
        """
        id: line-load
        title: Line load benchmark
        version: 1.0.0
        rack: gb200-nvl72
        main:
          - wait-until: >
              all(compute_trays.power_state != Paused) and all(switch_trays.power_state != Paused)
              and all(power_shelves.health != Critical) and cdu.loop_pressure >= 0 kPa
              and cdu.heartbeat >= \(minutes * 60)
            timeout: \(minutes + 10) min
            poll: 1 s
            name: Every endpoint read once a second
        """
    }

    struct Footprint: Sendable {
        var rssKB: Int
        var peakKB: Int
        var descriptors: Int
    }

    static func footprint() -> Footprint {
        var rss = 0
        var peak = 0
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
            for line in status.split(separator: "\n") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                if line.hasPrefix("VmRSS:"), fields.count > 1 { rss = Int(fields[1]) ?? 0 }
                if line.hasPrefix("VmHWM:"), fields.count > 1 { peak = Int(fields[1]) ?? 0 }
            }
        }
        let descriptors = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).count
        return Footprint(rssKB: rss, peakKB: peak, descriptors: descriptors)
    }

    /// What the open descriptors are, by kind (`socket 64, anon_inode:[eventpoll] 3, ...`).
    static func descriptorKinds() -> String {
        var kinds: [String: Int] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)")
            else { continue }
            // /dev/null: descriptor numbers below FD_SETSIZE the Modbus transport keeps for libmodbus's select().
            let kind =
                target == "/dev/null"
                ? "/dev/null (reserved)"
                : target.hasPrefix("/")
                    ? "file"
                    : target.hasPrefix("anon_inode") ? target : String(target.prefix { $0 != ":" })
            kinds[kind, default: 0] += 1
        }
        return kinds.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    /// The child: runs `racks` simulated bays over TCP for `minutes` simulated minutes; prints one result line.
    static func child(racks: Int, minutes: Int, root: Workspace, scratch: String) async {
        let procedureFile = "\(scratch)/line-load.yaml"
        let line = "\(scratch)/bench-line.yaml"
        do {
            try procedure(minutes: minutes).write(toFile: procedureFile, atomically: true, encoding: .utf8)
            var text = "line: bench\ntitle: Benchmark line\nbays:\n"
            for bay in 1...racks { text += "  \(bay): {simulated: true}\n" }
            try text.write(toFile: line, atomically: true, encoding: .utf8)
        } catch {
            print("error: cannot write the benchmark files in \(scratch): \(error)")
            exit(1)
        }
        var request = RunRequest(procedure: procedureFile, workspace: root)
        request.reportsDirectory = "\(scratch)/reports"
        request.simulatorTransport = .tcp
        // Optional so the line can be let go before the last footprint: each run's journal is closed by its owner
        // when the run is released, as in `acceptance run`, which ends.
        var prepared: LineRun?
        do {
            prepared = try await LineRun.prepare(LineRequest(line: line, run: request))
        } catch {
            print("error: \(error)")
            exit(1)
        }
        let before = footprint()
        // Early, middle and late in the run: the first bay's simulated clock at 10 %, 50 % and 90 % of the hour.
        guard let clock = prepared?.bays.first?.prepared.clock else { return }
        let during = Task { () -> [Footprint] in
            var taken: [Footprint] = []
            for fraction in [0.1, 0.5, 0.9] {
                while !Task.isCancelled, clock.now.sinceOrigin.seconds < Double(minutes * 60) * fraction {
                    try? await Task.sleep(for: .milliseconds(20))
                }
                if Task.isCancelled { break }
                taken.append(footprint())
            }
            return taken
        }
        let began = ContinuousClock.now
        let outcomes =
            await prepared?.run(
                console: { _ in AutomaticOperator() }, observer: { _, _ in SilentObserver() }, stop: StopController())
            ?? []
        let wall = (ContinuousClock.now - began).seconds
        during.cancel()
        let samples = await during.value
        prepared = nil
        let after = footprint()
        let verdicts = outcomes.map { "\($0.record.verdict)" }
        let failed = outcomes.filter { $0.record.verdict != .pass }.map {
            "bay \($0.bay.number): \($0.record.message ?? "?")"
        }
        let taken = ([before] + samples + [after]).map { "\($0.rssKB) \($0.peakKB) \($0.descriptors)" }
        guard taken.count == 5 else {
            print("error: the run ended before its clock reached 90 % (\(verdicts))")
            for reason in failed.prefix(3) { print("NOTE \(reason)") }
            return
        }
        print(
            "RESULT \(racks) \(wall) \(taken.joined(separator: " ")) \(Set(verdicts).sorted().joined(separator: ","))")
        for reason in failed.prefix(3) { print("NOTE \(reason)") }
        print("NOTE \(racks) rack(s), descriptors open after the line: \(descriptorKinds())")
    }

    /// The parent: one rack, then eight, each in a child process; a table of both.
    static func run(minutes: Int) {
        print(
            "a line under load: simulated racks over Modbus TCP (CDU) + HTTPS (35 BMCs), every endpoint read each "
                + "simulated second for \(minutes) simulated min, interlocks on; each configuration its own process")
        var rows: [[String]] = []
        for racks in [1, 8] {
            let output = childOutput(["line-child", "\(racks)", "\(minutes)"])
            guard let result = output.split(separator: "\n").first(where: { $0.hasPrefix("RESULT ") }) else {
                print("  \(racks) rack(s): no result: \(output.suffix(500))")
                continue
            }
            for note in output.split(separator: "\n") where note.hasPrefix("NOTE ") { print("  \(note.dropFirst(5))") }
            // racks, wall, then (RSS, peak, descriptors) before, early, middle, late, after, then the verdicts.
            let parts = result.split(separator: " ").dropFirst().map(String.init)
            guard parts.count == 18 else { continue }
            func mb(_ kb: String) -> String { Int(kb).map { format(Double($0) / 1024, 0) } ?? "-" }
            let reads = Double(racks * 36 * minutes * 60)
            let wall = Double(parts[1]) ?? .nan
            rows.append([
                "\(racks)", format(wall, 1), format(reads / wall, 0),
                [5, 8, 11].map { mb(parts[$0]) }.joined(separator: " / "), mb(parts[15]),
                [7, 10, 13].map { parts[$0] }.joined(separator: " / "), "\(parts[4]) → \(parts[16])", parts[17],
            ])
        }
        let header = [
            "racks", "wall s", "endpoint reads/s", "RSS MB 10%/50%/90%", "peak MB", "open fds 10%/50%/90%",
            "fds before → after", "verdicts",
        ]
        let table = [header] + rows
        let widths = header.indices.map { column in table.map { $0[column].count }.max() ?? 0 }
        for row in table {
            print(
                "  "
                    + row.indices.map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                    .joined(separator: "  "))
        }
        print(
            "  (flat: no growth from 50 % to 90 %; descriptors: one connection per endpoint, not per read, all closed "
                + "after)\n")
    }

    /// Runs this binary again with `arguments` and returns what it printed.
    static func childOutput(_ arguments: [String]) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.arguments = arguments
        let output = NSTemporaryDirectory() + "acceptance-bench-line-\(UUID().uuidString).txt"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: output) else { return "cannot write \(output)" }
        process.standardOutput = handle
        process.standardError = handle
        do {
            try process.run()
        } catch {
            return "cannot start \(arguments): \(error)"
        }
        process.waitUntilExit()
        try? handle.close()
        defer { try? FileManager.default.removeItem(atPath: output) }
        return (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
    }
}
