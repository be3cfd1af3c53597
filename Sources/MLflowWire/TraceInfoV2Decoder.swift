import Foundation
import JSONText

/// Decodes the v2 trace calls of MLflow 2.x and 3.0–3.3 clients (and the 3.17 client's fallback):
/// `StartTrace` (`POST /api/2.0/mlflow/traces`), its `trace_info` answer, and `EndTrace`
/// (`PATCH /api/2.0/mlflow/traces/{request_id}`). Metadata and tags are lists of `{key, value}` objects.
public enum TraceInfoV2Decoder {
    /// A `StartTrace` request: what the client knows when the root span starts.
    public struct StartTrace: Sendable, Equatable {
        /// `experiment_id`.
        public var experimentID: String?
        /// `timestamp_ms`: the root span's start.
        public var timestampMillis: Int64?
        /// `request_metadata`.
        public var metadata: [(key: String, value: String)]
        /// `tags`.
        public var tags: [(key: String, value: String)]

        /// Equality by value.
        public static func == (lhs: StartTrace, rhs: StartTrace) -> Bool {
            lhs.experimentID == rhs.experimentID && lhs.timestampMillis == rhs.timestampMillis
                && lhs.metadata.map(\.key) == rhs.metadata.map(\.key) && lhs.metadata.map(\.value) == rhs.metadata.map(\.value)
                && lhs.tags.map(\.key) == rhs.tags.map(\.key) && lhs.tags.map(\.value) == rhs.tags.map(\.value)
        }

        /// The trace info this start announces, under the request id the server (or the proxy) assigned.
        public func traceInfo(requestID: String) -> TraceInfo {
            var info = TraceInfo(traceID: requestID, experimentID: experimentID, state: "IN_PROGRESS")
            info.metadata = Dictionary(metadata.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
            info.tags = Dictionary(tags.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
            info.schemaVersion = 2
            info.isFinal = false
            return info
        }
    }

    /// Decodes a `StartTrace` request body.
    public static func decodeStartTrace(_ body: Data) throws(WireError) -> StartTrace {
        let object = try jsonObject(body)
        return StartTrace(
            experimentID: try optionalString(object, "experiment_id"),
            timestampMillis: try optionalInt(object, "timestamp_ms"),
            metadata: try pairs(object, "request_metadata"),
            tags: try pairs(object, "tags")
        )
    }

    /// Decodes an `EndTrace` body into the final trace info of `requestID` (the id in the URL).
    public static func decodeEndTrace(_ body: Data, requestID: String) throws(WireError) -> TraceInfo {
        let object = try jsonObject(body)
        var info = TraceInfo(traceID: requestID)
        info.state = try optionalString(object, "status").map(stateV3(fromV2:))
        info.metadata = Dictionary(try pairs(object, "request_metadata").map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        info.tags = Dictionary(try pairs(object, "tags").map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        info.schemaVersion = 2
        info.isFinal = true
        return info
    }

    /// Reads the `trace_info` of a v2 answer (`{"trace_info": {"request_id": …}}`); `nil` without a request id.
    public static func decodeTraceInfoAnswer(_ body: Data) -> (requestID: String, info: TraceInfo)? {
        guard let object = try? jsonObject(body), let traceInfo = object["trace_info"], traceInfo.objectMembers != nil,
            let requestID = traceInfo["request_id"]?.stringValue, !requestID.isEmpty
        else { return nil }
        var info = TraceInfo(traceID: requestID, experimentID: traceInfo["experiment_id"]?.stringValue)
        info.state = traceInfo["status"]?.stringValue.map(stateV3(fromV2:))
        info.metadata = Dictionary(((try? pairs(traceInfo, "request_metadata")) ?? []).map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        info.tags = Dictionary(((try? pairs(traceInfo, "tags")) ?? []).map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        info.schemaVersion = 2
        info.isFinal = false
        return (requestID, info)
    }

    /// v2 `status` values as v3 `state` values (`TRACE_STATUS_UNSPECIFIED` → `STATE_UNSPECIFIED`).
    public static func stateV3(fromV2 status: String) -> String {
        status == "TRACE_STATUS_UNSPECIFIED" ? "STATE_UNSPECIFIED" : status
    }

    static func jsonObject(_ body: Data) throws(WireError) -> JSONValue {
        guard let parsed = JSONValue(parsing: [UInt8](body)) else { throw WireError(.malformedBody, "the body is not valid JSON") }
        guard parsed.objectMembers != nil else { throw WireError(.malformedBody, "the body must be a JSON object") }
        return parsed
    }

    static func optionalString(_ object: JSONValue, _ key: String) throws(WireError) -> String? {
        guard let value = object[key], value != .null else { return nil }
        guard let text = value.stringValue else { throw WireError(.malformedBody, "\(key) must be a string") }
        return text
    }

    static func optionalInt(_ object: JSONValue, _ key: String) throws(WireError) -> Int64? {
        guard let value = object[key], value != .null else { return nil }
        if case .number(let text) = value {
            if let integer = JSONAnyValue.integer(text) { return integer }
            if let double = Double(text), double.isFinite, abs(double) < 9.2e18 { return Int64(double) }  // truncated, as before
        }
        if let text = value.stringValue, let parsed = Int64(text) { return parsed }
        throw WireError(.malformedBody, "\(key) must be an integer")
    }

    static func pairs(_ object: JSONValue, _ key: String) throws(WireError) -> [(key: String, value: String)] {
        guard let value = object[key], value != .null else { return [] }
        guard let list = value.arrayValue else { throw WireError(.malformedBody, "\(key) must be a list of {key, value} objects") }
        var result: [(key: String, value: String)] = []
        for (index, entry) in list.enumerated() {
            guard entry.objectMembers != nil, let entryKey = entry["key"]?.stringValue else {
                throw WireError(.malformedBody, "\(key)[\(index)] must be an object with a string key")
            }
            result.append((entryKey, entry["value"]?.stringValue ?? ""))
        }
        return result
    }
}
