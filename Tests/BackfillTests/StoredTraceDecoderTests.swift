import Foundation
import JSONText
import MLflowWire
import NIOCore
import OTLPProto
import OTLPTranslation
import SwiftProtobuf
import Testing
import TraceAssembly

@testable import Backfill

/// A trace read back from a real MLflow 3.17.2 server (`GET /api/3.0/mlflow/traces/get`, captured) must translate
/// to the same OTLP as the same trace did live, from the client's captured `/v1/traces` uploads and `StartTraceV3`.
struct StoredTraceDecoderTests {
    static let settings = TranslationSettings(serviceName: "checkout", resourceAttributes: [], scopeVersion: "9.9.9")

    static func fixture(_ name: String) throws -> [UInt8] {
        let url = try #require(Bundle.module.resourceURL?.appendingPathComponent("Fixtures/\(name)"))
        return [UInt8](try Data(contentsOf: url))
    }

    /// The live path's trace: the captured uploads decoded as the proxy decodes them, assembled.
    static func liveTrace() throws -> AssembledTrace {
        var spans: [AssembledSpan] = []
        for file in ["live-0005_POST_v1_traces.req.bin", "live-0006_POST_v1_traces.req.bin", "live-0007_POST_v1_traces.req.bin"] {
            let batches = try OTLPRequestDecoder.decode(ByteBuffer(bytes: try fixture(file)), format: .protobuf, experimentID: "1")
            for batch in batches {
                spans += batch.spans.map {
                    AssembledSpan(
                        span: $0, encoding: batch.encoding, resourceAttributes: batch.resourceAttributes, experimentID: batch.experimentID,
                        scope: batch.scope)
                }
            }
        }
        let info = try StartTraceV3Decoder.decode(try fixture("live-0008_POST_api_3.0_mlflow_traces.req.bin")).info
        return AssembledTrace(traceID: try #require(spans.first).span.traceID, spans: spans, info: info, completion: .complete)
    }

    /// The backfill's trace: the read-back answer decoded and assembled.
    static func storedTrace() throws -> AssembledTrace {
        let body = try fixture("readback-traces-get.json")
        let root = try #require(JSONValue(parsing: body))
        let stored = try StoredTraceDecoder.storedInfo(try #require(root["trace"]?["trace_info"]))
        #expect(stored.spansLocation == .trackingStore)
        let batches = try StoredTraceDecoder.batchGet(body)
        let batch = try #require(batches[stored.info.traceID])
        return try StoredTraceDecoder.assemble(stored, spans: batch).get()
    }

    @Test func aReadBackTraceTranslatesLikeTheLiveUpload() throws {
        let live = OTLPTraceTranslator.translate(try Self.liveTrace(), settings: Self.settings)
        let stored = OTLPTraceTranslator.translate(try Self.storedTrace(), settings: Self.settings)
        func spans(_ resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) -> [Data: Opentelemetry_Proto_Trace_V1_Span] {
            Dictionary(uniqueKeysWithValues: resourceSpans.flatMap { $0.scopeSpans.flatMap(\.spans) }.map { ($0.spanID, $0) })
        }
        let liveSpans = spans(live)
        let storedSpans = spans(stored)
        #expect(liveSpans.count == 3)
        #expect(Set(liveSpans.keys) == Set(storedSpans.keys))
        for (id, liveSpan) in liveSpans {
            let storedSpan = try #require(storedSpans[id])
            #expect(storedSpan.traceID == liveSpan.traceID)
            #expect(storedSpan.parentSpanID == liveSpan.parentSpanID)
            #expect(storedSpan.name == liveSpan.name)
            #expect(storedSpan.startTimeUnixNano == liveSpan.startTimeUnixNano && storedSpan.endTimeUnixNano == liveSpan.endTimeUnixNano)
            #expect(storedSpan.status == liveSpan.status)
            #expect(storedSpan.events == liveSpan.events)
            #expect(storedSpan.kind == liveSpan.kind)
            // Every attribute, typed values included, and the trace-level ones on the root.
            let liveAttributes = Dictionary(uniqueKeysWithValues: liveSpan.attributes.map { ($0.key, $0.value) })
            let storedAttributes = Dictionary(uniqueKeysWithValues: storedSpan.attributes.map { ($0.key, $0.value) })
            #expect(storedAttributes == liveAttributes, "span \(liveSpan.name)")
        }
        // The experiment on the resource, as live.
        let experiment = stored.first?.resource.attributes.first { $0.key == "mlflow.experiment_id" }?.value.stringValue
        #expect(experiment == "1")
    }

    @Test func serverAddedKeysAreLeftOutAndTheSpansLocationKept() throws {
        let stored = try Self.storedTrace()
        let info = try #require(stored.info)
        #expect(info.tags["mlflow.artifactLocation"] == nil && info.tags["mlflow.trace.spansLocation"] == nil)
        #expect(info.metadata["mlflow.trace.infoFinalized"] == nil)
        #expect(info.tags["team"] == "wire" && info.metadata["mlflow.trace.session"] == "session-123")
    }

    @Test func aV3SearchPageAndItsToken() throws {
        let body = """
            {"traces": [{"trace_id": "tr-0123456789abcdef0123456789abcdef", "trace_location": {"type": "MLFLOW_EXPERIMENT",
              "mlflow_experiment": {"experiment_id": "4"}}, "request_time": "2026-11-26T07:27:29.706Z", "state": "OK",
              "trace_metadata": {"mlflow.trace.sizeStats": "{\\"num_spans\\": 5}"},
              "tags": {"mlflow.artifactLocation": "mlflow-artifacts:/4/traces/tr-0123456789abcdef0123456789abcdef/artifacts"}}],
             "next_page_token": "abc"}
            """
        let page = try StoredTraceDecoder.searchPage(Array(body.utf8))
        #expect(page.nextPageToken == "abc")
        let trace = try #require(page.traces.first)
        #expect(trace.info.experimentID == "4" && trace.expectedSpanCount == 5)
        #expect(trace.spansLocation == .artifact(location: "mlflow-artifacts:/4/traces/tr-0123456789abcdef0123456789abcdef/artifacts"))
        #expect(try StoredTraceDecoder.searchPage(Array(#"{"traces": []}"#.utf8)).nextPageToken == nil)
    }

    /// The v2 `SearchTraces` answer as MLflow 2.22's `TraceInfo` proto is written (hand-made from the proto, like
    /// the server's `message_to_json`): becomes the record the live path merges from `StartTrace` and `EndTrace`.
    @Test func aV2SearchPage() throws {
        let body = """
            {"traces": [{"request_id": "5f0e6a1cbb2a4c0c9d7c2f2d7c8f0a11", "experiment_id": "2", "timestamp_ms": "1795678049706",
              "execution_time_ms": "355", "status": "ERROR",
              "request_metadata": [{"key": "mlflow.trace_schema.version", "value": "2"}],
              "tags": [{"key": "mlflow.traceName", "value": "boom"},
                       {"key": "mlflow.artifactLocation", "value": "mlflow-artifacts:/2/traces/5f0e/artifacts"}]}]}
            """
        let trace = try #require(try StoredTraceDecoder.searchPage(Array(body.utf8)).traces.first)
        #expect(trace.info.traceID == "5f0e6a1cbb2a4c0c9d7c2f2d7c8f0a11" && trace.info.schemaVersion == 2 && trace.info.isFinal)
        #expect(trace.info.state == "ERROR" && trace.info.experimentID == "2")
        #expect(trace.info.tags == ["mlflow.traceName": "boom"])
        #expect(trace.spansLocation == .artifact(location: "mlflow-artifacts:/2/traces/5f0e/artifacts"))
    }

    @Test func badAnswersAreErrorsNotCrashes() {
        #expect(throws: WireError.self) { try StoredTraceDecoder.searchPage(Array("not json".utf8)) }
        #expect(throws: WireError.self) { try StoredTraceDecoder.searchPage(Array(#"{"traces": [1]}"#.utf8)) }
        #expect(throws: WireError.self) { try StoredTraceDecoder.searchPage(Array(#"{"traces": [{"state": "OK"}]}"#.utf8)) }
        #expect(throws: WireError.self) {
            try StoredTraceDecoder.batchGet(Array(#"{"traces": [{"trace_info": {"trace_id": "tr-1"}, "spans": [{"span_id": 5}]}]}"#.utf8))
        }
        // A span whose ids have the wrong length is refused as the live decoder refuses it.
        #expect(throws: WireError.self) {
            try StoredTraceDecoder.batchGet(
                Array(#"{"traces": [{"trace_info": {"trace_id": "tr-1"}, "spans": [{"trace_id": "AAE=", "span_id": "AAAAAAAAAAE="}]}]}"#.utf8))
        }
    }

    @Test func aTraceWithoutSpansOrWithAnotherTracesSpansIsSkipped() throws {
        let stored = StoredTraceInfo(info: TraceInfo(traceID: "tr-0123456789abcdef0123456789abcdef"), spansLocation: .trackingStore)
        #expect(throws: StoredTraceDecoder.SkipReason(.noSpans)) {
            try StoredTraceDecoder.assemble(stored, spans: SpanBatch(spans: [], encoding: .typed)).get()
        }
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.traceID = Data(repeating: 7, count: 16)
        span.spanID = Data(repeating: 1, count: 8)
        #expect(throws: StoredTraceDecoder.SkipReason(.mixedTraceIDs)) {
            try StoredTraceDecoder.assemble(stored, spans: SpanBatch(spans: [span], encoding: .typed)).get()
        }
    }
}
