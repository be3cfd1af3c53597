import Foundation
import JSONText
import OTLPProto
import SwiftProtobuf

/// Aggregates exported spans into the histograms the proxy exports over OTLP:
///
/// - `mlflow.trace.span.duration` (ms), as MLflow's own `mlflow.tracing` meter records it: attributes `root`,
///   `span_type`, `span_status`, `experiment_id`, and — only when configured, they explode cardinality —
///   `tags.<key>` / `metadata.<key>` of the trace; MLflow's bucket bounds.
/// - `gen_ai.client.token.usage` ({token}, by `gen_ai.token.type`) and `gen_ai.client.operation.duration` (s)
///   for model spans (LLM, CHAT_MODEL, EMBEDDING) that carry token usage, with the GenAI conventions' bounds.
///
/// Pure: the caller passes times and decides when to collect.
public struct SpanMetricsAggregator: Sendable {
    /// MLflow's explicit bounds for span durations (ms).
    public static let spanDurationBounds: [Double] = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]
    /// The GenAI conventions' advisory bounds for token counts.
    public static let tokenUsageBounds: [Double] = [
        1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864,
    ]
    /// The GenAI conventions' advisory bounds for operation durations (s).
    public static let operationDurationBounds: [Double] = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]

    struct Point: Sendable {
        var attributes: [Opentelemetry_Proto_Common_V1_KeyValue]
        var count: UInt64 = 0
        var sum: Double = 0
        var min = Double.infinity
        var max = -Double.infinity
        var buckets: [UInt64]

        mutating func record(_ value: Double, bounds: [Double]) {
            count += 1
            sum += value
            min = Swift.min(min, value)
            max = Swift.max(max, value)
            let index = bounds.firstIndex { value <= $0 } ?? bounds.count
            buckets[index] += 1
        }
    }

    /// A point's identity: its attributes written one after the other as `name=<typed value>`, separated by U+001F,
    /// in UTF-8 bytes (hashed in bulk; written without building strings, a tenth of the span metrics' work when
    /// they were strings).
    struct PointKey: Hashable, Sendable {
        private(set) var bytes: [UInt8] = []

        init() { bytes.reserveCapacity(128) }

        /// Appends one attribute.
        mutating func append(_ name: String, _ value: Opentelemetry_Proto_Common_V1_AnyValue) {
            switch value.value {
            case .stringValue(let string): append(name, string: string)
            case .boolValue(let flag): append(name, bool: flag)
            case .intValue(let number): append(name, typed: "i:", "\(number)")
            default: append(name, typed: "", "\(value)")
            }
        }

        /// Appends a string attribute, as ``append(_:_:)`` writes one.
        mutating func append(_ name: String, string: String) { append(name, typed: "s:", string) }

        /// Appends a bool attribute, as ``append(_:_:)`` writes one.
        mutating func append(_ name: String, bool: Bool) { append(name, typed: "b:", bool ? "true" : "false") }

        /// Appends the attributes another key holds, after this key's.
        mutating func append(_ other: PointKey) {
            guard !other.bytes.isEmpty else { return }
            if !bytes.isEmpty { bytes.append(0x1F) }
            bytes.append(contentsOf: other.bytes)
        }

        private mutating func append(_ name: String, typed type: StaticString, _ text: String) {
            if !bytes.isEmpty { bytes.append(0x1F) }
            bytes.append(contentsOf: name.utf8)
            bytes.append(UInt8(ascii: "="))
            bytes.appendLiteral(type)
            bytes.append(contentsOf: text.utf8)
        }

        func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
    }

    struct Histogram: Sendable {
        let name: String
        let unit: String
        let description: String
        let bounds: [Double]
        /// The points in the order they first appeared, found by their key.
        var points: [Point] = []
        var index: [PointKey: Int] = [:]

        /// Records a value under attributes given as they are, keyed by each in order.
        mutating func record(_ value: Double, attributes: [Opentelemetry_Proto_Common_V1_KeyValue]) {
            var key = PointKey()
            for attribute in attributes { key.append(attribute.key, attribute.value) }
            record(value, key: key, attributes: attributes)
        }

        /// Records a value under `key`, the attributes' key (each appended in order); the attributes are built only
        /// when the key is new, so a span recorded into an existing point allocates none.
        mutating func record(_ value: Double, key: PointKey, attributes: @autoclosure () -> [Opentelemetry_Proto_Common_V1_KeyValue]) {
            if let position = index[key] {
                points[position].record(value, bounds: bounds)
                return
            }
            var point = Point(attributes: attributes(), buckets: Array(repeating: 0, count: bounds.count + 1))
            point.record(value, bounds: bounds)
            index[key] = points.count
            points.append(point)
        }

        mutating func reset() {
            points = []
            index = [:]
        }
    }

    /// Trace tag keys added as `tags.<key>`.
    public let traceTagKeys: [String]
    /// Trace metadata keys added as `metadata.<key>`.
    public let traceMetadataKeys: [String]
    private var spanDuration = Histogram(
        name: "mlflow.trace.span.duration", unit: "ms", description: "Duration of spans in milliseconds", bounds: spanDurationBounds
    )
    private var tokenUsage = Histogram(
        name: "gen_ai.client.token.usage", unit: "{token}", description: "Number of input and output tokens used", bounds: tokenUsageBounds
    )
    private var operationDuration = Histogram(
        name: "gen_ai.client.operation.duration", unit: "s", description: "GenAI operation duration", bounds: operationDurationBounds
    )
    private var periodStart: UInt64

    /// Where translation puts a trace's tags and metadata on its root span (``OTLPTranslation``'s `RootAttribute`).
    static let tagPrefix = "mlflow.trace.tag."
    static let metadataPrefix = "mlflow.trace.metadata."

    /// Creates an empty aggregator whose first period starts at `startTimeUnixNano`.
    public init(startTimeUnixNano: UInt64, traceTagKeys: [String] = [], traceMetadataKeys: [String] = []) {
        periodStart = startTimeUnixNano
        self.traceTagKeys = traceTagKeys
        self.traceMetadataKeys = traceMetadataKeys
    }

    /// Records the spans of one translated trace. Trace tags and metadata are read where translation put them, on
    /// the root span (`mlflow.trace.tag.<key>`, `mlflow.trace.metadata.<key>`); the experiment from the resource.
    public mutating func record(_ resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) {
        var traceAttributes: [Opentelemetry_Proto_Common_V1_KeyValue] = []
        if !traceTagKeys.isEmpty || !traceMetadataKeys.isEmpty,
            let root = resourceSpans.lazy.flatMap(\.scopeSpans).flatMap(\.spans).first(where: \.parentSpanID.isEmpty)
        {
            let rootAttributes = Dictionary(root.attributes.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
            for key in traceTagKeys {
                if let value = rootAttributes[Self.tagPrefix + key]?.stringValue { traceAttributes.append(Self.string("tags.\(key)", value)) }
            }
            for key in traceMetadataKeys {
                if let value = rootAttributes[Self.metadataPrefix + key]?.stringValue {
                    traceAttributes.append(Self.string("metadata.\(key)", value))
                }
            }
        }
        // The trace's part of every span's point key, written once (as ``Histogram`` writes the attributes).
        var traceKey = PointKey()
        for attribute in traceAttributes { traceKey.append(attribute.key, attribute.value) }
        for item in resourceSpans {
            let experiment = item.resource.attributes.first { $0.key == "mlflow.experiment_id" }?.value.stringValue ?? ""
            for scopeSpans in item.scopeSpans {
                for span in scopeSpans.spans {
                    // A span has a few dozen attributes at most and four are read: a scan, not a dictionary.
                    let attributes = span.attributes
                    let spanType = Self.first("mlflow.spanType", in: attributes)?.stringValue ?? "UNKNOWN"
                    let status: String
                    switch span.status.code {
                    case .ok: status = "OK"
                    case .error: status = "ERROR"
                    default: status = "UNSET"
                    }
                    let nanos = span.endTimeUnixNano >= span.startTimeUnixNano ? span.endTimeUnixNano - span.startTimeUnixNano : 0
                    let isRoot = span.parentSpanID.isEmpty
                    var key = PointKey()
                    key.append("root", bool: isRoot)
                    key.append("span_type", string: spanType)
                    key.append("span_status", string: status)
                    key.append("experiment_id", string: experiment)
                    key.append(traceKey)
                    spanDuration.record(
                        Double(nanos) / 1_000_000, key: key,
                        attributes: [
                            Self.bool("root", isRoot), Self.string("span_type", spanType), Self.string("span_status", status),
                            Self.string("experiment_id", experiment),
                        ] + traceAttributes
                    )
                    recordGenAI(spanType: spanType, status: status, seconds: Double(nanos) / 1e9, attributes: attributes)
                }
            }
        }
    }

    /// The value of the first attribute named `key` (the first wins, as in the translator's output).
    static func first(_ key: String, in attributes: [Opentelemetry_Proto_Common_V1_KeyValue]) -> Opentelemetry_Proto_Common_V1_AnyValue? {
        let length = key.utf8.count  // keys told apart by length before text
        return attributes.first { $0.key.utf8.count == length && $0.key == key }?.value
    }

    static let genAIOperations = ["CHAT_MODEL": "chat", "LLM": "generate_content", "EMBEDDING": "embeddings"]

    /// Records a model span's duration and token counts. Point keys are written straight from the values (as
    /// ``Histogram/record(_:attributes:)`` writes them from attributes), and the attributes are built only for a new
    /// point, as for span durations.
    private mutating func recordGenAI(spanType: String, status: String, seconds: Double, attributes: [Opentelemetry_Proto_Common_V1_KeyValue]) {
        guard let operation = Self.genAIOperations[spanType], let usageText = Self.first("mlflow.chat.tokenUsage", in: attributes)?.stringValue,
            let usage = JSONValue(parsing: usageText), usage.objectMembers != nil
        else { return }
        let provider = Self.first("mlflow.llm.provider", in: attributes)?.stringValue ?? ""
        let model = Self.first("mlflow.llm.model", in: attributes)?.stringValue ?? ""
        var commonKey = PointKey()
        commonKey.append("gen_ai.operation.name", string: operation)
        if !provider.isEmpty { commonKey.append("gen_ai.provider.name", string: provider) }
        if !model.isEmpty { commonKey.append("gen_ai.request.model", string: model) }
        func common() -> [Opentelemetry_Proto_Common_V1_KeyValue] {
            var common = [Self.string("gen_ai.operation.name", operation)]
            if !provider.isEmpty { common.append(Self.string("gen_ai.provider.name", provider)) }
            if !model.isEmpty { common.append(Self.string("gen_ai.request.model", model)) }
            return common
        }
        var durationKey = commonKey
        let failed = status == "ERROR"
        if failed { durationKey.append("error.type", string: "_OTHER") }
        operationDuration.record(seconds, key: durationKey, attributes: common() + (failed ? [Self.string("error.type", "_OTHER")] : []))
        for (key, type) in [("input_tokens", "input"), ("output_tokens", "output")] {
            if let tokens = usage[key]?.doubleValue {
                var tokenKey = commonKey
                tokenKey.append("gen_ai.token.type", string: type)
                tokenUsage.record(tokens, key: tokenKey, attributes: common() + [Self.string("gen_ai.token.type", type)])
            }
        }
    }

    /// The metrics for the period ending at `now`; `nil` when nothing was ever recorded (cumulative) or
    /// nothing in this period (delta). Delta collection starts a new, empty period.
    public mutating func collect(
        nowUnixNano now: UInt64, cumulative: Bool, resource: [Opentelemetry_Proto_Common_V1_KeyValue], scopeVersion: String
    ) -> Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest? {
        let histograms = [spanDuration, tokenUsage, operationDuration].filter { !$0.points.isEmpty }
        guard !histograms.isEmpty else {
            if !cumulative { periodStart = now }
            return nil
        }
        var request = Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest()
        var resourceMetrics = Opentelemetry_Proto_Metrics_V1_ResourceMetrics()
        resourceMetrics.resource.attributes = resource
        var scopeMetrics = Opentelemetry_Proto_Metrics_V1_ScopeMetrics()
        scopeMetrics.scope.name = "mlflow.tracing"
        scopeMetrics.scope.version = scopeVersion
        for histogram in histograms {
            var metric = Opentelemetry_Proto_Metrics_V1_Metric()
            metric.name = histogram.name
            metric.unit = histogram.unit
            metric.description_p = histogram.description
            metric.histogram.aggregationTemporality = cumulative ? .cumulative : .delta
            metric.histogram.dataPoints = histogram.points.map { point in
                var data = Opentelemetry_Proto_Metrics_V1_HistogramDataPoint()
                data.attributes = point.attributes
                data.startTimeUnixNano = periodStart
                data.timeUnixNano = now
                data.count = point.count
                data.sum = point.sum
                data.min = point.min
                data.max = point.max
                data.bucketCounts = point.buckets
                data.explicitBounds = histogram.bounds
                return data
            }
            scopeMetrics.metrics.append(metric)
        }
        resourceMetrics.scopeMetrics = [scopeMetrics]
        request.resourceMetrics = [resourceMetrics]
        if !cumulative {
            spanDuration.reset()
            tokenUsage.reset()
            operationDuration.reset()
            periodStart = now
        }
        return request
    }

    static func string(_ key: String, _ value: String) -> Opentelemetry_Proto_Common_V1_KeyValue {
        .with {
            $0.key = key
            $0.value.stringValue = value
        }
    }

    static func bool(_ key: String, _ value: Bool) -> Opentelemetry_Proto_Common_V1_KeyValue {
        .with {
            $0.key = key
            $0.value.boolValue = value
        }
    }
}
