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
        var text = "\(location): \(severity.rawValue): \(message)"
        if let sourceLine {
            let shown = sourceLine.replacingOccurrences(of: "\t", with: " ")
            let caretColumn = max(0, min(location.column - 1, shown.count))
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
public struct DiagnosticSink: Sendable {
    public let file: String
    public let lines: [Substring]
    public private(set) var diagnostics: [Diagnostic] = []

    public init(file: String, text: String) {
        self.file = file
        self.lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

    public func location(line: Int, column: Int) -> SourceLocation {
        SourceLocation(file: file, line: line, column: column)
    }

    public func sourceLine(_ line: Int) -> String? {
        guard line >= 1, line <= lines.count else { return nil }
        return String(lines[line - 1]).trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
    }

    public mutating func error(_ message: String, line: Int, column: Int) {
        report(.error, message, line: line, column: column)
    }

    public mutating func warning(_ message: String, line: Int, column: Int) {
        report(.warning, message, line: line, column: column)
    }

    public mutating func report(_ severity: Diagnostic.Severity, _ message: String, line: Int, column: Int) {
        let diagnostic = Diagnostic(
            severity, at: location(line: line, column: column), message,
            sourceLine: sourceLine(line))
        if !diagnostics.contains(diagnostic) { diagnostics.append(diagnostic) }
    }

    public mutating func append(_ diagnostic: Diagnostic) {
        if !diagnostics.contains(diagnostic) { diagnostics.append(diagnostic) }
    }
}
