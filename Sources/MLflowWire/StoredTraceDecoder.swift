import Foundation
import JSONText
import OTLPProto
import SwiftProtobuf

/// Where a stored trace's spans are kept, decided as MLflow's own client decides it (`mlflow.trace.spansLocation`).
public enum StoredSpansLocation: Sendable, Equatable {
    /// In the tracking store (spans uploaded to `/v1/traces`): read with `GET /api/3.0/mlflow/traces/batchGet`.
    case trackingStore
    /// In the `traces.json` artifact under the trace's artifact location (`mlflow.artifactLocation`, if the server
    /// named one): 2.x servers, 3.0–3.3 clients, and traces whose tag says `ARTIFACT_REPO`.
    case artifact(location: String?)
}

/// One trace as MLflow's search answered it: the trace-level record as the live path would have received it from
/// the client, and where its spans are.
public struct StoredTraceInfo: Sendable {
    /// The record, with the keys the server adds on its own removed (see ``StoredTraceDecoder/serverTags``).
    public var info: TraceInfo
    /// Where the spans are.
    public var spansLocation: StoredSpansLocation
    /// How many spans the client said the trace has, when it said so (for progress totals).
    public var expectedSpanCount: Int?

    /// Creates a record.
    public init(info: TraceInfo, spansLocation: StoredSpansLocation, expectedSpanCount: Int? = nil) {
        self.info = info
        self.spansLocation = spansLocation
        self.expectedSpanCount = expectedSpanCount
    }
}

/// Decodes what MLflow's read API answers (search pages, `batchGet`, the `traces.json` artifact) into what the live
/// path assembles from an upload, so that a backfilled trace translates to the same OTLP as the live one did:
/// the trace info as the client sent it (`StartTraceV3`, or `StartTrace` + `EndTrace` for v2), spans with their
/// ids, parents and typed attributes as uploaded. Pure.
public enum StoredTraceDecoder {
    /// Tags the MLflow server sets itself (the client never sends them), left out of the exported trace as the live
    /// export never sees them.
    public static let serverTags: Set<String> = ["mlflow.artifactLocation", "mlflow.trace.spansLocation"]
    /// Metadata the MLflow server sets itself (`mlflow.trace.cost` it computes from the token usage when spans are
    /// logged).
    public static let serverMetadata: Set<String> = ["mlflow.trace.infoFinalized", "mlflow.trace.cost"]
    /// Span attributes the MLflow server adds when it stores spans sent to `/v1/traces` (`mlflow.llm.cost`, from the
    /// model and token usage).
    public static let serverSpanAttributes: Set<String> = ["mlflow.llm.cost"]

    /// One page of a trace search (`SearchTracesV3` or the v2 `SearchTraces`; both answer `traces` and
    /// `next_page_token`).
    public struct SearchPage: Sendable {
        /// The traces, in the server's order.
        public var traces: [StoredTraceInfo]
        /// The token of the next page; `nil` on the last one.
        public var nextPageToken: String?
    }

    /// Decodes a search answer.
    /// - Throws: ``WireError`` when the body is not such an answer.
    public static func searchPage(_ body: [UInt8]) throws(WireError) -> SearchPage {
        guard let root = JSONValue(parsing: body), root.objectMembers != nil else {
            throw WireError(.malformedBody, "the search answer is not a JSON object")
        }
        var traces: [StoredTraceInfo] = []
        for (index, element) in (root["traces"]?.arrayValue ?? []).enumerated() {
            guard element.objectMembers != nil else { throw WireError(.malformedBody, "traces[\(index)] is not an object") }
            traces.append(try storedInfo(element))
        }
        let token = root["next_page_token"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        return SearchPage(traces: traces, nextPageToken: token)
    }

    /// Decodes a `TraceInfoV3` object (`trace_id`, …) or a v2 `TraceInfo` (`request_id`, …).
    public static func storedInfo(_ object: JSONValue) throws(WireError) -> StoredTraceInfo {
        var info: TraceInfo
        if object["trace_id"] != nil {
            info = try StartTraceV3Decoder.traceInfo(from: object)
        } else {
            info = try v2Info(object)
        }
        let location: StoredSpansLocation =
            info.tags["mlflow.trace.spansLocation"] == "TRACKING_STORE"
            ? .trackingStore : .artifact(location: info.tags["mlflow.artifactLocation"])
        let expected = info.expectedSpanCount
        for key in serverTags { info.tags[key] = nil }
        for key in serverMetadata { info.metadata[key] = nil }
        return StoredTraceInfo(info: info, spansLocation: location, expectedSpanCount: expected)
    }

    /// A stored v2 record as the live path merges it from `StartTrace` and `EndTrace`: the request id, the
    /// experiment, the final state, metadata and tags.
    static func v2Info(_ object: JSONValue) throws(WireError) -> TraceInfo {
        guard let requestID = object["request_id"]?.stringValue, !requestID.isEmpty else {
            throw WireError(.malformedBody, "a stored trace has neither trace_id nor request_id")
        }
        func pairs(_ key: String) throws(WireError) -> [String: String] {
            guard let value = object[key], value != .null else { return [:] }
            guard let elements = value.arrayValue else { throw WireError(.malformedBody, "\(key) must be a list of {key, value}") }
            var result: [String: String] = [:]
            for element in elements {
                guard let key = element["key"]?.stringValue else { continue }
                result[key] = element["value"]?.stringValue ?? ""
            }
            return result
        }
        var info = TraceInfo(traceID: requestID, experimentID: object["experiment_id"]?.stringValue)
        info.state = object["status"]?.stringValue.map(TraceInfoV2Decoder.stateV3(fromV2:))
        info.metadata = try pairs("request_metadata")
        info.tags = try pairs("tags")
        info.schemaVersion = 2
        info.isFinal = true
        info.expectedSpanCount = TraceInfo.spanCount(sizeStats: info.metadata["mlflow.trace.sizeStats"])
        return info
    }

    /// Decodes a `BatchGetTraces` answer (`{"traces": [{"trace_info": …, "spans": [OTel span as proto JSON]}]}`)
    /// or a `GetTrace` answer (`{"trace": …}`) into spans per MLflow trace id.
    public static func batchGet(_ body: [UInt8]) throws(WireError) -> [String: SpanBatch] {
        guard let root = JSONValue(parsing: body), root.objectMembers != nil else {
            throw WireError(.malformedBody, "the batchGet answer is not a JSON object")
        }
        let traces = root["traces"]?.arrayValue ?? root["trace"].map { [$0] } ?? []
        var result: [String: SpanBatch] = [:]
        for (index, trace) in traces.enumerated() {
            guard let id = trace["trace_info"]?["trace_id"]?.stringValue else {
                throw WireError(.malformedBody, "traces[\(index)].trace_info.trace_id is missing")
            }
            var spans: [Opentelemetry_Proto_Trace_V1_Span] = []
            for (spanIndex, element) in (trace["spans"]?.arrayValue ?? []).enumerated() {
                var span = try span(protoJSON: element, path: "traces[\(index)].spans[\(spanIndex)]")
                span.attributes.removeAll { serverSpanAttributes.contains($0.key) }
                spans.append(span)
            }
            result[id] = try spanBatch(spans)
        }
        return result
    }

    /// One OTel span in protobuf JSON form (field names as in the `.proto`, ids base64, enums by name).
    static func span(protoJSON: JSONValue, path: String) throws(WireError) -> Opentelemetry_Proto_Trace_V1_Span {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        do {
            return try Opentelemetry_Proto_Trace_V1_Span(jsonString: protoJSON.text, options: options)
        } catch {
            throw WireError(.malformedBody, "\(path) is not an OpenTelemetry span: \(error)")
        }
    }

    /// Spans as one batch with the typed attribute encoding the MLflow client's `/v1/traces` upload has; every id
    /// checked as the live decoder checks it.
    static func spanBatch(_ spans: [Opentelemetry_Proto_Trace_V1_Span]) throws(WireError) -> SpanBatch {
        var request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        var scopeSpans = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        scopeSpans.spans = spans
        resourceSpans.scopeSpans = [scopeSpans]
        request.resourceSpans = [resourceSpans]
        return try OTLPRequestDecoder.batches(from: request, experimentID: nil).first ?? SpanBatch(spans: [], encoding: .typed)
    }
}
