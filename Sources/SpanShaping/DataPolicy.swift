import Foundation

/// What one destination may receive and in which shape: semantic conventions, redaction, size limits and
/// routing (the destination's `semconv`, `redaction`, `limits` and `routing` keys).
public struct DataPolicy: Sendable, Equatable {
    /// The attribute conventions emitted, in order (`[mlflow, genai]` by default, so nothing is lost).
    public var conventions: [SemanticConvention]
    /// What is removed or masked before spans leave the proxy.
    public var redaction: RedactionSettings
    /// Size limits of attributes and spans.
    public var limits: SpanSizeLimits
    /// Which traces and spans the destination gets.
    public var routing: RoutingSettings
    /// Datadog: send as LLM Observability (`dd-otlp-source: llmobs`).
    public var datadogLLMObservability: Bool
    /// Resource attributes the destination's profile needs on resources that carry GenAI spans (New Relic's
    /// AI monitoring: `aiEnabledApp=true`).
    public var genAIResourceAttributes: [ResourceAttribute] = []

    /// Creates a policy (by default: MLflow and GenAI attributes, nothing redacted, no limits, everything routed).
    public init(
        conventions: [SemanticConvention] = [.mlflow, .genai], redaction: RedactionSettings = RedactionSettings(),
        limits: SpanSizeLimits = SpanSizeLimits(), routing: RoutingSettings = RoutingSettings(), datadogLLMObservability: Bool = false
    ) {
        self.conventions = conventions
        self.redaction = redaction
        self.limits = limits
        self.routing = routing
        self.datadogLLMObservability = datadogLLMObservability
    }
}

/// Attribute conventions a destination can receive.
public enum SemanticConvention: String, Sendable, Equatable, CaseIterable {
    /// MLflow's own attributes (`mlflow.spanType`, `mlflow.spanInputs`, …) as the proxy translates them.
    case mlflow
    /// The OpenTelemetry GenAI semantic conventions (`gen_ai.*`, v1.37+).
    case genai
    /// OpenInference (Arize Phoenix): `openinference.span.kind`, `input.value`, `llm.*`, …
    case openinference
}

/// Redaction of one destination's spans.
public struct RedactionSettings: Sendable, Equatable {
    /// Attribute key globs (`*`, `?`) whose attributes are dropped.
    public var dropAttributes: [String]
    /// JSON paths (`$.messages[*].content`, `$..content`) whose values are masked inside JSON-valued
    /// inputs, outputs and messages.
    public var maskJSONPaths: [String]
    /// Regular expressions (or `preset:email`, `preset:api_key`, `preset:card_number`) masked in every
    /// string value.
    public var maskPatterns: [String]
    /// Send timings, names, status, models and token counts, and no content.
    public var metadataOnly: Bool

    /// Creates settings (nothing redacted).
    public init(dropAttributes: [String] = [], maskJSONPaths: [String] = [], maskPatterns: [String] = [], metadataOnly: Bool = false) {
        self.dropAttributes = dropAttributes
        self.maskJSONPaths = maskJSONPaths
        self.maskPatterns = maskPatterns
        self.metadataOnly = metadataOnly
    }

    /// Whether anything is redacted.
    public var isEmpty: Bool { dropAttributes.isEmpty && maskJSONPaths.isEmpty && maskPatterns.isEmpty && !metadataOnly }

    /// The built-in patterns, by preset name.
    public static let presets: [String: String] = [
        "email": #"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"#,
        "api_key":
            #"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|gh[pousr]_[A-Za-z0-9]{36,}|xox[abposr]-[A-Za-z0-9-]{10,}|dapi[0-9a-f]{32})\b"#,
        "card_number": #"\b(?:\d[ -]?){12,18}\d\b"#,
    ]
}

/// Size limits of one destination's spans (the request size is `OTLPDestination.maxRequestBytes`).
public struct SpanSizeLimits: Sendable, Equatable {
    /// The longest string attribute value, in characters; longer values are truncated (JSON stays valid).
    public var maxAttributeValueLength: Int?
    /// The most attributes per span; the rest are dropped and counted in the span's `dropped_attributes_count`.
    public var maxAttributesPerSpan: Int?
    /// The most events per span; later ones are dropped and counted in the span's `dropped_events_count`.
    public var maxEventsPerSpan: Int?

    /// Creates limits (none).
    public init(maxAttributeValueLength: Int? = nil, maxAttributesPerSpan: Int? = nil, maxEventsPerSpan: Int? = nil) {
        self.maxAttributeValueLength = maxAttributeValueLength
        self.maxAttributesPerSpan = maxAttributesPerSpan
        self.maxEventsPerSpan = maxEventsPerSpan
    }
}

/// Which traces and spans one destination gets.
public struct RoutingSettings: Sendable, Equatable {
    /// Only traces of these experiments (empty: all).
    public var includeExperimentIDs: [String]
    /// Never traces of these experiments.
    public var excludeExperimentIDs: [String]
    /// Only traces with one of these tags (`key` or `key=value`; empty: all).
    public var includeTags: [String]
    /// Never traces with one of these tags.
    public var excludeTags: [String]
    /// Only spans of these MLflow span types (empty: all).
    public var includeSpanTypes: [String]
    /// Never spans of these span types.
    public var excludeSpanTypes: [String]
    /// The share of traces sent, decided by trace id (every span of a trace goes, or none): 0…1.
    public var sampleRatio: Double

    /// Creates settings (everything routed).
    public init(
        includeExperimentIDs: [String] = [], excludeExperimentIDs: [String] = [], includeTags: [String] = [], excludeTags: [String] = [],
        includeSpanTypes: [String] = [], excludeSpanTypes: [String] = [], sampleRatio: Double = 1
    ) {
        self.includeExperimentIDs = includeExperimentIDs
        self.excludeExperimentIDs = excludeExperimentIDs
        self.includeTags = includeTags
        self.excludeTags = excludeTags
        self.includeSpanTypes = includeSpanTypes
        self.excludeSpanTypes = excludeSpanTypes
        self.sampleRatio = sampleRatio
    }

    /// Whether every trace and span is routed.
    public var routesEverything: Bool { self == RoutingSettings() }
}

/// A string attribute a policy adds to resources.
public struct ResourceAttribute: Sendable, Equatable {
    /// The attribute's key.
    public var key: String
    /// Its value.
    public var value: String
    /// Creates an attribute.
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// A JSON path as redaction uses it: `$`, then `.name`, `['name']`, `[n]`, `[*]`, `.*`, and `..name` (at any
/// depth), for example `$.messages[*].content` or `$..content`.
public struct JSONPath: Sendable, Equatable {
    /// One step of a path.
    public enum Segment: Sendable, Equatable {
        /// An object member.
        case member(String)
        /// An array element (negative: from the end).
        case index(Int)
        /// Every member or element.
        case wildcard
        /// A member of this name at any depth below.
        case descendant(String)
        /// Every value at any depth below.
        case anyDescendant
    }

    /// The steps, in order.
    public var segments: [Segment]

    /// Why a text is not a path this proxy reads.
    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        /// What is wrong, with the position.
        public var reason: String
        /// The reason.
        public var description: String { reason }
    }

    /// Parses a path.
    /// - Throws: the reason the text is not a path this proxy reads.
    public init(parsing text: String) throws(SyntaxError) {
        func fail(_ reason: String) -> SyntaxError { SyntaxError(reason: reason) }
        let characters = Array(text)
        guard characters.first == "$" else { throw fail("a JSON path starts with $") }
        var index = 1
        var segments: [Segment] = []
        func name() -> String {
            var result = ""
            while index < characters.count, characters[index] != ".", characters[index] != "[" {
                result.append(characters[index])
                index += 1
            }
            return result
        }
        while index < characters.count {
            if characters[index] == "." {
                index += 1
                let descendant = index < characters.count && characters[index] == "."
                if descendant { index += 1 }
                if index < characters.count && characters[index] == "*" {
                    index += 1
                    segments.append(descendant ? .anyDescendant : .wildcard)
                    continue
                }
                let member = name()
                guard !member.isEmpty else { throw fail("a name is missing after \".\" at character \(index)") }
                segments.append(descendant ? .descendant(member) : .member(member))
            } else if characters[index] == "[" {
                guard let close = characters[index...].firstIndex(of: "]") else { throw fail("\"[\" is not closed") }
                let inside = String(characters[(index + 1)..<close]).trimmingCharacters(in: .whitespaces)
                index = close + 1
                if inside == "*" {
                    segments.append(.wildcard)
                } else if let number = Int(inside) {
                    segments.append(.index(number))
                } else if inside.count >= 2, let quote = inside.first, quote == "'" || quote == "\"", inside.last == quote {
                    segments.append(.member(String(inside.dropFirst().dropLast())))
                } else {
                    throw fail("expected [*], [n] or ['name'], found [\(inside)]")
                }
            } else {
                throw fail("unexpected \"\(characters[index])\" at character \(index)")
            }
        }
        guard !segments.isEmpty else { throw fail("the path names nothing below $") }
        self.segments = segments
    }
}

/// The configuration loader's check of a redaction JSON path.
public enum JSONPathSyntax {
    /// Why `text` is not a valid path, or `nil`.
    public static func check(_ text: String) -> String? {
        do {
            _ = try JSONPath(parsing: text)
            return nil
        } catch {
            return error.reason
        }
    }
}

/// The configuration loader's check of a redaction pattern.
public enum RegexSyntax {
    /// Why `pattern` is not a valid regular expression, or `nil`.
    public static func check(_ pattern: String) -> String? {
        do {
            _ = try NSRegularExpression(pattern: pattern)
            return nil
        } catch {
            return "\(error.localizedDescription)"
        }
    }
}
