import Foundation
import JSONText
import MLflowWire
import Testing

/// `JSONValue`, the JSON reader and writer of the ingest path: what it accepts and refuses, how it writes strings
/// (Python's `json.dumps(…, ensure_ascii=False)`), and the trace-info echo built from it.
@Suite struct JSONTextTests {
    @Test func jsonKeepsOrderNumbersAndEscapes() throws {
        let text = #"{"b": 1.50, "a": [true, null, "x\"y\u00e9\n"], "n": NaN, "e": {}}"#
        let value = try #require(JSONValue(parsing: text))
        #expect(value.text == #"{"b":1.50,"a":[true,null,"x\"yé\n"],"n":NaN,"e":{}}"#)
        #expect(JSONValue(parsing: value.text) == value)
        #expect(JSONValue(parsing: "{\"a\": 1") == nil)
        #expect(JSONValue(parsing: "[1] x") == nil)
        #expect(JSONValue(parsing: String(repeating: "[", count: 10_000)) == nil)  // too deep: not JSON, no crash
        #expect(JSONValue(parsing: "\"\\ud83d\\ude00\"")?.stringValue == "😀")
    }

    /// The byte-level UTF-8 check agrees with the standard library's decoder: the edges of every sequence length,
    /// overlong forms, surrogates, values above U+10FFFF, truncated and stray continuation bytes, and random bytes.
    @Test func utf8ValidationAgreesWithTheStandardLibrary() {
        func agrees(_ bytes: [UInt8]) -> Bool {
            let expected = String(validating: bytes, as: UTF8.self)
            return bytes.withUnsafeBufferPointer { buffer in
                UTF8Validation.isValid(buffer) == (expected != nil) && UTF8Validation.string(buffer) == expected
            }
        }
        let edges: [[UInt8]] = [
            [], [0x00], [0x7F], [0x80], [0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0x9F, 0xBF],
            [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xEF, 0xBF, 0xBF], [0xF0, 0x8F, 0xBF, 0xBF],
            [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF],
            [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0x61, 0xC3], [0xC3, 0xA9, 0x80], [0xE2, 0x28, 0xA1], Array("héllo 😀".utf8),
        ]
        for bytes in edges { #expect(agrees(bytes), "\(bytes)") }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 1...6, using: &generator)).map { _ in
                // Mostly the bytes that start or continue multi-byte sequences.
                Bool.random(using: &generator) ? UInt8.random(in: 0x80...0xF5, using: &generator) : UInt8.random(in: 0...0xFF, using: &generator)
            }
            #expect(agrees(bytes), "\(bytes)")
        }
    }

    @Test func stringsAreWrittenFromBytesAsFromStrings() {
        for text in ["", "plain", "quote \" back \\ slash", "line\nbreak\ttab\u{01}\u{1F}", "é 😀 \u{7F}"] {
            var fromString: [UInt8] = []
            JSONValue.writeString(text, to: &fromString)
            var fromBytes: [UInt8] = []
            Array(text.utf8).withUnsafeBufferPointer { JSONValue.writeString(utf8: $0, to: &fromBytes) }
            #expect(fromBytes == fromString)
        }
    }

    @Test func stringsAreWrittenAsPythonWritesThem() {
        func written(_ text: String) -> String {
            var output = ""
            JSONValue.writeString(text, to: &output)
            return output
        }
        #expect(written("plain ascii") == #""plain ascii""#)
        #expect(written("grüße 😀") == "\"grüße 😀\"")  // non-ASCII kept (ensure_ascii=False)
        #expect(written("a\"b\\c") == #""a\"b\\c""#)
        #expect(written("l1\nl2\r\t\u{08}\u{0C}") == #""l1\nl2\r\t\b\f""#)
        #expect(written("\u{01}\u{1F}") == #""\u0001\u001f""#)
        #expect(written("/</script>") == #""/</script>""#)  // Python does not escape the slash
    }

    @Test func parsesWholeRunsAndEscapesAlike() throws {
        #expect(JSONValue(parsing: #""abc""#)?.stringValue == "abc")
        #expect(JSONValue(parsing: "\"tab\there\"") == nil)  // a raw control character is not JSON
        #expect(JSONValue(parsing: [0x22, 0xFF, 0x22]) == nil)  // invalid UTF-8 is refused, not repaired
        #expect(JSONValue(parsing: "tru") == nil)
        #expect(JSONValue(parsing: "-Infinity") == .number("-Infinity"))
        #expect(JSONValue(parsing: "-1.5e3") == .number("-1.5e3"))
        #expect(JSONValue(parsing: "-") == nil)
        #expect(JSONValue(parsing: " [true, false, null, NaN] ")?.arrayValue?.count == 4)
        let object = try #require(JSONValue(parsing: #"{"b": 1.50, "a": {"x": []}}"#))
        #expect(object.text == #"{"b":1.50,"a":{"x":[]}}"#)  // order and number text kept
        #expect(object.setting("b", to: .string("2")).text == #"{"b":"2","a":{"x":[]}}"#)
        #expect(object.setting("c", to: .null).text == #"{"b":1.50,"a":{"x":[]},"c":null}"#)
        #expect(JSONValue.string("x").setting("k", to: .null) == .string("x"))
    }

    @Test func traceInfoFieldsOfTheWrongTypeAreNamed() {
        func message(_ body: String) -> String? {
            do {
                _ = try StartTraceV3Decoder.decode(Data(body.utf8))
                return nil
            } catch {
                return error.message
            }
        }
        #expect(message("[1]") == "the body must be a JSON object")
        #expect(message("{\"trace\": {}}") == "the body must contain trace.trace_info")
        #expect(message(#"{"trace": {"trace_info": {"trace_id": 7}}}"#) == "trace_info.trace_id is missing or not a string")
        #expect(message(#"{"trace": {"trace_info": {"trace_id": "tr-1", "state": 1}}}"#) == "trace_info.state must be a string")
        #expect(message(#"{"trace": {"trace_info": {"trace_id": "tr-1", "tags": {"k": 1}}}}"#) == "trace_info.tags.k must be a string")
        #expect(message(#"{"trace": {"trace_info": {"trace_id": "tr-1", "tags": null, "state": null}}}"#) == nil)
        #expect(message("{\"trace\": ") == "the body is not valid JSON")
    }

    /// A key table finds each of its keys at its position and nothing else: not a key of the same length, a prefix, a
    /// longer key that starts with one, or the empty key.
    @Test func keyTableFindsExactlyItsKeys() {
        let keys = ["trace_id", "tags", "state", "mlflow.spanType", "é", ""]
        let table = KeyTable(keys)
        for (index, key) in keys.enumerated() { #expect(table.index(of: key) == index) }
        for other in ["trace_iD", "tag", "tagss", "stats", "mlflow.spanTypes", "e", "\u{301}", "trace_id "] {
            #expect(table.index(of: other) == nil, "\(other)")
        }
    }
}

/// Doubles as Python's `json.dumps` writes them: integral values written from their digits equal what `%.1f`
/// writes (the formatter they replaced), across magnitudes, signs and the edge of exact integers.
@Suite struct PythonJSONNumbersTests {
    @Test func integralValuesAsPrintfWritesThem() {
        var values: [Double] = [0, -0.0, 1, -1, 5, 10, 123_456_789, 9_007_199_254_740_992, 1e15, 9.999_999_999_999_998e15, -1e15]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let magnitude = Double(Int64.random(in: 0...15, using: &generator))
            let value = (Double.random(in: -1...1, using: &generator) * pow(10, magnitude)).rounded()
            values.append(value)
        }
        for value in values {
            #expect(PythonJSONNumbers.double(value) == String(format: "%.1f", value), "\(value)")
        }
        #expect(PythonJSONNumbers.double(-0.0) == "-0.0" && PythonJSONNumbers.double(0.2) == "0.2")
        #expect(PythonJSONNumbers.double(1e16) == "1e+16" && PythonJSONNumbers.double(.nan) == "NaN")
        #expect(PythonJSONNumbers.double(-.infinity) == "-Infinity")
    }
}
