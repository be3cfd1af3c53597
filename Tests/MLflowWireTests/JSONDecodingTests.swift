import Foundation
import MLflowWire
import OTLPProto
import Testing

/// The JSON the decoders read through `JSONValue`: event attributes typed as JSON writes them, numbers as Python's
/// `json.dumps` writes them (`NaN` included), v2 records' fields, and what is refused.
@Suite struct JSONDecodingTests {
    @Test func eventAttributesAreTypedAsJSONWritesThem() throws {
        let body = #"""
            {"spans": [{"trace_id": "AAECAwQFBgcICQoLDA0ODw==", "span_id": "AAECAwQFBgc=", "parent_span_id": null, "name": "root",
              "start_time_unix_nano": 1700000000000000000, "end_time_unix_nano": "1700000001000000000",
              "status": {"code": "STATUS_CODE_OK", "message": ""},
              "attributes": {"b": "\"second\"", "a": "1", "b": "\"last\""},
              "events": [{"name": "e", "time_unix_nano": 1700000000500000000,
                "attributes": {"int": 3, "float": 1.5, "exp": 1e3, "big": 98765432109876543210, "nan": NaN, "flag": true,
                               "text": "é", "none": null, "list": [1, "x"], "map": {"k": false}}}]}]}
            """#
        let batch = try TracesArtifactDecoder.decode(Data(body.utf8), experimentID: "7")
        let span = try #require(batch.spans.first)
        #expect(span.startTimeUnixNano == 1_700_000_000_000_000_000 && span.endTimeUnixNano == 1_700_000_001_000_000_000)
        #expect(span.status.code == .ok)
        // Span attributes stay JSON text, sorted by key, a repeated key keeping its last value.
        #expect(span.attributes.map(\.key) == ["a", "b"] && span.attributes[1].value.stringValue == "\"last\"")
        let attributes = Dictionary(uniqueKeysWithValues: try #require(span.events.first).attributes.map { ($0.key, $0.value) })
        #expect(attributes["int"]?.intValue == 3)
        #expect(attributes["float"]?.doubleValue == 1.5)
        #expect(attributes["exp"]?.doubleValue == 1000)
        #expect(attributes["big"]?.doubleValue == 98_765_432_109_876_543_210)
        #expect(attributes["nan"]?.doubleValue.isNaN == true)
        #expect(attributes["flag"]?.boolValue == true)
        #expect(attributes["text"]?.stringValue == "é")
        #expect(attributes["none"]?.value == nil)
        #expect(attributes["list"]?.arrayValue.values.map(\.intValue) == [1, 0] && attributes["list"]?.arrayValue.values[1].stringValue == "x")
        #expect(attributes["map"]?.kvlistValue.values.first?.key == "k")
    }

    @Test func malformedArtifactsNameWhatIsWrong() {
        for (body, fragment) in [
            ("[]", "must be a JSON object"), ("{\"spans\": 1}", "no \"spans\" array"), ("{\"spans\": [1]}", "spans[0] is not an object"),
            ("{\"spans\": [{\"span_id\": \"AAECAwQFBgc=\"}]}", "trace_id is missing"),
            (
                "{\"spans\": [{\"trace_id\": \"AAECAwQFBgcICQoLDA0ODw==\", \"span_id\": \"AAECAwQFBgc=\", \"start_time_unix_nano\": -1}]}",
                "non-negative integer"
            ),
            ("{\"spans\": [", "not valid JSON"),
        ] {
            do {
                _ = try TracesArtifactDecoder.decode(Data(body.utf8), experimentID: nil)
                Issue.record("accepted \(body)")
            } catch {
                #expect(error.message.contains(fragment), "\(body): \(error.message)")
            }
        }
    }

    @Test func v2RecordsReadTheirFieldsAndRefuseWrongTypes() throws {
        let start = try TraceInfoV2Decoder.decodeStartTrace(
            Data(#"{"experiment_id": "3", "timestamp_ms": 1700000000123, "request_metadata": [{"key": "k", "value": "v"}], "tags": []}"#.utf8))
        #expect(start.experimentID == "3" && start.timestampMillis == 1_700_000_000_123 && start.metadata.first?.value == "v")
        let end = try TraceInfoV2Decoder.decodeEndTrace(
            Data(#"{"status": "TRACE_STATUS_UNSPECIFIED", "tags": [{"key": "mlflow.traceName", "value": "chat"}]}"#.utf8), requestID: "r1")
        #expect(end.state == "STATE_UNSPECIFIED" && end.tags["mlflow.traceName"] == "chat" && end.isFinal)
        #expect(throws: WireError.self) { try TraceInfoV2Decoder.decodeStartTrace(Data(#"{"experiment_id": 3}"#.utf8)) }
        #expect(throws: WireError.self) { try TraceInfoV2Decoder.decodeStartTrace(Data(#"{"tags": {"k": "v"}}"#.utf8)) }
        #expect(throws: WireError.self) { try TraceInfoV2Decoder.decodeStartTrace(Data("[]".utf8)) }
        let answer = TraceInfoV2Decoder.decodeTraceInfoAnswer(
            Data(#"{"trace_info": {"request_id": "abc", "experiment_id": "1", "status": "IN_PROGRESS"}}"#.utf8))
        #expect(answer?.requestID == "abc" && answer?.info.state == "IN_PROGRESS")
        #expect(TraceInfoV2Decoder.decodeTraceInfoAnswer(Data(#"{"trace_info": {}}"#.utf8)) == nil)
    }
}
