import Foundation
import JSONText
import OTLPProto

/// One destination's redaction (its `redaction` key): attributes dropped by key glob, values masked at JSON
/// paths inside content and by regular expression everywhere, or everything but metadata removed.
struct Redactor: Sendable {
    /// What masked values are replaced with.
    static let mask = "***"
    /// Attributes holding content as JSON (inputs, outputs, messages), where JSON paths apply.
    static let contentKeys: Set<String> = [
        "mlflow.spanInputs", "mlflow.spanOutputs", "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
        "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.retrieval.documents", "input.value", "output.value",
        "tool.parameters",
    ]

    let dropPatterns: [NSRegularExpression]
    let paths: [JSONPath]
    let patterns: [NSRegularExpression]
    let metadataOnly: Bool

    /// Builds the redactor; settings were validated with the configuration, so nothing here fails for them.
    init(_ settings: RedactionSettings) {
        dropPatterns = settings.dropAttributes.compactMap { glob in
            let escaped = NSRegularExpression.escapedPattern(for: glob).replacingOccurrences(of: "\\*", with: ".*").replacingOccurrences(
                of: "\\?", with: ".")
            return try? NSRegularExpression(pattern: "^\(escaped)$")
        }
        paths = settings.maskJSONPaths.compactMap { try? JSONPath(parsing: $0) }
        patterns = settings.maskPatterns.compactMap { pattern in
            let source = pattern.hasPrefix("preset:") ? RedactionSettings.presets[String(pattern.dropFirst("preset:".count))] : pattern
            return source.flatMap { try? NSRegularExpression(pattern: $0) }
        }
        metadataOnly = settings.metadataOnly
    }

    /// Whether any regex masks values.
    var hasPatterns: Bool { !patterns.isEmpty }

    var isEmpty: Bool { dropPatterns.isEmpty && paths.isEmpty && patterns.isEmpty && !metadataOnly }

    /// Masks the JSON paths inside the span's content attributes. - Returns: how many values were masked.
    func maskPaths(in span: inout Span) -> Int {
        guard !paths.isEmpty else { return 0 }
        return span.modifyAttributes { attributes in
            var masked = 0
            for index in attributes.indices where Self.contentKeys.contains(attributes[index].key) {
                guard case .stringValue(let text)? = attributes[index].value.value, var json = JSONValue(parsing: text) else { continue }
                var count = 0
                for path in paths { count += Self.mask(path.segments[...], in: &json) }
                if count > 0 {
                    attributes[index].value.stringValue = json.text
                    masked += count
                }
            }
            return masked
        }
    }

    static func mask(_ segments: ArraySlice<JSONPath.Segment>, in value: inout JSONValue) -> Int {
        guard let segment = segments.first else {
            if value == .string(mask) { return 0 }
            value = .string(mask)
            return 1
        }
        let rest = segments.dropFirst()
        var count = 0
        switch (segment, value) {
        case (.member(let name), .object(var members)):
            for index in members.indices where members[index].key == name { count += mask(rest, in: &members[index].value) }
            value = .object(members)
        case (.index(let position), .array(var values)):
            let index = position < 0 ? values.count + position : position
            if values.indices.contains(index) { count += mask(rest, in: &values[index]) }
            value = .array(values)
        case (.wildcard, .array(var values)):
            for index in values.indices { count += mask(rest, in: &values[index]) }
            value = .array(values)
        case (.wildcard, .object(var members)):
            for index in members.indices { count += mask(rest, in: &members[index].value) }
            value = .object(members)
        case (.descendant(let name), .object(var members)):
            for index in members.indices {
                if members[index].key == name {
                    count += mask(rest, in: &members[index].value)
                } else {
                    count += mask(segments, in: &members[index].value)
                }
            }
            value = .object(members)
        case (.descendant, .array(var values)):
            for index in values.indices { count += mask(segments, in: &values[index]) }
            value = .array(values)
        case (.anyDescendant, .object(var members)):
            for index in members.indices { count += mask(rest, in: &members[index].value) + mask(segments, in: &members[index].value) }
            value = .object(members)
        case (.anyDescendant, .array(var values)):
            for index in values.indices { count += mask(rest, in: &values[index]) + mask(segments, in: &values[index]) }
            value = .array(values)
        default:
            break
        }
        return count
    }

    /// Masks every match of the patterns in the span's string values (JSON values leaf by leaf, so they stay
    /// JSON), its event attributes and its status message. - Returns: how many values changed.
    func maskPatterns(in span: inout Span) -> Int {
        guard !patterns.isEmpty else { return 0 }
        var masked = span.modifyAttributes { attributes in
            var masked = 0
            for index in attributes.indices { masked += maskPatterns(in: &attributes[index].value) }
            return masked
        }
        masked += span.modifyEvents { events in
            var masked = 0
            for event in events.indices {
                for index in events[event].attributes.indices { masked += maskPatterns(in: &events[event].attributes[index].value) }
            }
            return masked
        }
        if !span.status.message.isEmpty, let replaced = replaceMatches(span.status.message) {
            span.status.message = replaced
            masked += 1
        }
        return masked
    }

    private func maskPatterns(in value: inout AnyValue) -> Int {
        switch value.value {
        case .stringValue(let text):
            if let first = text.utf8.first, first == UInt8(ascii: "{") || first == UInt8(ascii: "["), var json = JSONValue(parsing: text) {
                let count = maskLeaves(in: &json)
                if count > 0 { value.stringValue = json.text }
                return count
            }
            guard let replaced = replaceMatches(text) else { return 0 }
            value.stringValue = replaced
            return 1
        case .arrayValue(var array):
            var count = 0
            for index in array.values.indices { count += maskPatterns(in: &array.values[index]) }
            if count > 0 { value.arrayValue = array }
            return count
        case .kvlistValue(var list):
            var count = 0
            for index in list.values.indices { count += maskPatterns(in: &list.values[index].value) }
            if count > 0 { value.kvlistValue = list }
            return count
        default:
            return 0
        }
    }

    private func maskLeaves(in value: inout JSONValue) -> Int {
        switch value {
        case .string(let text):
            guard let replaced = replaceMatches(text) else { return 0 }
            value = .string(replaced)
            return 1
        case .array(var values):
            var count = 0
            for index in values.indices { count += maskLeaves(in: &values[index]) }
            value = .array(values)
            return count
        case .object(var members):
            var count = 0
            for index in members.indices { count += maskLeaves(in: &members[index].value) }
            value = .object(members)
            return count
        default:
            return 0
        }
    }

    /// The text with every match masked, or `nil` when nothing matched.
    func replaceMatches(_ text: String) -> String? {
        var result = text
        var changed = false
        for pattern in patterns {
            let range = NSRange(result.startIndex..., in: result)
            guard pattern.firstMatch(in: result, range: range) != nil else { continue }
            result = pattern.stringByReplacingMatches(in: result, range: range, withTemplate: Self.mask)
            changed = true
        }
        return changed ? result : nil
    }

    /// Drops the attributes whose keys match a glob. - Returns: how many were dropped.
    func dropAttributes(in span: inout Span) -> Int {
        guard !dropPatterns.isEmpty else { return 0 }
        let before = span.attributes.count
        span.modifyAttributes { attributes in
            attributes.removeAll { attribute in
                let range = NSRange(attribute.key.startIndex..., in: attribute.key)
                return dropPatterns.contains { $0.firstMatch(in: attribute.key, range: range) != nil }
            }
        }
        return before - span.attributes.count
    }

    /// Keys kept by `metadata_only`: names, types, models, providers, token counts, ids, tags; no content.
    static func isMetadata(_ key: String) -> Bool {
        if contentKeys.contains(key) || key.contains("preview") || key.contains("Preview") { return false }
        if key.hasPrefix("gen_ai.") {
            return ![
                "gen_ai.retrieval.query.text", "gen_ai.tool.definitions", "gen_ai.input.messages", "gen_ai.output.messages",
                "gen_ai.system_instructions",
            ]
            .contains(key)
        }
        if key.hasPrefix("mlflow.trace.metadata.") { return !key.hasSuffix("traceInputs") && !key.hasSuffix("traceOutputs") }
        let kept: Set<String> = [
            "mlflow.spanType", "mlflow.traceRequestId", "mlflow.spanFunctionName", "mlflow.llm.model", "mlflow.llm.provider", "mlflow.llm.cost",
            "mlflow.chat.tokenUsage", "mlflow.message.format", "mlflow.spanLogLevel", "mlflow.trace_id", "mlflow.trace.state",
            "mlflow.trace.client_request_id", "session.id", "user.id", "openinference.span.kind", "llm.model_name", "llm.provider", "llm.system",
            "embedding.model_name", "tool.name", "mlflow.experimentId",
        ]
        return kept.contains(key) || key.hasPrefix("mlflow.trace.tag.") || key.hasPrefix("llm.token_count.") || key.hasPrefix("mlflow_otel_proxy.")
    }

    /// Removes everything but metadata from the span: content attributes, and event attributes other than
    /// the exception type. - Returns: how many attributes were removed.
    func stripContent(of span: inout Span) -> Int {
        guard metadataOnly else { return 0 }
        let before = span.attributes.count + span.events.reduce(0) { $0 + $1.attributes.count }
        span.modifyAttributes { $0.removeAll { !Self.isMetadata($0.key) } }
        span.modifyEvents { events in
            for index in events.indices { events[index].attributes.removeAll { $0.key != "exception.type" } }
        }
        return before - span.attributes.count - span.events.reduce(0) { $0 + $1.attributes.count }
    }
}
