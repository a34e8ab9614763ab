import Foundation

/// What the tool refuses to read before a YAML parser sees it: files too large to be hand-written, files that are
/// not regular files, and aliases.
///
/// An alias (`*name`) makes a few hundred bytes stand for millions of nodes (the "billion laughs"), and libyaml's
/// composer hashes mapping keys in full, so one aliased key costs time exponential in its nesting. Acceptance files
/// are reviewed by people: a value is written out where it is used, so aliases are refused outright, with the
/// position of the first one. Anchors alone (`&name`) are harmless and allowed.
public enum YAMLLimits {
    /// The largest YAML file the tool reads (the largest shipped file is under 20 kB).
    public static let maximumFileBytes = 4 << 20

    /// Where the first alias in `text` begins, as 1-based line and column, if there is one.
    ///
    /// A small scanner of YAML's indicators: it follows quoted scalars (also across lines), block scalars (`|`,
    /// `>`), comments and flow collections, so a `*` inside a string, a comment, a prompt's text or an expression
    /// (`pump_speed * 2`) is not taken for an alias. Only a `*` where a node may begin is one.
    public static func firstAlias(in text: String) -> (line: Int, column: Int)? {
        let bytes = Array(text.utf8)
        guard bytes.contains(UInt8(ascii: "*")) else { return nil }
        var scanner = AliasScanner(bytes: bytes)
        return scanner.run()
    }
}

private struct AliasScanner {
    let bytes: [UInt8]
    var index = 0
    var line = 1
    var lineStart = 0
    var flowDepth = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    func byte(at offset: Int) -> UInt8? { offset < bytes.count ? bytes[offset] : nil }

    static func isBlank(_ byte: UInt8?) -> Bool {
        guard let byte else { return true }
        return byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n")
            || byte == UInt8(ascii: "\r")
    }

    mutating func newline() {
        index += 1
        line += 1
        lineStart = index
    }

    /// Indentation of the line that `index` is on.
    var indentation: Int {
        var offset = lineStart
        while offset < bytes.count, bytes[offset] == UInt8(ascii: " ") { offset += 1 }
        return offset - lineStart
    }

    mutating func skipToEndOfLine() {
        while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
    }

    /// Indentation of the line starting at `offset` and whether it is blank (or only a comment).
    func lineShape(at offset: Int) -> (indent: Int, blank: Bool) {
        var cursor = offset
        while cursor < bytes.count, bytes[cursor] == UInt8(ascii: " ") { cursor += 1 }
        let blank =
            cursor >= bytes.count || bytes[cursor] == UInt8(ascii: "\n") || bytes[cursor] == UInt8(ascii: "\r")
            || bytes[cursor] == UInt8(ascii: "#")
        return (cursor - offset, blank)
    }

    static func endsName(_ byte: UInt8) -> Bool {
        isBlank(byte) || byte == UInt8(ascii: ",") || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "]")
            || byte == UInt8(ascii: "{") || byte == UInt8(ascii: "}")
    }

    mutating func run() -> (line: Int, column: Int)? {
        var atNodeStart = true
        // While inside a plain scalar in block context: the indentation of the line it began on. A following line
        // indented further continues the scalar (YAML folds it in), so a `*` there is text, not an alias.
        var plainIndent: Int?
        while index < bytes.count {
            let current = bytes[index]
            switch current {
            case UInt8(ascii: "\n"):
                newline()
                if let indent = plainIndent, flowDepth == 0 {
                    let shape = lineShape(at: index)
                    if !shape.blank, shape.indent > indent {
                        index += shape.indent
                        atNodeStart = false
                        continue
                    }
                    if shape.blank { continue }
                }
                plainIndent = nil
                atNodeStart = true
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                index += 1
            case UInt8(ascii: "#") where atNodeStart || Self.isBlank(index > 0 ? bytes[index - 1] : nil):
                skipToEndOfLine()
            case UInt8(ascii: "*") where atNodeStart:
                return (line, index - lineStart + 1)
            case UInt8(ascii: "&") where atNodeStart, UInt8(ascii: "!") where atNodeStart:
                // An anchor or a tag: the node itself follows. Its name ends at a blank or a flow indicator, as
                // libyaml reads it (`&z,*a` is an anchor and then an alias).
                index += 1
                while index < bytes.count, !Self.endsName(bytes[index]) { index += 1 }
            case UInt8(ascii: "\"") where atNodeStart:
                skipQuoted(double: true)
                atNodeStart = false
                plainIndent = nil
            case UInt8(ascii: "'") where atNodeStart:
                skipQuoted(double: false)
                atNodeStart = false
                plainIndent = nil
            case UInt8(ascii: "|") where atNodeStart && flowDepth == 0,
                UInt8(ascii: ">") where atNodeStart && flowDepth == 0:
                skipBlockScalar()
                atNodeStart = true
                plainIndent = nil
            case UInt8(ascii: "-") where atNodeStart && Self.isBlank(byte(at: index + 1)),
                UInt8(ascii: "?") where atNodeStart && Self.isBlank(byte(at: index + 1)):
                index += 1
            case UInt8(ascii: ":") where Self.isBlank(byte(at: index + 1)) || flowDepth > 0:
                index += 1
                atNodeStart = true
                plainIndent = nil
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                flowDepth += 1
                index += 1
                atNodeStart = true
                plainIndent = nil
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                flowDepth = max(0, flowDepth - 1)
                index += 1
                atNodeStart = false
            case UInt8(ascii: ",") where flowDepth > 0:
                index += 1
                atNodeStart = true
            default:
                // Plain text: nothing in it starts a node until an indicator above.
                if atNodeStart, flowDepth == 0 { plainIndent = indentation }
                index += 1
                atNodeStart = false
            }
        }
        return nil
    }

    /// Skips a quoted scalar, which may span lines: `\"` escapes in double quotes, `''` in single quotes.
    mutating func skipQuoted(double: Bool) {
        let quote = double ? UInt8(ascii: "\"") : UInt8(ascii: "'")
        index += 1
        while index < bytes.count {
            let current = bytes[index]
            if current == UInt8(ascii: "\n") {
                newline()
                continue
            }
            if double, current == UInt8(ascii: "\\") {
                index += 1
                // An escaped line break still ends the line (the line numbers after it must stay right).
                if index < bytes.count, bytes[index] == UInt8(ascii: "\n") {
                    newline()
                } else {
                    index += 1
                }
                continue
            }
            if current == quote {
                if !double, byte(at: index + 1) == quote {
                    index += 2
                    continue
                }
                index += 1
                return
            }
            index += 1
        }
    }

    /// Skips a block scalar as YAML bounds it: the rest of its header line, then its content, whose indentation is
    /// that of its first non-blank line (which must be deeper than the header line's); the scalar ends at the first
    /// non-blank line indented less than that.
    mutating func skipBlockScalar() {
        let header = indentation
        skipToEndOfLine()
        var content: Int?
        while index < bytes.count {
            newline()
            let shape = lineShape(at: index)
            let empty =
                shape.blank && !(index + shape.indent < bytes.count && bytes[index + shape.indent] == UInt8(ascii: "#"))
            if empty {
                skipToEndOfLine()
                continue
            }
            if content == nil {
                guard shape.indent > header else { return }
                content = shape.indent
            }
            if let content, shape.indent < content { return }
            skipToEndOfLine()
        }
    }
}
