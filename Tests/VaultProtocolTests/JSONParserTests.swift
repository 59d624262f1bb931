import Testing
import VaultProtocol

@Suite("JSON parser")
struct JSONParserTests {
    @Test("keeps object key order and number literals exactly")
    func roundTripIsExact() throws {
        let text = #"{"z":1.10,"a":[1,2e10,-0.5,12345678901234567890123],"m":{"y":null,"x":true},"s":"é\n\"q\""}"#
        let value = try JSONParser.parse(text)
        #expect(value.jsonString == text)
        #expect(value.objectValue?.keys == ["z", "a", "m", "s"])
        #expect(value.objectValue?["z"] == .number("1.10"))
    }

    @Test("decodes escapes, including surrogate pairs")
    func escapes() throws {
        let value = try JSONParser.parse(#""\u00e9\ud83d\ude00\t\/\\""#)
        #expect(value == .string("é😀\t/\\"))
    }

    @Test(
        "refuses malformed documents",
        arguments: [
            "", "{", "[1,]", "{\"a\":1,}", "{'a':1}", "01", "1.", "-", "+1", ".5", "1e", "NaN", "Infinity", "tru",
            "nul", "\"abc", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\u{01}b\"", "{} {}", "[1 2]", "{\"a\" 1}",
            "{\"a\":1 \"b\":2}", "//c\n1",
        ])
    func refusesMalformed(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test("refuses duplicate keys, which could mean different things to different parsers")
    func refusesDuplicateKeys() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(#"{"service":"a","service":"b"}"#) }
    }

    @Test("refuses invalid UTF-8 inside strings")
    func refusesInvalidUTF8() {
        let bytes: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        #expect(throws: JSONParseError.self) { try JSONParser.parse(bytes) }
        let escaped: [UInt8] = Array(#""a\n"#.utf8) + [0xFF, 0x22]
        #expect(throws: JSONParseError.self) { try JSONParser.parse(escaped) }
    }

    @Test("bounds nesting depth")
    func boundsDepth() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        _ = try JSONParser.parse(ok, maximumDepth: 64)
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep, maximumDepth: 64) }
        let veryDeep = String(repeating: "{\"a\":", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(veryDeep) }
    }

    @Test("writer escapes control characters")
    func writerEscapes() throws {
        let value = JSONValue.string("a\u{0}b\u{1f}c\r")
        #expect(value.jsonString == #""a\u0000b\u001fc\r""#)
        #expect(try JSONParser.parse(value.jsonString) == value)
    }
}

@Suite("Timestamps")
struct TimestampTests {
    @Test("formats as RFC 3339 UTC with milliseconds")
    func formats() {
        #expect(Timestamp(millisecondsSinceEpoch: 0).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp(millisecondsSinceEpoch: 1_795_954_603_373).rfc3339 == "2026-11-29T12:16:43.373Z")
        #expect(Timestamp(millisecondsSinceEpoch: 951_782_400_000).rfc3339 == "2000-02-29T00:00:00.000Z")
        #expect(Timestamp(millisecondsSinceEpoch: -1).rfc3339 == "1969-12-31T23:59:59.999Z")
    }

    @Test("parses offsets, fractions and lower-case separators")
    func parses() {
        #expect(Timestamp(rfc3339: "2026-11-29T12:16:43.373Z")?.millisecondsSinceEpoch == 1_795_954_603_373)
        #expect(Timestamp(rfc3339: "2026-11-29T13:16:43.373+01:00")?.millisecondsSinceEpoch == 1_795_954_603_373)
        #expect(Timestamp(rfc3339: "2026-11-29t12:16:43.3739999z")?.millisecondsSinceEpoch == 1_795_954_603_373)
        #expect(Timestamp(rfc3339: "2026-11-29T12:16:43Z")?.millisecondsSinceEpoch == 1_795_954_603_000)
        #expect(Timestamp(rfc3339: "2026-11-29T12:16:43.5Z")?.millisecondsSinceEpoch == 1_795_954_603_500)
    }

    @Test(
        "refuses what RFC 3339 does not allow",
        arguments: [
            "2026-11-29", "2026-11-29 12:16:43Z", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
            "2026-11-29T24:00:00Z", "2026-11-29T12:16:43", "2026-11-29T12:16:43.Z", "2026-11-29T12:16:43+0100",
            "tomorrow", "1764418603", "2026-11-29T12:16:43Zjunk",
        ])
    func refuses(_ text: String) {
        #expect(Timestamp(rfc3339: text) == nil)
    }
}
