import Foundation
import TestSupport
import Testing

@Suite("Usage mistakes are usage errors; reading creates nothing")
struct TerminalFixTests {
    @Test("A mistyped scenario or station is a usage error (64) with the closest name")
    func typosAreUsageErrors() async throws {
        let scenario = try await run(["run", "leak-test", "--scenario", "loop-lek"])
        #expect(scenario.status == 64)
        #expect(scenario.stderr.contains("no scenario 'loop-lek'; did you mean 'loop-leak'?"), "\(scenario.stderr)")
        let station = try await run(["run", "leak-test", "--station", "line-1-tpc"])
        #expect(station.status == 64)
        #expect(station.stderr.contains("no station 'line-1-tpc'; did you mean 'line-1-tcp'?"), "\(station.stderr)")
        let read = try await run(["read", "cdu.mode", "--scenario", "loop-lek"])
        #expect(read.status == 64)
    }

    @Test("A missing procedures folder is an error, and archive list creates no archive")
    func nothingIsCreatedOrMisread() async throws {
        let listed = try await run(["list", "--procedures", "/nonexistent-\(UUID().uuidString)"])
        #expect(listed.status == 64)
        #expect(listed.stderr.contains("no procedures folder"))
        let folder = temporaryDirectory()
        let archive = try await run(["archive", "list", "--archive", folder + "/archive"])
        #expect(archive.status == 2)
        #expect(archive.stderr.contains("no archive at"))
        #expect(!FileManager.default.fileExists(atPath: folder + "/archive"), "a read-only command created the archive")
    }
}

@Suite("The live line at an 80-column terminal")
struct LiveLineTests {
    @Test("tmux at 80 columns shows one live line at a time, not one per tick")
    func oneLiveLine() async throws {
        let tmux = try program("tmux")
        let folder = temporaryDirectory()
        let session = "acceptance-live-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let command =
            "cd \(repositoryRoot) && ACCEPTANCE_STATE_DIR=\(folder)/state XDG_CONFIG_HOME=\(folder)/config "
            + "\(try binary()) run leak-test --yes --time-scale 60 --param hold=3min "
            + "--report-dir \(folder)/reports; echo RUN-ENDED; sleep 30"
        // One shell drives tmux from start to end: a tmux server started by a process that then exits is gone with
        // it (seen with Foundation's Process). It answers the pump's hazard (asked on a terminal, --yes or not),
        // and records the most live lines ever on the screen at once.
        let script = """
            tmux="$1"; session="$2"; command="$3"
            "$tmux" new-session -d -s "$session" -x 80 -y 60 "$command" || exit 1
            most=0; accepted=0; screen=""
            for i in $(seq 1 450); do
              screen=$("$tmux" capture-pane -p -t "$session" -S -200)
              if [ $accepted = 0 ] && printf '%s' "$screen" | grep -q "type your operator id"; then
                "$tmux" send-keys -t "$session" 4711 Enter; accepted=1
              fi
              live=$(printf '%s\n' "$screen" | grep -c '⋯')
              [ "$live" -gt "$most" ] && most=$live
              printf '%s' "$screen" | grep -q RUN-ENDED && break
              sleep 0.2
            done
            echo "MOST-LIVE-LINES=$most"
            printf '%s\n' "$screen"
            "$tmux" kill-session -t "$session"
            """
        let (status, output) = try await runProgram(
            "/bin/sh", ["-c", script, "sh", tmux, session, command], seconds: 120)
        #expect(status == 0, "\(output)")
        #expect(output.contains("RUN-ENDED"), "the run did not end:\n\(output)")
        #expect(output.contains("MOST-LIVE-LINES=1\n"), "one live line at a time, never one per tick:\n\(output)")
    }
}
