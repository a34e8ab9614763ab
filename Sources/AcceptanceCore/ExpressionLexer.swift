import Foundation

struct ExpressionToken: Sendable {
    enum Kind: Sendable, Equatable {
        case number(Double, PhysicalUnit?)
        case name(String)
        case string(String)
        case symbol(String)
    }

    var kind: Kind
    var text: String
    var offset: Int
}

enum ExpressionLexer {
    static let symbols = ["<=", ">=", "==", "!=", "&&", "||", "<", ">", "+", "-", "*", "/", "(", ")", ",", "!"]

    static func isNameStart(_ c: Character) -> Bool { c.isLetter || c == "_" }
    static func isNameContinue(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" }

    static func tokenize(_ source: String) throws(ExpressionError) -> [ExpressionToken] {
        let chars = Array(source)
        var tokens: [ExpressionToken] = []
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace {
                i += 1
                continue
            }
            let start = i
            if c.isNumber || (c == "." && i + 1 < chars.count && chars[i + 1].isNumber) {
                while i < chars.count, chars[i].isNumber || chars[i] == "." { i += 1 }
                if i < chars.count, chars[i] == "e" || chars[i] == "E" {
                    var j = i + 1
                    if j < chars.count, chars[j] == "+" || chars[j] == "-" { j += 1 }
                    if j < chars.count, chars[j].isNumber {
                        i = j
                        while i < chars.count, chars[i].isNumber { i += 1 }
                    }
                }
                let numberText = String(chars[start..<i])
                guard let value = Double(numberText) else {
                    throw ExpressionError("'\(numberText)' is not a number", at: start)
                }
                // An optional unit right after the number: `300 kPa`, `10min`, `1.5 L/min`.
                var j = i
                while j < chars.count, chars[j] == " " { j += 1 }
                var unit: PhysicalUnit?
                for symbol in PhysicalUnit.symbolsLongestFirst {
                    let symbolChars = Array(symbol)
                    guard j + symbolChars.count <= chars.count,
                        Array(chars[j..<(j + symbolChars.count)]) == symbolChars
                    else { continue }
                    let after = j + symbolChars.count
                    if after < chars.count, isNameContinue(chars[after]) { continue }
                    unit = PhysicalUnit.named(symbol)
                    i = after
                    break
                }
                tokens.append(
                    ExpressionToken(kind: .number(value, unit), text: String(chars[start..<i]), offset: start))
                continue
            }
            if isNameStart(c) {
                // Dotted names: `cdu.loop_pressure`.
                while i < chars.count,
                    isNameContinue(chars[i])
                        || (chars[i] == "." && i + 1 < chars.count && isNameStart(chars[i + 1]))
                {
                    i += 1
                }
                let name = String(chars[start..<i])
                tokens.append(ExpressionToken(kind: .name(name), text: name, offset: start))
                continue
            }
            if c == "'" || c == "\"" {
                i += 1
                var text = ""
                while i < chars.count, chars[i] != c {
                    text.append(chars[i])
                    i += 1
                }
                guard i < chars.count else { throw ExpressionError("unterminated text in quotes", at: start) }
                i += 1
                tokens.append(ExpressionToken(kind: .string(text), text: String(chars[start..<i]), offset: start))
                continue
            }
            if let symbol = symbols.first(where: { symbol in
                let s = Array(symbol)
                return i + s.count <= chars.count && Array(chars[i..<(i + s.count)]) == s
            }) {
                i += symbol.count
                tokens.append(ExpressionToken(kind: .symbol(symbol), text: symbol, offset: start))
                continue
            }
            if c == "=" {
                throw ExpressionError("'=' is not a comparison; use '==' (or '>=', '<=')", at: start)
            }
            throw ExpressionError("unexpected character '\(c)'", at: start)
        }
        return tokens
    }
}
