import Foundation
import OTLPJSON
import OTLPProto
import Testing

/// OTLP/JSON as the OTLP specification writes it (hex ids, integer enums, lowerCamelCase keys), and back.
@Suite struct OTLPJSONCodingTests {
    static func request() -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest {
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.traceID = Data((0..<16).map { UInt8($0 * 17) })
        span.spanID = Data([0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3])
        span.parentSpanID = Data([9, 8, 7, 6, 5, 4, 3, 2])
        span.name = "chat \"quoted\" / é"
        span.kind = .client
        span.startTimeUnixNano = 1_700_000_000_123_456_789
        span.endTimeUnixNano = 1_700_000_001_000_000_000
        span.status.code = .error
        span.status.message = "boom"
        var attribute = Opentelemetry_Proto_Common_V1_KeyValue()
        attribute.key = "gen_ai.usage.input_tokens"
        attribute.value.intValue = 42
        span.attributes = [attribute]
        var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        scope.spans = [span]
        var resource = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        resource.scopeSpans = [scope]
        var request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        request.resourceSpans = [resource]
        return request
    }

    @Test func idsAreHexAndEnumsAreIntegers() throws {
        let data = try OTLPJSONCoding.encode(Self.request())
        let object = try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let resourceSpans = try #require(object["resourceSpans"] as? [[String: Any]])
        let scopeSpans = try #require(resourceSpans.first?["scopeSpans"] as? [[String: Any]])
        let span = try #require((scopeSpans.first?["spans"] as? [[String: Any]])?.first)
        #expect(span["traceId"] as? String == "00112233445566778899aabbccddeeff")
        #expect(span["spanId"] as? String == "deadbeef00010203")
        #expect(span["parentSpanId"] as? String == "0908070605040302")
        #expect(span["kind"] as? Int == 3)
        #expect((span["status"] as? [String: Any])?["code"] as? Int == 2)
        #expect(span["name"] as? String == "chat \"quoted\" / é")
        #expect(!String(decoding: data, as: UTF8.self).contains("\n"))
    }

    @Test func whatIsWrittenDecodesToTheSameMessage() throws {
        let original = Self.request()
        let decoded = try OTLPJSONCoding.decodeTraceRequest(try OTLPJSONCoding.encode(original))
        #expect(decoded == original)
    }

    @Test func decodingNamesWhatIsWrong() {
        #expect(throws: OTLPJSONError.self) { try OTLPJSONCoding.decodeTraceRequest(Data("not json".utf8)) }
        #expect(throws: OTLPJSONError.self) { try OTLPJSONCoding.decodeTraceRequest(Data("[1]".utf8)) }
        do {
            _ = try OTLPJSONCoding.decodeTraceRequest(Data(#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#.utf8))
            Issue.record("a non-hex id was accepted")
        } catch {
            #expect("\(error)".contains("traceId"))
        }
        // Unknown fields are ignored (newer senders).
        #expect((try? OTLPJSONCoding.decodeTraceRequest(Data(#"{"resourceSpans":[],"future":1}"#.utf8))) != nil)
    }

    @Test func hexIDsRoundTripInEitherCase() {
        #expect(HexID.string([0x00, 0x0f, 0xf0, 0xff]) == "000ff0ff")
        let every = (0...255).map { UInt8($0) }
        #expect(HexID.string(every) == every.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined())
        #expect(HexID.bytes(HexID.string(every)) == every)
        #expect(HexID.bytes("000FF0ff") == [0x00, 0x0f, 0xf0, 0xff])
        #expect(HexID.bytes("") == [])
        #expect(HexID.bytes("abc") == nil)
        #expect(HexID.bytes("zz") == nil)
        // The same text from contiguous bytes (`Data`, a slice of it, an array) and from a sequence without them.
        let expected = HexID.string(every)
        #expect(HexID.string(Data(every)) == expected)
        #expect(HexID.string(Data(every)[16..<32]) == HexID.string(every[16..<32]))
        #expect(HexID.string(every.lazy.map { $0 }) == expected)
        #expect(HexID.string(Data()) == "" && HexID.string([UInt8]()) == "")
        // From a slice of a string (an MLflow trace id after its `tr-`), as from the string.
        #expect(HexID.bytes("tr-000FF0ff".dropFirst(3)) == [0x00, 0x0f, 0xf0, 0xff])
        #expect(HexID.bytes("tr-abc".dropFirst(3)) == nil && HexID.bytes("tr-0g".dropFirst(3)) == nil)
    }
}
