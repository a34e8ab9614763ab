extension String {
    /// The text with every character that could steer a terminal or hide text shown as a visible escape: C0 and C1
    /// controls and DEL (`\e`, `\n`, `\t`, `\x07`, `\x9b`), and the Unicode bidirectional overrides and isolates
    /// (`\u{202E}`), which reorder what follows them. Text from a device or a file goes through this before it reaches
    /// the operator's screen, a report or a JUnit file: a BMC cannot clear the screen, set the window title or draw a
    /// forged `VERDICT: PASS` banner. Escaping is idempotent (the result has nothing left to escape).
    public var escapingControlCharacters: String {
        guard unicodeScalars.contains(where: Self.needsEscape) else { return self }
        var result = ""
        result.reserveCapacity(utf8.count + 8)
        for scalar in unicodeScalars {
            guard Self.needsEscape(scalar) else {
                result.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\u{1B}": result += "\\e"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                let hex = String(scalar.value, radix: 16)
                result += scalar.value <= 0xFF ? "\\x" + (hex.count < 2 ? "0" + hex : hex) : "\\u{\(hex)}"
            }
        }
        return result
    }

    /// Whether `scalar` is shown escaped: a C0 or C1 control, DEL, or a bidirectional control.
    public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true
        case 0x202A...0x202E, 0x2066...0x2069, 0x200E, 0x200F, 0x061C: true
        default: false
        }
    }
}
