import Foundation
import JSONText
import OTLPJSON

/// The trace-level record MLflow 3.x clients send with `StartTraceV3` (`mlflow.TraceInfoV3`).
///
/// Only what the proxy uses is typed; `rawJSON` keeps the object as received so answers can echo it.
public struct TraceInfo: Sendable, Equatable {
    /// The MLflow trace id, `tr-` + 32 hex digits for 3.x clients.
    public var traceID: String
    /// `client_request_id`, set through `update_current_trace(client_request_id=…)`.
    public var clientRequestID: String?
    /// `trace_location.mlflow_experiment.experiment_id`.
    public var experimentID: String?
    /// `request_time` (RFC 3339).
    public var requestTime: String?
    /// `execution_duration` (`"1.5s"`).
    public var executionDuration: String?
    /// `state`: `OK`, `ERROR`, `IN_PROGRESS` or `STATE_UNSPECIFIED`.
    public var state: String?
    /// `trace_metadata` (all values are strings, some holding JSON).
    public var metadata: [String: String]
    /// `tags`.
    public var tags: [String: String]
    /// `request_preview`.
    public var requestPreview: String?
    /// `response_preview`.
    public var responsePreview: String?
    /// 3 for `StartTraceV3` records; 2 for the v2 calls (`StartTrace`, `EndTrace`), whose `traceID` is the
    /// server-assigned request id, unrelated to the spans' OTel trace id.
    public var schemaVersion = 3
    /// Whether the record describes the finished trace (`StartTraceV3`, `EndTrace`) rather than its start
    /// (v2 `StartTrace`); a trace is not complete before a final record arrived.
    public var isFinal = true

    /// Creates a record.
    public init(
        traceID: String, clientRequestID: String? = nil, experimentID: String? = nil, requestTime: String? = nil,
        executionDuration: String? = nil, state: String? = nil, metadata: [String: String] = [:], tags: [String: String] = [:],
        requestPreview: String? = nil, responsePreview: String? = nil
    ) {
        self.traceID = traceID
        self.clientRequestID = clientRequestID
        self.experimentID = experimentID
        self.requestTime = requestTime
        self.executionDuration = executionDuration
        self.state = state
        self.metadata = metadata
        self.tags = tags
        self.requestPreview = requestPreview
        self.responsePreview = responsePreview
    }

    /// Folds a later part of the same trace's record into this one: tags and metadata are merged (the later
    /// value wins), set fields replace unset ones, and the MLflow id becomes the v2 request id when either part
    /// has one, because that is the id the MLflow server stores the trace under.
    public mutating func merge(_ other: TraceInfo) {
        if other.schemaVersion == 2 {
            traceID = other.traceID
            schemaVersion = 2
        }
        clientRequestID = other.clientRequestID ?? clientRequestID
        experimentID = other.experimentID ?? experimentID
        requestTime = other.requestTime ?? requestTime
        executionDuration = other.executionDuration ?? executionDuration
        if let state = other.state, other.isFinal || self.state == nil { self.state = state }
        metadata.merge(other.metadata) { $1 }
        tags.merge(other.tags) { $1 }
        requestPreview = other.requestPreview ?? requestPreview
        responsePreview = other.responsePreview ?? responsePreview
        expectedSpanCount = other.expectedSpanCount ?? expectedSpanCount
        isFinal = isFinal || other.isFinal
    }

    /// About how many bytes the record holds (its strings, plus a fixed cost per field and entry), for the
    /// assembler's memory bound.
    public var approximateBytes: Int {
        let fields = [clientRequestID, experimentID, requestTime, executionDuration, state, requestPreview, responsePreview]
        var total = 256 + traceID.utf8.count + fields.reduce(0) { $0 + ($1?.utf8.count ?? 0) }
        for (key, value) in metadata { total += 64 + key.utf8.count + value.utf8.count }
        for (key, value) in tags { total += 64 + key.utf8.count + value.utf8.count }
        return total
    }

    /// The 16-byte OTel trace id inside a `tr-<32 hex>` id, or `nil` for other id shapes (v2 UUIDs, v4 ids).
    public var otelTraceID: [UInt8]? { MLflowTraceID.otelTraceID(traceID) }

    /// How many spans the client says the trace has (`mlflow.trace.sizeStats.num_spans`), when it says so.
    /// Read once when the record is decoded (``StartTraceV3Decoder``), not on every readiness check.
    public var expectedSpanCount: Int?

    /// `num_spans` of a `mlflow.trace.sizeStats` metadata value.
    public static func spanCount(sizeStats: String?) -> Int? {
        guard let stats = sizeStats, let count = JSONValue(parsing: stats)?["num_spans"]?.intValue else { return nil }
        return Int(exactly: count)
    }
}

/// MLflow trace-id shapes.
public enum MLflowTraceID {
    /// The OTel trace id in `tr-<32 hex>`, or `nil`.
    public static func otelTraceID(_ id: String) -> [UInt8]? {
        guard id.hasPrefix("tr-"), id.utf8.count == 35 else { return nil }
        guard let bytes = HexID.bytes(id.dropFirst(3)) else { return nil }
        return bytes
    }

    /// `tr-` + lower-case hex of a 16-byte OTel trace id.
    public static func from(otelTraceID bytes: some Sequence<UInt8>) -> String { "tr-" + HexID.string(bytes) }
}

/// Decodes the `StartTraceV3` request body `{"trace": {"trace_info": {…}}}`.
public enum StartTraceV3Decoder {
    /// The decoded record and the `trace_info` object as parsed (for echoing it back without parsing again).
    public struct Decoded: Sendable {
        /// The typed record.
        public var info: TraceInfo
        /// The `trace_info` JSON object, members in the client's order.
        public var traceInfoObject: JSONValue
    }

    /// Decodes the body.
    /// - Throws: ``WireError`` when the body is not JSON, lacks `trace.trace_info.trace_id`, or a field has the wrong type.
    public static func decode(_ body: [UInt8]) throws(WireError) -> Decoded {
        guard let root = JSONValue(parsing: body) else { throw WireError(.malformedBody, "the body is not valid JSON") }
        guard root.objectMembers != nil else { throw WireError(.malformedBody, "the body must be a JSON object") }
        guard let infoObject = root["trace"]?["trace_info"], infoObject.objectMembers != nil else {
            throw WireError(.malformedBody, "the body must contain trace.trace_info")
        }
        return Decoded(info: try traceInfo(from: infoObject), traceInfoObject: infoObject)
    }

    /// Decodes the body.
    public static func decode(_ body: Data) throws(WireError) -> Decoded { try decode([UInt8](body)) }

    /// Reads a `TraceInfoV3` JSON object.
    public static func traceInfo(from object: JSONValue) throws(WireError) -> TraceInfo {
        guard let traceID = object["trace_id"]?.stringValue, !traceID.isEmpty else {
            throw WireError(.malformedBody, "trace_info.trace_id is missing or not a string")
        }
        func string(_ key: String) throws(WireError) -> String? {
            guard let value = object[key], value != .null else { return nil }
            guard let text = value.stringValue else { throw WireError(.malformedBody, "trace_info.\(key) must be a string") }
            return text
        }
        func map(_ key: String) throws(WireError) -> [String: String] {
            guard let value = object[key], value != .null else { return [:] }
            guard let members = value.objectMembers else { throw WireError(.malformedBody, "trace_info.\(key) must be an object") }
            var result: [String: String] = [:]
            result.reserveCapacity(members.count)
            for (entryKey, entryValue) in members {
                guard let text = entryValue.stringValue else {
                    throw WireError(.malformedBody, "trace_info.\(key).\(entryKey) must be a string")
                }
                result[entryKey] = text
            }
            return result
        }
        let experiment = object["trace_location"]?["mlflow_experiment"]?["experiment_id"]?.stringValue
        var info = TraceInfo(
            traceID: traceID,
            clientRequestID: try string("client_request_id"),
            experimentID: experiment,
            requestTime: try string("request_time"),
            executionDuration: try string("execution_duration"),
            state: try string("state"),
            metadata: try map("trace_metadata"),
            tags: try map("tags"),
            requestPreview: try string("request_preview"),
            responsePreview: try string("response_preview")
        )
        info.expectedSpanCount = TraceInfo.spanCount(sizeStats: info.metadata["mlflow.trace.sizeStats"])
        return info
    }
}
