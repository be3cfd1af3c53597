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
    /// The tag naming where a trace's artifacts are (the server adds it to every trace).
    public static let artifactLocationTag = "mlflow.artifactLocation"
    /// The tag saying the spans are in the tracking store (they came over `/v1/traces`).
    public static let spansLocationTag = "mlflow.trace.spansLocation"

    /// The decoded record, and the body with where the answer's edits go (for echoing the trace info back without
    /// reading it again).
    public struct Decoded: Sendable {
        /// The typed record.
        public var info: TraceInfo
        let body: [UInt8]
        /// Where the `trace_info` object is in the body.
        let infoRange: Range<Int>
        let tagsPlace: TagsPlace

        /// Where the answer's tags go.
        enum TagsPlace: Sendable {
            /// Into the `tags` object (its closing brace at `close`, `members` in it): the first member of a tag the
            /// answer sets has its value (that range) replaced; a tag it does not have is added before the brace.
            case object(close: Int, members: Int, artifactLocation: Range<Int>?, spansLocation: Range<Int>?)
            /// `"tags": null`: the value (that range) replaced by an object.
            case replace(Range<Int>)
            /// No `tags` member: one added before `trace_info`'s closing brace (at that position).
            case append(beforeInfoEnd: Int)
        }

        /// The `StartTraceV3` answer: `{"trace": {"trace_info": …}}` with the client's `trace_info` as it was sent,
        /// and the tags the MLflow server adds set in it (`mlflow.artifactLocation`; `mlflow.trace.spansLocation =
        /// TRACKING_STORE` when `hadSpans`), replacing a tag of the same key, as ``StartTraceV3Decoder/answerAsTree(info:traceInfoObject:hadSpans:)`` does.
        public func answer(hadSpans: Bool) -> [UInt8] {
            let artifactLocation = StartTraceV3Decoder.artifactLocation(of: info)
            var edits: [(range: Range<Int>, text: [UInt8])] = []
            func member(_ key: String, _ value: String) -> [UInt8] {
                var text: [UInt8] = []
                JSONValue.writeString(key, to: &text)
                text.append(UInt8(ascii: ":"))
                JSONValue.writeString(value, to: &text)
                return text
            }
            /// A tags object of the added tags alone (in place of `null`, or as a new `tags` member).
            func tagsObject(_ tags: [(String, String)]) -> [UInt8] {
                [UInt8(ascii: "{")] + tags.map { member($0.0, $0.1) }.joined(separator: [UInt8(ascii: ",")]) + [UInt8(ascii: "}")]
            }
            let added = [(artifactLocationTag, artifactLocation)] + (hadSpans ? [(spansLocationTag, "TRACKING_STORE")] : [])
            switch tagsPlace {
            case .object(let close, let members, let artifactRange, let spansRange):
                var appended: [UInt8] = []
                var count = members
                for (key, value) in added {
                    if let range = key == artifactLocationTag ? artifactRange : spansRange {
                        var text: [UInt8] = []
                        JSONValue.writeString(value, to: &text)
                        edits.append((range, text))
                    } else {
                        if count > 0 { appended.append(UInt8(ascii: ",")) }
                        appended += member(key, value)
                        count += 1
                    }
                }
                if !appended.isEmpty { edits.append((close..<close, appended)) }
            case .replace(let range): edits.append((range, tagsObject(added)))
            case .append(let position): edits.append((position..<position, Array(#","tags":"#.utf8) + tagsObject(added)))
            }
            edits.sort { $0.range.lowerBound < $1.range.lowerBound }
            var output: [UInt8] = []
            output.reserveCapacity(infoRange.count + 256)
            output += #"{"trace":{"trace_info":"#.utf8
            var position = infoRange.lowerBound
            for edit in edits {
                output += body[position..<edit.range.lowerBound]
                output += edit.text
                position = edit.range.upperBound
            }
            output += body[position..<infoRange.upperBound]
            output += "}}".utf8
            return output
        }
    }

    /// The artifact location the answer names: `mlflow-artifacts:/<experiment>/traces/<trace id>/artifacts`.
    static func artifactLocation(of info: TraceInfo) -> String {
        "mlflow-artifacts:/\(info.experimentID ?? "0")/traces/\(info.traceID)/artifacts"
    }

    /// Decodes the body (one pass over its bytes: ``StartTraceV3Reader``).
    /// - Throws: ``WireError`` when the body is not JSON, lacks `trace.trace_info.trace_id`, or a field has the wrong type.
    public static func decode(_ body: [UInt8]) throws(WireError) -> Decoded {
        var reader = StartTraceV3Reader(body)
        return try reader.read()
    }

    /// Decodes the body.
    public static func decode(_ body: Data) throws(WireError) -> Decoded { try decode([UInt8](body)) }

    /// The same reading through a ``JSONValue`` tree: the record and the `trace_info` object, or the same error.
    /// The reference the one-pass reading is checked against (and the reading of stored trace infos).
    package static func decodeAsTree(_ body: [UInt8]) throws(WireError) -> (info: TraceInfo, traceInfoObject: JSONValue) {
        guard let root = JSONValue(parsing: body) else { throw WireError(.malformedBody, "the body is not valid JSON") }
        guard root.objectMembers != nil else { throw WireError(.malformedBody, "the body must be a JSON object") }
        guard let infoObject = root["trace"]?["trace_info"], infoObject.objectMembers != nil else {
            throw WireError(.malformedBody, "the body must contain trace.trace_info")
        }
        return (try traceInfo(from: infoObject), infoObject)
    }

    /// The answer ``Decoded/answer(hadSpans:)`` gives, built as a tree from ``decodeAsTree(_:)``'s object (the reference
    /// the splice is checked against).
    package static func answerAsTree(info: TraceInfo, traceInfoObject: JSONValue, hadSpans: Bool) -> JSONValue {
        var tags = JSONValue.object(traceInfoObject["tags"]?.objectMembers ?? [])
        tags = tags.setting(artifactLocationTag, to: .string(artifactLocation(of: info)))
        if hadSpans { tags = tags.setting(spansLocationTag, to: .string("TRACKING_STORE")) }
        return .object([("trace", .object([("trace_info", traceInfoObject.setting("tags", to: tags))]))])
    }

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
