import JSONText
import OTLPProto
import SwiftProtobuf

/// Attribute and span size limits: long values truncated so that JSON stays JSON, attribute counts capped
/// (the span's `dropped_attributes_count` says how many went), and a span too big for a request trimmed.
enum SizeLimiter {
    /// The attribute that lists the keys the proxy truncated on a span.
    static let truncatedAttribute = "mlflow_otel_proxy.truncated"
    /// Appended to a truncated string.
    static let ellipsis = "…"

    /// `text` cut to at most `limit` characters: JSON objects and arrays stay valid JSON (strings inside are
    /// shortened, then trailing elements left out); other text is cut. `nil` when it fits.
    static func truncate(_ text: String, to limit: Int) -> String? {
        guard text.utf8.count > limit, text.count > limit else { return nil }
        if let first = text.utf8.first, first == UInt8(ascii: "{") || first == UInt8(ascii: "["), let json = JSONValue(parsing: text) {
            return truncate(json, to: limit)
        }
        return String(text.prefix(max(limit - 1, 0))) + ellipsis
    }

    static func truncate(_ json: JSONValue, to limit: Int) -> String {
        // The longest string leaf that fits (binary search), every element kept.
        var low = 0
        var high = longestString(in: json)
        var best: String?
        while low <= high {
            let middle = (low + high) / 2
            let candidate = capped(json, stringLength: middle, elements: Int.max).text
            if candidate.count <= limit {
                best = candidate
                low = middle + 1
            } else {
                high = middle - 1
            }
        }
        if let best { return best }
        // Too many elements even with short strings: keep the first elements of every array and object.
        var elements = 64
        while elements > 0 {
            let candidate = capped(json, stringLength: 16, elements: elements).text
            if candidate.count <= limit { return candidate }
            elements /= 2
        }
        switch json {
        case .array: return "[]"
        default: return "{}"
        }
    }

    static func longestString(in json: JSONValue) -> Int {
        switch json {
        case .string(let text): return text.count
        case .array(let values): return values.map(longestString(in:)).max() ?? 0
        case .object(let members): return members.map { longestString(in: $0.value) }.max() ?? 0
        default: return 0
        }
    }

    static func capped(_ json: JSONValue, stringLength: Int, elements: Int) -> JSONValue {
        switch json {
        case .string(let text):
            return text.count > stringLength ? .string(String(text.prefix(stringLength)) + ellipsis) : json
        case .array(let values):
            return .array(values.prefix(elements).map { capped($0, stringLength: stringLength, elements: elements) })
        case .object(let members):
            return .object(members.prefix(elements).map { ($0.key, capped($0.value, stringLength: stringLength, elements: elements)) })
        default:
            return json
        }
    }

    /// Truncates the span's string attributes (and event attributes) longer than `limit` and marks the span.
    /// - Returns: how many values were truncated.
    static func truncateValues(in span: inout Span, limit: Int) -> Int {
        var keys: [String] = []
        span.modifyAttributes { attributes in
            for index in attributes.indices {
                guard case .stringValue(let text)? = attributes[index].value.value, let cut = truncate(text, to: limit) else { continue }
                attributes[index].value.stringValue = cut
                keys.append(attributes[index].key)
            }
        }
        var count = keys.count
        span.modifyEvents { events in
            for event in events.indices {
                for index in events[event].attributes.indices {
                    guard case .stringValue(let text)? = events[event].attributes[index].value.value, let cut = truncate(text, to: limit) else {
                        continue
                    }
                    events[event].attributes[index].value.stringValue = cut
                    count += 1
                }
            }
        }
        if count > 0 { mark(&span, keys: keys.isEmpty ? ["events"] : keys) }
        return count
    }

    /// Records the truncated keys on the span (first, so an attribute-count cap keeps it).
    static func mark(_ span: inout Span, keys: [String]) {
        var all = keys
        if let index = span.attributes.firstIndex(where: { $0.key == truncatedAttribute }) {
            if case .arrayValue(let existing)? = span.attributes[index].value.value {
                all =
                    existing.values.compactMap { value in
                        if case .stringValue(let text)? = value.value { return text }
                        return nil
                    } + keys.filter { key in !existing.values.contains { $0.stringValue == key } }
            }
            span.modifyAttributes { _ = $0.remove(at: index) }
        }
        var marker = KeyValue()
        marker.key = truncatedAttribute
        marker.value.arrayValue = .with { $0.values = all.map { key in .with { $0.stringValue = key } } }
        span.modifyAttributes { $0.insert(marker, at: 0) }
    }

    /// Keeps the first `limit` attributes. - Returns: how many were dropped (added to `dropped_attributes_count`).
    static func capAttributes(of span: inout Span, limit: Int) -> Int {
        guard span.attributes.count > limit else { return 0 }
        let dropped = span.attributes.count - limit
        span.modifyAttributes { $0.removeLast(dropped) }
        span.droppedAttributesCount += UInt32(clamping: dropped)
        return dropped
    }

    /// Keeps the span's first `limit` events (as an OpenTelemetry SDK does) and counts the rest in
    /// `dropped_events_count`. - Returns: how many were dropped.
    static func capEvents(of span: inout Span, limit: Int) -> Int {
        guard span.events.count > limit else { return 0 }
        let dropped = span.events.count - limit
        span.events.removeLast(dropped)
        span.droppedEventsCount += UInt32(clamping: dropped)
        return dropped
    }

    /// Trims a span until its encoding is at most `budget` bytes: its longest values are truncated, halving
    /// the length each round, then trailing attributes and events dropped. - Returns: values changed.
    static func trim(_ span: inout Span, toFit budget: Int) -> Int {
        var changed = 0
        var size = (try? span.serializedBytes() as [UInt8])?.count ?? 0
        var length = max(budget / 2, 64)
        while size > budget && length >= 64 {
            changed += truncateValues(in: &span, limit: length)
            size = (try? span.serializedBytes() as [UInt8])?.count ?? 0
            length /= 2
        }
        while size > budget && !span.events.isEmpty {
            span.events.removeLast()
            span.droppedEventsCount += 1
            changed += 1
            size = (try? span.serializedBytes() as [UInt8])?.count ?? 0
        }
        while size > budget && span.attributes.count > 1 {
            span.attributes.removeLast()
            span.droppedAttributesCount += 1
            changed += 1
            size = (try? span.serializedBytes() as [UInt8])?.count ?? 0
        }
        return changed
    }
}
