import Foundation
import TestSupport
import Testing

/// The bash completion script swift-argument-parser generates, sourced into a real bash and asked as the shell asks
/// when Tab is pressed: the tool completes the names it knows.
@Suite("Shell completion of procedure, suite, scenario and station names")
struct CompletionTests {
    @Test func bashCompletesTheNamesTheToolKnows() async throws {
        let folder = temporaryDirectory()
        let executable = try binary()
        let script = try await run(["--generate-completion-script", "bash"])
        #expect(script.status == 0, "\(script.stderr)")
        try script.stdout.write(toFile: "\(folder)/acceptance.bash", atomically: true, encoding: .utf8)
        try "station: bench\n".write(toFile: "\(folder)/bench-station.yaml", atomically: true, encoding: .utf8)
        // What bash does on Tab: COMP_WORDS, COMP_CWORD, COMP_LINE and COMP_POINT set, the function called.
        try """
        source "\(folder)/acceptance.bash"
        complete_line() {
            COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}
            read -ra COMP_WORDS <<< "$COMP_LINE"
            [[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
            COMP_WORDS[0]="\(executable)"
            COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
            COMPREPLY=()
            _acceptance acceptance "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            echo "$1 => ${COMPREPLY[*]}"
        }
        complete_line "acceptance run le"
        complete_line "acceptance run fat"
        complete_line "acceptance run leak-test --scenario loop"
        complete_line "acceptance run leak-test --station line"
        complete_line "acceptance read cdu.mode --station ./bench"
        complete_line "acceptance simulate --scenario gauge-"
        """.write(toFile: "\(folder)/tab.sh", atomically: true, encoding: .utf8)
        let (status, output) = try await runProgram(try program("bash"), ["\(folder)/tab.sh"], directory: folder)
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.contains("acceptance run le => leak-detectors leak-test"), "\(output)")
        #expect(lines.contains("acceptance run fat => fat-suite"), "\(output)")
        #expect(lines.contains("acceptance run leak-test --scenario loop => loop-leak"), "\(output)")
        #expect(
            lines.contains("acceptance run leak-test --station line => line-1-tcp line-2-redfish line-3-rtu"),
            "\(output)")
        #expect(lines.contains("acceptance read cdu.mode --station ./bench => ./bench-station.yaml"), "\(output)")
        #expect(
            lines.contains("acceptance simulate --scenario gauge- => gauge-absent gauge-error gauge-silent"),
            "\(output)")
    }
}
