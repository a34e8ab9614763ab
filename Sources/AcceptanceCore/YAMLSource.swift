import Foundation
import Yams

/// A YAML file parsed into nodes that remember their line and column, with every syntax error reported.
///
/// A syntax error stops libyaml, so one slip would hide every later problem in the file. After an error the
/// offending line is blanked (keeping line numbers) and the file is parsed again, up to a bound, so that a
/// technician sees the slip *and* the other mistakes in one pass.
public struct YAMLSource {
    public let path: String
    public let text: String
    public let root: Node?

    /// Reads (once, safely: see `read`) and parses a file, with a sink holding its text for diagnostics.
    public static func open(path: String) -> (DiagnosticSink, YAMLSource?) {
        var unread = DiagnosticSink(file: path, text: "")
        guard let (_, text) = read(path: path, into: &unread) else { return (unread, nil) }
        var sink = DiagnosticSink(file: path, text: text)
        let source = parse(text, path: path, into: &sink)
        return (sink, source)
    }

    /// The bytes and text of a file the tool is asked to read, or an error in `sink`: only regular files (symlinks
    /// to them are fine: a FIFO would block the read forever, a device never end), of a size a person could have
    /// written, in UTF-8.
    public static func read(path: String, into sink: inout DiagnosticSink) -> (Data, String)? {
        // stat(2) follows symbolic links: a link to a regular file is fine, a link to a FIFO is not.
        var status = stat()
        guard stat(path, &status) == 0 else {
            sink.error("cannot read file: \(String(cString: strerror(errno)))", line: 1, column: 1)
            return nil
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            let kind =
                switch status.st_mode & S_IFMT {
                case S_IFDIR: "a folder"
                case S_IFCHR, S_IFBLK: "a device"
                case S_IFSOCK: "a socket"
                default: "a FIFO"
                }
            sink.error("not a regular file: it is \(kind)", line: 1, column: 1)
            return nil
        }
        let size = Int(status.st_size)
        guard size <= YAMLLimits.maximumFileBytes else {
            sink.error(
                "file is \(size) bytes; acceptance YAML files are limited to \(YAMLLimits.maximumFileBytes) bytes",
                line: 1, column: 1)
            return nil
        }
        let bytes: [UInt8]
        do {
            bytes = try readFile(path, limit: YAMLLimits.maximumFileBytes)
        } catch {
            sink.error("cannot read file: \(error.reason)", line: 1, column: 1)
            return nil
        }
        let data = Data(bytes)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            sink.error("file is not valid UTF-8", line: 1, column: 1)
            return nil
        }
        return (data, text)
    }

    public static func parse(_ text: String, path: String, into sink: inout DiagnosticSink) -> YAMLSource {
        let meaningful = text.split(separator: "\n").contains { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return !trimmed.isEmpty && !trimmed.hasPrefix("#") && trimmed != "---"
        }
        guard meaningful else {
            sink.error("file is empty", line: 1, column: 1)
            return YAMLSource(path: path, text: text, root: nil)
        }
        guard text.utf8.count <= YAMLLimits.maximumFileBytes else {
            sink.error(
                "file is \(text.utf8.count) bytes; acceptance YAML files are limited to \(YAMLLimits.maximumFileBytes) bytes",
                line: 1, column: 1)
            return YAMLSource(path: path, text: text, root: nil)
        }
        if let (line, column) = YAMLLimits.firstAlias(in: text) {
            sink.error(
                "YAML aliases ('*name') are not allowed: they can expand without bound; write the value out",
                line: line, column: column)
            return YAMLSource(path: path, text: text, root: nil)
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var attempt = 0
        var previousLine = -1
        while attempt < 20 {
            do {
                // Every value is read as text and typed by the loaders themselves, so no scalar needs Yams's
                // regular-expression tag resolution (a third of the time of loading a 10,000-step file).
                let tree = try Yams.compose(yaml: lines.joined(separator: "\n"), Resolver.basic)
                // A recovered tree is used only to find more diagnostics, never to run.
                return attempt == 0
                    ? YAMLSource(path: path, text: text, root: tree)
                    : YAMLSource(path: path, text: text, root: nil, recoveredRoot: tree)
            } catch {
                attempt += 1
                let (message, mark, origin) = describe(error)
                // An unclosed bracket or quote is reported where the parser gave up, often many lines later;
                // point at where the construct began, which is where the slip is.
                let blamed = origin ?? mark
                let line = blamed?.line ?? 1
                sink.error("YAML syntax: \(message)", line: line, column: blamed?.column ?? 1)
                guard line >= 1, line <= lines.count, line != previousLine else { break }
                previousLine = line
                // Blank the offending line (or, if it is already blank, the last non-blank line before it).
                var target = line - 1
                while target > 0, lines[target].trimmingCharacters(in: .whitespaces).isEmpty { target -= 1 }
                lines[target] = ""
            }
        }
        return YAMLSource(path: path, text: text, root: nil)
    }

    /// A best-effort tree after syntax errors: good enough to report further mistakes, never to execute.
    public let recoveredRoot: Node?

    init(path: String, text: String, root: Node?, recoveredRoot: Node? = nil) {
        self.path = path
        self.text = text
        self.root = root
        self.recoveredRoot = recoveredRoot
    }

    /// The tree to check: the real one, or the recovered one after syntax errors.
    public var treeForChecking: Node? { root ?? recoveredRoot }

    /// The message, where the parser stopped, and where the construct it was reading began (if earlier).
    static func describe(_ error: any Error) -> (String, Mark?, Mark?) {
        guard let yamlError = error as? YamlError else { return ("\(error)", nil, nil) }
        switch yamlError {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
            let .composer(context, problem, mark, _):
            if let context, context.mark.line < mark.line {
                return ("\(problem) \(context.text) that starts here", mark, context.mark)
            }
            return (problem, mark, nil)
        case let .reader(problem, _, _, _):
            return (problem, nil, nil)
        case let .duplicatedKeysInMapping(duplicates, context):
            return ("duplicate key \(duplicates.joined(separator: ", "))", context.mark, nil)
        default:
            return ("\(yamlError)", nil, nil)
        }
    }
}

/// Typed access to YAML nodes that records a diagnostic, with the node's position, for every mismatch.
public struct YAMLReader {
    public var sink: DiagnosticSink

    public init(sink: DiagnosticSink) { self.sink = sink }

    public func position(of node: Node) -> (line: Int, column: Int) {
        guard let mark = node.mark else { return (1, 1) }
        return (mark.line, mark.column)
    }

    public func location(of node: Node) -> SourceLocation {
        let (line, column) = position(of: node)
        return sink.location(line: line, column: column)
    }

    public mutating func error(_ message: String, at node: Node) {
        let (line, column) = position(of: node)
        sink.error(message, line: line, column: column)
    }

    public mutating func warning(_ message: String, at node: Node) {
        let (line, column) = position(of: node)
        sink.warning(message, line: line, column: column)
    }

    /// The entries of a mapping in file order, keys as strings; an error if `node` is not a mapping.
    public mutating func mapping(_ node: Node, _ what: String) -> [(key: String, keyNode: Node, value: Node)]? {
        guard case let .mapping(mapping) = node else {
            error("\(what) must be a mapping of keys to values", at: node)
            return nil
        }
        var entries: [(key: String, keyNode: Node, value: Node)] = []
        for (key, value) in mapping {
            guard case let .scalar(scalar) = key else {
                error("\(what): keys must be plain names", at: key)
                continue
            }
            entries.append((scalar.string, key, value))
        }
        return entries
    }

    /// Reports keys that are not in `allowed`, suggesting the closest known one (catches typos like `timout`).
    public mutating func rejectUnknownKeys(
        _ entries: [(key: String, keyNode: Node, value: Node)], allowed: [String], in what: String
    ) {
        for entry in entries where !allowed.contains(entry.key) {
            var message = "unknown key '\(entry.key)' in \(what)"
            // A suggestion costs an edit distance per known key: not worth it for problems no one will be shown.
            if !sink.isFull, let suggestion = closest(to: entry.key, in: allowed) {
                message += "; did you mean '\(suggestion)'?"
            }
            error(message, at: entry.keyNode)
        }
    }

    public mutating func sequence(_ node: Node, _ what: String) -> [Node]? {
        guard case let .sequence(sequence) = node else {
            error("\(what) must be a list", at: node)
            return nil
        }
        return Array(sequence)
    }

    public mutating func scalar(_ node: Node, _ what: String) -> String? {
        guard case let .scalar(scalar) = node else {
            error("\(what) must be a single value, not a list or mapping", at: node)
            return nil
        }
        return scalar.string
    }

    public mutating func integer(_ node: Node, _ what: String) -> Int? {
        guard let text = scalar(node, what) else { return nil }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let value: Int?
        if trimmed.lowercased().hasPrefix("0x") {
            value = Int(trimmed.dropFirst(2), radix: 16)
        } else {
            value = Int(trimmed)
        }
        guard let value else {
            error("\(what) must be a whole number, not '\(text)'", at: node)
            return nil
        }
        return value
    }

    public mutating func double(_ node: Node, _ what: String) -> Double? {
        guard let text = scalar(node, what) else { return nil }
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)) else {
            error("\(what) must be a number, not '\(text)'", at: node)
            return nil
        }
        return value
    }

    public mutating func bool(_ node: Node, _ what: String) -> Bool? {
        guard let text = scalar(node, what) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            error("\(what) must be true or false, not '\(text)'", at: node)
            return nil
        }
    }

    /// A quantity such as `300 kPa` or `10min`.
    public mutating func quantity(_ node: Node, _ what: String) -> Quantity? {
        guard let text = scalar(node, what) else { return nil }
        do {
            return try Quantity.parse(text)
        } catch {
            self.error("\(what): \(error)", at: node)
            return nil
        }
    }

    /// A point's unit, by symbol (`kPa`, `°C`, `L/min`); an unknown one is an error at the node.
    public mutating func unit(_ node: Node) -> PhysicalUnit? {
        guard let symbol = scalar(node, "unit") else { return nil }
        guard let unit = PhysicalUnit.named(symbol) else {
            self.error("unknown unit '\(symbol)'", at: node)
            return nil
        }
        return unit
    }

    /// A point's access, `read-only` or `read-write`; anything else is an error at the node.
    public mutating func access(_ node: Node) -> PointAccess? {
        guard let text = scalar(node, "access") else { return nil }
        guard let access = PointAccess(rawValue: text) else {
            self.error("access must be read-only or read-write", at: node)
            return nil
        }
        return access
    }

    /// An expression written in a scalar, located in the file (its errors point at their column).
    public mutating func expression(_ node: Node, _ what: String) -> Expression? {
        guard let text = scalar(node, what) else { return nil }
        let (line, column) = textPosition(of: node)
        do {
            var expression = try Expression.parse(text)
            expression.location = sink.location(line: line, column: column)
            return expression
        } catch {
            sink.error("\(what): \(error.message)", line: line, column: column + error.offset)
            return nil
        }
    }

    /// A time such as `1 s` or `500 ms`, above zero and at most `longest`.
    public mutating func duration(_ node: Node, _ what: String, longest: Duration = .seconds(3600)) -> Duration? {
        guard let quantity = quantity(node, what) else { return nil }
        guard let duration = quantity.duration else {
            error("\(what) must be a time such as '1 s' or '500 ms', not \(quantity)", at: node)
            return nil
        }
        guard duration > .zero, duration <= longest else {
            error("\(what) must be above zero and at most \(Quantity.format(longest.seconds)) s", at: node)
            return nil
        }
        return duration
    }

    /// The column where the text of a scalar starts (after an opening quote).
    public func textPosition(of node: Node) -> (line: Int, column: Int) {
        let (line, column) = position(of: node)
        if case let .scalar(scalar) = node, scalar.style == .singleQuoted || scalar.style == .doubleQuoted {
            return (line, column + 1)
        }
        return (line, column)
    }
}

/// The known word nearest to `word` by edit distance, if it is close enough to be a likely typo.
public func closest(to word: String, in candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return best.1 <= max(2, word.count / 3) ? best.0 : nil
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = previous
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
