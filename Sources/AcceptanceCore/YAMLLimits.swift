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

    mutating func run() -> (line: Int, column: Int)? {
        var atNodeStart = true
        while index < bytes.count {
            let current = bytes[index]
            switch current {
            case UInt8(ascii: "\n"):
                newline()
                atNodeStart = true
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                index += 1
            case UInt8(ascii: "#") where atNodeStart || Self.isBlank(index > 0 ? bytes[index - 1] : nil):
                skipToEndOfLine()
            case UInt8(ascii: "*") where atNodeStart:
                return (line, index - lineStart + 1)
            case UInt8(ascii: "&") where atNodeStart, UInt8(ascii: "!") where atNodeStart:
                // An anchor or a tag: the node itself follows.
                while index < bytes.count, !Self.isBlank(bytes[index]) { index += 1 }
            case UInt8(ascii: "\"") where atNodeStart:
                skipQuoted(double: true)
                atNodeStart = false
            case UInt8(ascii: "'") where atNodeStart:
                skipQuoted(double: false)
                atNodeStart = false
            case UInt8(ascii: "|") where atNodeStart && flowDepth == 0,
                UInt8(ascii: ">") where atNodeStart && flowDepth == 0:
                skipBlockScalar()
                atNodeStart = true
            case UInt8(ascii: "-") where atNodeStart && Self.isBlank(byte(at: index + 1)),
                UInt8(ascii: "?") where atNodeStart && Self.isBlank(byte(at: index + 1)):
                index += 1
            case UInt8(ascii: ":") where Self.isBlank(byte(at: index + 1)) || flowDepth > 0:
                index += 1
                atNodeStart = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                flowDepth += 1
                index += 1
                atNodeStart = true
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                flowDepth = max(0, flowDepth - 1)
                index += 1
                atNodeStart = false
            case UInt8(ascii: ",") where flowDepth > 0:
                index += 1
                atNodeStart = true
            default:
                // Plain text: nothing in it starts a node until an indicator above.
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
                index += 2
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

    /// Skips a block scalar: the rest of its header line, then every line that is blank or indented further than
    /// the line the header is on.
    mutating func skipBlockScalar() {
        let parent = indentation
        skipToEndOfLine()
        while index < bytes.count {
            newline()
            var offset = index
            while offset < bytes.count, bytes[offset] == UInt8(ascii: " ") { offset += 1 }
            let blank =
                offset >= bytes.count || bytes[offset] == UInt8(ascii: "\n") || bytes[offset] == UInt8(ascii: "\r")
            if !blank && offset - index <= parent {
                // The next node: leave the scanner at the start of its line.
                return
            }
            skipToEndOfLine()
        }
    }
}
