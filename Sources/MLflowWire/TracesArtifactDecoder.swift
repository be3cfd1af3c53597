import Foundation
import JSONText
import OTLPJSON
import OTLPProto
import SwiftProtobuf

/// Decodes the `traces.json` artifact MLflow clients PUT, in both layouts.
///
/// 2.x layout: `{"spans": [{"name", "context": {"trace_id": hex, "span_id": hex}, "parent_id": hex|null,
/// "start_time", "end_time", "status_code", "status_message", "attributes", "events": [{"name", "timestamp",
/// "attributes"}]}], "request", "response"}`. 3.x layout: `{"spans": [{"trace_id": base64, "span_id": base64, "parent_span_id": base64|null|"",
/// "name", "start_time_unix_nano", "end_time_unix_nano", "status": {"code", "message"},
/// "attributes": {key: JSON text}, "events": [...], "links": [...]}]}`. Ids may also be hex, as MLflow's
/// own reader accepts. Span attributes stay JSON text here (``AttributeEncoding/jsonText``); event
/// attributes are native JSON values and are typed here. Event timestamps that 2.x and 3.1.4 clients write
/// in microseconds are normalised to nanoseconds.
public enum TracesArtifactDecoder {
    /// Decodes the artifact into one batch.
    /// - Parameter experimentID: the experiment named by the artifact path, when known.
    public static func decode(_ body: Data, experimentID: String?) throws(WireError) -> SpanBatch {
        guard let root = JSONValue(parsing: [UInt8](body)) else { throw WireError(.malformedBody, "traces.json is not valid JSON") }
        guard root.objectMembers != nil else { throw WireError(.malformedBody, "traces.json must be a JSON object") }
        guard let spanObjects = root["spans"]?.arrayValue else {
            throw WireError(.malformedBody, "traces.json has no \"spans\" array")
        }
        var spans: [Opentelemetry_Proto_Trace_V1_Span] = []
        spans.reserveCapacity(spanObjects.count)
        for (index, element) in spanObjects.enumerated() {
            guard element.objectMembers != nil else { throw WireError(.malformedBody, "spans[\(index)] is not an object") }
            spans.append(try span(from: element, path: "spans[\(index)]"))
        }
        var batch = SpanBatch(spans: spans, encoding: .jsonText, experimentID: experimentID)
        batch.containsWholeTrace = true
        return batch
    }

    static func span(from object: JSONValue, path: String) throws(WireError) -> Opentelemetry_Proto_Trace_V1_Span {
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.name = object["name"]?.stringValue ?? ""
        if let context = object["context"], context.objectMembers != nil {
            // 2.x layout.
            span.traceID = try id(context["trace_id"], bytes: 16, path: "\(path).context.trace_id", required: true)
            span.spanID = try id(context["span_id"], bytes: 8, path: "\(path).context.span_id", required: true)
            span.parentSpanID = try id(object["parent_id"], bytes: 8, path: "\(path).parent_id", required: false)
            span.startTimeUnixNano = try nanos(object["start_time"], path: "\(path).start_time")
            span.endTimeUnixNano = try nanos(object["end_time"], path: "\(path).end_time")
            span.status.code = statusCode(object["status_code"]?.stringValue)
            span.status.message = object["status_message"]?.stringValue ?? ""
        } else {
            span.traceID = try id(object["trace_id"], bytes: 16, path: "\(path).trace_id", required: true)
            span.spanID = try id(object["span_id"], bytes: 8, path: "\(path).span_id", required: true)
            span.parentSpanID = try id(object["parent_span_id"], bytes: 8, path: "\(path).parent_span_id", required: false)
            span.startTimeUnixNano = try nanos(object["start_time_unix_nano"], path: "\(path).start_time_unix_nano")
            span.endTimeUnixNano = try nanos(object["end_time_unix_nano"], path: "\(path).end_time_unix_nano")
            if let status = object["status"], status.objectMembers != nil {
                span.status.code = statusCode(status["code"]?.stringValue)
                span.status.message = status["message"]?.stringValue ?? ""
            }
        }
        if let attributes = object["attributes"]?.objectMembers {
            // Sorted by key, a key written twice keeping its last value (as before, when the object was a dictionary).
            var last: [String: JSONValue] = [:]
            for member in attributes { last[member.key] = member.value }
            for key in last.keys.sorted() {
                guard let text = last[key]?.stringValue else {
                    throw WireError(.malformedBody, "\(path).attributes.\(key) must be a JSON-encoded string")
                }
                span.attributes.append(
                    .with {
                        $0.key = key; $0.value.stringValue = text
                    })
            }
        }
        for (index, event) in (object["events"]?.arrayValue ?? []).enumerated() {
            guard event.objectMembers != nil else { throw WireError(.malformedBody, "\(path).events[\(index)] is not an object") }
            span.events.append(
                .with {
                    $0.name = event["name"]?.stringValue ?? ""
                    $0.timeUnixNano = eventNanos(event["time_unix_nano"] ?? event["timestamp"], spanStart: span.startTimeUnixNano)
                    $0.attributes = JSONAnyValue.keyValues(from: event["attributes"]?.objectMembers ?? [])
                }
            )
        }
        for (index, link) in (object["links"]?.arrayValue ?? []).enumerated() {
            guard link.objectMembers != nil else { throw WireError(.malformedBody, "\(path).links[\(index)] is not an object") }
            var linkTrace = link["trace_id"]
            if let text = linkTrace?.stringValue, let otel = MLflowTraceID.otelTraceID(text) { linkTrace = .string(HexID.string(otel)) }
            span.links.append(
                .with {
                    $0.traceID = (try? id(linkTrace, bytes: 16, path: "", required: true)) ?? Data()
                    $0.spanID = (try? id(link["span_id"], bytes: 8, path: "", required: true)) ?? Data()
                    $0.attributes = JSONAnyValue.keyValues(from: link["attributes"]?.objectMembers ?? [])
                }
            )
        }
        return span
    }

    /// An id given as base64 or hex, of exactly `bytes` bytes; `null`/`""` only when not required.
    static func id(_ value: JSONValue?, bytes: Int, path: String, required: Bool) throws(WireError) -> Data {
        guard let text = value?.stringValue, !text.isEmpty else {
            if required { throw WireError(.invalidID, "\(path) is missing") }
            return Data()
        }
        if text.utf8.count == bytes * 2, let hex = HexID.bytes(text) { return Data(hex) }
        if let decoded = Data(base64Encoded: text), decoded.count == bytes { return decoded }
        throw WireError(.invalidID, "\(path) is not a \(bytes)-byte id in base64 or hex")
    }

    /// A non-negative count of nanoseconds, written as a JSON number (a fraction or exponent is truncated, as
    /// reading it as a 64-bit integer did) or as a decimal string.
    static func nanos(_ value: JSONValue?, path: String) throws(WireError) -> UInt64 {
        switch value {
        case .number(let text):
            if let exact = UInt64(text) { return exact }
            if let double = Double(text), double >= 0, double < 18_446_744_073_709_551_615 { return UInt64(double) }
        case .string(let text):
            if let parsed = UInt64(text) { return parsed }
        default:
            break
        }
        throw WireError(.malformedBody, "\(path) must be a non-negative integer of nanoseconds")
    }

    /// An event time in ns. 2.x and 3.1.4 clients write `SpanEvent` times in microseconds: a time about
    /// 1000× smaller than its span's start is scaled up.
    static func eventNanos(_ value: JSONValue?, spanStart: UInt64) -> UInt64 {
        guard let time = try? nanos(value, path: "") else { return 0 }
        if time > 0, spanStart > 0, time < spanStart / 100 { return time &* 1000 }
        return time
    }

    static func statusCode(_ text: String?) -> Opentelemetry_Proto_Trace_V1_Status.StatusCode {
        switch text {
        case "STATUS_CODE_OK", "OK": .ok
        case "STATUS_CODE_ERROR", "ERROR": .error
        default: .unset
        }
    }
}
