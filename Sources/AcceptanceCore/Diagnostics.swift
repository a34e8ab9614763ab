import Foundation

/// A place in a source file, 1-based, as editors and compilers print it.
public struct SourceLocation: Sendable, Hashable, Codable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// One problem found in a procedure, profile or scenario file.
public struct Diagnostic: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable { case error, warning }

    public var severity: Severity
    public var location: SourceLocation
    public var message: String
    /// The text of the offending line, shown under the message with a caret.
    public var sourceLine: String?

    public init(
        _ severity: Severity = .error, at location: SourceLocation, _ message: String, sourceLine: String? = nil
    ) {
        self.severity = severity
        self.location = location
        self.message = message
        self.sourceLine = sourceLine
    }

    /// `file:line:column: error: message`, then the line and a caret under the column.
    public var description: String {
        // Messages quote the file (an unknown key, a bad value): shown escaped, like anything else from a file.
        var text = "\(location): \(severity.rawValue): \(message.escapingControlCharacters)"
        if let sourceLine {
            let plain = sourceLine.replacingOccurrences(of: "\t", with: " ")
            let shown = plain.escapingControlCharacters
            // The caret under the same character once escapes have widened what comes before it.
            let before = String(plain.prefix(max(0, location.column - 1))).escapingControlCharacters
            let caretColumn = max(0, min(before.count, shown.count))
            text += "\n    \(shown)\n    \(String(repeating: " ", count: caretColumn))^"
        }
        return text
    }
}

/// Every problem found in one or more files; thrown when any of them is an error.
public struct DiagnosticsError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]

    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }

    public var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }

    public var description: String {
        let errorCount = errors.count
        let summary = "\(errorCount) error\(errorCount == 1 ? "" : "s")"
        return (diagnostics.map(\.description) + [summary]).joined(separator: "\n")
    }
}

/// Collects diagnostics against one source file so that loading can report every problem at once.
///
/// Reporting is constant time (duplicates are found through a set), and a file reports at most
/// `maximumDiagnostics` problems, then one line saying the rest were not shown: a file of 100,000 misspelt keys
/// loads in linear time and does not bury the terminal.
public struct DiagnosticSink: Sendable {
    public let file: String
    public let lines: [Substring]
    public private(set) var diagnostics: [Diagnostic] = []
    private var seen: Set<Diagnostic> = []
    /// Problems found after the limit: counted, not kept.
    public private(set) var suppressed = 0
    public private(set) var hasErrors = false
    public static let maximumDiagnostics = 200

    /// True once no more problems will be shown (callers can skip work that only decorates them).
    public var isFull: Bool { diagnostics.count >= Self.maximumDiagnostics }

    public init(file: String, text: String) {
        self.file = file
        self.lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    public func location(line: Int, column: Int) -> SourceLocation {
        SourceLocation(file: file, line: line, column: column)
    }

    /// The text of a line, cut to a screenful: a 10 MB line is named, not echoed back.
    public func sourceLine(_ line: Int) -> String? {
        guard line >= 1, line <= lines.count else { return nil }
        let text = lines[line - 1]
        let shown =
            text.count > Self.maximumSourceLine ? String(text.prefix(Self.maximumSourceLine)) + " …" : String(text)
        return shown.trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
    }

    static let maximumSourceLine = 240

    public mutating func error(_ message: String, line: Int, column: Int) {
        report(.error, message, line: line, column: column)
    }

    public mutating func warning(_ message: String, line: Int, column: Int) {
        report(.warning, message, line: line, column: column)
    }

    public mutating func report(_ severity: Diagnostic.Severity, _ message: String, line: Int, column: Int) {
        append(
            Diagnostic(
                severity, at: location(line: line, column: column), message,
                sourceLine: sourceLine(line)))
    }

    public mutating func append(_ diagnostic: Diagnostic) {
        if diagnostic.severity == .error { hasErrors = true }
        if diagnostics.count >= Self.maximumDiagnostics {
            guard !seen.contains(diagnostic) else { return }
            suppressed += 1
            // One closing line, as severe as the worst problem it stands for (201 warnings are not an error).
            if diagnostics.count == Self.maximumDiagnostics {
                diagnostics.append(
                    Diagnostic(
                        diagnostic.severity, at: diagnostic.location,
                        "more than \(Self.maximumDiagnostics) problems in this file; the rest are not shown"))
            } else if diagnostic.severity == .error, let last = diagnostics.indices.last {
                diagnostics[last].severity = .error
            }
            return
        }
        if seen.insert(diagnostic).inserted { diagnostics.append(diagnostic) }
    }
}
