import Foundation
import TestSupport
import Testing

@testable import Reports

@Suite("PDF printer as a child process")
struct PDFPrinterTests {
    /// A printer that hangs (and would write its PDF late) is stopped at the timeout and waited for: no report.pdf
    /// appears after the call returns, and the error says what happened.
    @Test func aHungPrinterIsStoppedAndLeavesNoPDF() async throws {
        let folder = temporaryDirectory()
        let script = "\(folder)/weasyprint"
        // One process that ignores SIGTERM and would write the PDF after 30 s: only SIGKILL stops it.
        try """
        #!/usr/bin/env python3
        import signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(30)
        open(sys.argv[-1], "w").write("late")
        """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        try "<html></html>".write(toFile: "\(folder)/report.html", atomically: true, encoding: .utf8)
        let printer = PDFPrinter(executable: script, timeout: .milliseconds(300))
        do {
            try await printer.print(html: "\(folder)/report.html", to: "\(folder)/report.pdf")
            Issue.record("a hung printer returned success")
        } catch {
            #expect(error.description.contains("did not print"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: "\(folder)/report.pdf"))
    }

    @Test func aFailingPrinterSaysWhatItSaid() async throws {
        let folder = temporaryDirectory()
        let script = "\(folder)/weasyprint"
        try "#!/bin/sh\necho 'cannot load font' >&2\nexit 3\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let printer = PDFPrinter(executable: script)
        do {
            try await printer.print(html: "\(folder)/report.html", to: "\(folder)/report.pdf")
            Issue.record("a failing printer returned success")
        } catch {
            #expect(error.description.contains("(exit 3): cannot load font"), "\(error)")
        }
    }
}
