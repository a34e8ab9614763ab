import Foundation
import Testing

@testable import AcceptanceCore

/// What devices send, parsed strictly, with errors that say what and where.
@Suite("JSON from devices")
struct JSONParserTests {
    @Test func agreesWithFoundationOnTheShippedMockups() throws {
        let root = URL(fileURLWithPath: repositoryRoot).appendingPathComponent("../shared/conformance/redfish/mockups")
            .standardizedFileURL.path
        let mockups = FileManager.default.fileExists(atPath: root) ? root : "/work/shared/conformance/redfish/mockups"
        let enumerator = FileManager.default.enumerator(atPath: mockups)
        var compared = 0
        while let file = enumerator?.nextObject() as? String, compared < 400 {
            guard file.hasSuffix(".json"), let data = FileManager.default.contents(atPath: "\(mockups)/\(file)") else {
                continue
            }
            let ours = try JSONValue.parse(data)
            let theirs = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            let reencoded = try JSONSerialization.data(
                withJSONObject: theirs, options: [.sortedKeys, .fragmentsAllowed])
            #expect(try JSONValue.parse(reencoded) == ours, "\(file)")
            compared += 1
        }
        #expect(compared > 50)
    }

    @Test(arguments: [
        ("{\"a\": 1e400}", "number 1e400 at byte 6 is out of range"),
        ("[1, 2", "the array is not closed at the end"),
        ("{\"a\" 1}", "expected ':' at byte 5"),
        ("\"\\q\"", "'\\q' is not a JSON escape at byte 1"),
        ("[01]", "a number cannot start with 0 at byte 1"),
        ("{\"a\": \"x\u{01}\"}", "a control character inside a string must be escaped at byte 8"),
        ("[true] x", "unexpected text after the JSON value at byte 7"),
        ("", "the document is empty"),
        ("[1,", "a value is missing at the end"),
    ])
    func saysWhatIsWrongAndWhere(_ text: String, _ message: String) {
        #expect(throws: JSONParseError(message: message)) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test func deepNestingIsRefusedNotRecursedInto() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array(deep.utf8)) }
        let fine = String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        #expect(throws: Never.self) { try JSONValue.parse(Array(fine.utf8)) }
    }

    @Test func readsEscapesAndSurrogatePairs() throws {
        let value = try JSONValue.parse(
            Array(#"{"s": "a\u00e9\ud83d\ude00\n\"", "n": -1.5e2, "t": [true, false, null]}"#.utf8))
        #expect(value["s"]?.string == "aé😀\n\"")
        #expect(value["n"]?.number == -150)
        #expect(value["t"] == [true, false, nil])
    }
}
