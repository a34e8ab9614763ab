import Foundation
import TestSupport
import Testing

/// The report as QA files it: `report.pdf` printed by WeasyPrint, read back with poppler's pdftotext and pdftoppm
/// (tools we did not write), and covered by the bundle's signature.
@Suite("report.pdf: printed, signed, read back")
struct PDFReportTests {
    func text(_ pdf: String, page: Int? = nil) async throws -> String {
        var arguments = [pdf, "-"]
        if let page { arguments = ["-f", "\(page)", "-l", "\(page)"] + arguments }
        let (status, output) = try await runProgram(try program("pdftotext"), arguments)
        #expect(status == 0, "\(output)")
        return output
    }

    @Test func theSignedPDFCarriesResolvedLimitsAWatermarkAndAHeaderOnEveryPage() async throws {
        let home = temporaryDirectory()
        try await makeKeyring(in: home)
        let result = try await run([
            "run", "leak-test", "--pdf", "--signing-key", "\(home)/keys/line1.key.pem", "--report-dir", "\(home)/r",
        ])
        #expect(result.status == 0, "\(result.stdout.suffix(2000))\(result.stderr)")
        let bundle = try runFolder(in: "\(home)/r")
        let pdf = "\(bundle)/report.pdf"
        #expect(FileManager.default.fileExists(atPath: pdf))
        let runID = (bundle as NSString).lastPathComponent

        // The signature covers the PDF: it is a subject, and a changed byte in it is caught.
        let verified = try await run(["verify", bundle, "--keyring", "\(home)/keyring.yaml"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        let envelope = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: "\(bundle)/attestation.dsse.json")))
                as? [String: Any])
        let payload = try #require(Data(base64Encoded: envelope["payload"] as? String ?? ""))
        #expect(String(decoding: payload, as: UTF8.self).contains("\"name\":\"report.pdf\""))

        // Read back as text: the limits as resolved for the run, with units, and the SIMULATED verdict.
        let all = try await text(pdf)
        #expect(all.contains("290…350 kPa"), "resolved limit of the loop pressure at start of hold")
        #expect(all.contains("≤ 2 kPa"))
        #expect(all.contains("PASS · SIMULATED"))
        #expect(!all.contains("test_pressure - 10 kPa"), "no limit expressions")

        // Every page: the running header (run id, rack serial, SIMULATED) and "page x of y".
        let (_, info) = try await runProgram(try program("pdfinfo"), [pdf])
        let pages = try #require(
            info.split(separator: "\n").first { $0.hasPrefix("Pages:") }.flatMap {
                Int($0.split(separator: " ").last ?? "")
            })
        #expect(pages >= 2, "\(info)")
        for page in 1...pages {
            let onPage = try await text(pdf, page: page)
            #expect(onPage.contains("run \(runID) · rack SIM-NVL72-0001 · SIMULATED"), "page \(page)")
            #expect(onPage.contains("page \(page) of \(pages)"), "page \(page)")
        }

        // Rendered to pictures: every page carries the red watermark across its middle.
        let pictures = temporaryDirectory()
        let (rendered, said) = try await runProgram(
            try program("pdftoppm"), ["-png", "-r", "30", pdf, "\(pictures)/page"])
        #expect(rendered == 0, "\(said)")
        let script = """
            import sys, glob
            from PIL import Image
            pages = sorted(glob.glob(sys.argv[1] + "/page-*.png"))
            counts = []
            for path in pages:
                im = Image.open(path).convert("RGB")
                w, h = im.size
                px = im.load()
                # The watermark: rgba(207,34,46,.13) over white, in the middle third of the page.
                tinted = sum(1 for y in range(h // 3, 2 * h // 3) for x in range(w)
                             if px[x, y][0] > 235 and 205 < px[x, y][1] < 232 and abs(px[x, y][1] - px[x, y][2]) < 8)
                counts.append(tinted)
            print(len(pages), counts)
            sys.exit(0 if pages and all(c > 100 for c in counts) else 1)
            """
        let checker = temporaryDirectory() + "/watermark.py"
        try script.write(toFile: checker, atomically: true, encoding: .utf8)
        let (seen, report) = try await runProgram(try program("python3"), [checker, pictures])
        #expect(seen == 0, "watermark on every page: \(report)")
        #expect(report.hasPrefix("\(pages) "), "\(report)")

        var bytes = try Data(contentsOf: URL(fileURLWithPath: pdf))
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: pdf))
        let tampered = try await run(["verify", bundle, "--keyring", "\(home)/keyring.yaml"])
        #expect(tampered.status == 1)
        #expect(tampered.stderr.contains("report.pdf"), "\(tampered.stderr)")
    }

    @Test func aPDFThatCannotBePrintedIsFoundOutBeforeAnythingRuns() async throws {
        // PATH without WeasyPrint: the PDF was asked for and cannot be made, so nothing runs and nothing is written.
        let reports = temporaryDirectory() + "/reports"
        let result = try await run(
            ["run", "leak-test", "--pdf", "--report-dir", reports], environment: ["PATH": "/nonexistent"])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("WeasyPrint is not installed: apt install weasyprint"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: reports), "no run folder")
    }
}
