import Foundation
import Synchronization

/// Prints `report.html` to PDF with WeasyPrint (Debian's `weasyprint`): the page's print styles give every page a
/// header with the run id and rack serial, "page x of y", and the SIMULATED watermark where it applies.
///
/// The printer is another program: it runs as a child process that the calling task awaits (never blocking a
/// thread of the cooperative pool), and it is killed if it has not finished within `timeout` on `clock`.
public struct PDFPrinter: Sendable {
    /// The `weasyprint` executable.
    public var executable: String
    public var timeout: Duration
    public var clock: any Clock<Duration>

    public init(executable: String, timeout: Duration = .seconds(120), clock: any Clock<Duration> = ContinuousClock()) {
        self.executable = executable
        self.timeout = timeout
        self.clock = clock
    }

    /// WeasyPrint from the `PATH`, or nil when it is not installed (`apt install weasyprint`).
    public static func find(environment: [String: String] = ProcessInfo.processInfo.environment) -> PDFPrinter? {
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/weasyprint"
            if FileManager.default.isExecutableFile(atPath: candidate) { return PDFPrinter(executable: candidate) }
        }
        return nil
    }

    /// Prints `html` to `pdf`. Errors name the tool and what it said.
    public func print(html: String, to pdf: String) async throws(ReportBundle.BundleError) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        // Local files only: the report is self-contained, and a PDF of it must not depend on the network.
        process.arguments = ["--quiet", "--base-url", (html as NSString).deletingLastPathComponent, html, pdf]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        // Its messages go to a file, not a pipe: a pipe nobody reads until the end could fill and stall it.
        let log = NSTemporaryDirectory() + "weasyprint-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        guard FileManager.default.createFile(atPath: log, contents: nil),
            let errors = FileHandle(forWritingAtPath: log)
        else {
            throw ReportBundle.BundleError(description: "cannot make a log file for \(executable) in \(log)")
        }
        defer { try? errors.close() }
        process.standardError = errors
        let finished = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { process in
            finished.continuation.yield(process.terminationStatus)
            finished.continuation.finish()
        }
        do {
            try process.run()
        } catch {
            throw ReportBundle.BundleError(description: "cannot start \(executable): \(error)")
        }
        let clock = clock
        let timeout = timeout
        let status = await withTaskGroup(of: Int32?.self) { group -> Int32? in
            group.addTask {
                for await status in finished.stream { return status }
                return nil
            }
            group.addTask {
                try? await clock.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        // Read what it said only once it has ended (or been killed): its output is small.
        guard let status else {
            process.terminate()
            throw ReportBundle.BundleError(
                description: "\(executable) did not print \(html) within \(timeout); report.pdf not made")
        }
        let said = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard status == 0, FileManager.default.fileExists(atPath: pdf) else {
            throw ReportBundle.BundleError(
                description: "\(executable) could not print \(html) (exit \(status)): "
                    + said.split(separator: "\n").suffix(3).joined(separator: " "))
        }
    }
}
