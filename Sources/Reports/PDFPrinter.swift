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
        let exit = ExitWatch()
        process.terminationHandler = { process in exit.finished(process.terminationStatus) }
        do {
            try process.run()
        } catch {
            throw ReportBundle.BundleError(description: "cannot start \(executable): \(error)")
        }
        guard let status = await exit.wait(upTo: timeout, on: clock) else {
            // Asked to stop, then killed; waited for either way, so nothing it writes lands after this returns.
            process.terminate()
            if await exit.wait(upTo: .seconds(5), on: clock) == nil {
                kill(process.processIdentifier, SIGKILL)
                _ = await exit.wait(upTo: .seconds(60), on: clock)
            }
            try? FileManager.default.removeItem(atPath: pdf)
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

/// A child process's exit, awaited by any number of tasks, each of which may give up (cancelled or timed out).
final class ExitWatch: Sendable {
    private struct State {
        var status: Int32?
        var waiters: [Int: CheckedContinuation<Int32?, Never>] = [:]
        var next = 0
    }

    private let state = Mutex(State())

    /// Called once, from the process's termination handler.
    func finished(_ status: Int32) {
        let waiters = state.withLock { state -> [CheckedContinuation<Int32?, Never>] in
            state.status = status
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: status) }
    }

    /// The exit status, or nil if the calling task is cancelled first.
    func wait() async -> Int32? {
        let id = state.withLock { state -> Int in
            state.next += 1
            return state.next
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let immediate: Int32?? = state.withLock { state in
                    if let status = state.status { return .some(status) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
    }

    /// The exit status, or nil if it has not come within `limit` on `clock`.
    func wait(upTo limit: Duration, on clock: any Clock<Duration>) async -> Int32? {
        await withTaskGroup(of: Int32?.self) { group -> Int32? in
            group.addTask { await self.wait() }
            group.addTask {
                try? await clock.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
