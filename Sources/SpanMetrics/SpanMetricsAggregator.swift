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

    struct Histogram: Sendable {
        let name: String
        let unit: String
        let description: String
        let bounds: [Double]
        /// The points in the order they first appeared, found by their key.
        var points: [Point] = []
        var index: [String: Int] = [:]

        /// Records a value under attributes given as they are, keyed by ``appendKey(_:_:to:)`` of each in order.
        mutating func record(_ value: Double, attributes: [Opentelemetry_Proto_Common_V1_KeyValue]) {
            var key = ""
            key.reserveCapacity(128)
            for attribute in attributes { Self.appendKey(attribute.key, Self.text(attribute.value), to: &key) }
            record(value, key: key, attributes: attributes)
        }

        /// Records a value under `key`, the attributes' key (``appendKey(_:_:to:)`` for each, in order); the
        /// attributes are built only when the key is new, so a span recorded into an existing point allocates none.
        mutating func record(_ value: Double, key: String, attributes: @autoclosure () -> [Opentelemetry_Proto_Common_V1_KeyValue]) {
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

        /// Appends one attribute to a point key: `key=<typed text>`, separated by U+001F.
        static func appendKey(_ name: String, _ typedText: String, to key: inout String) {
            if !key.isEmpty { key += "\u{1F}" }
            key += name
            key += "="
            key += typedText
        }

        static func text(_ value: Opentelemetry_Proto_Common_V1_AnyValue) -> String {
            switch value.value {
            case .stringValue(let string): text(string: string)
            case .boolValue(let flag): text(bool: flag)
            case .intValue(let number): "i:\(number)"
            default: "\(value)"
            }
        }

        /// The key text of a string value and of a bool value, as ``text(_:)`` writes them.
        static func text(string: String) -> String { "s:" + string }
        static func text(bool: Bool) -> String { "b:\(bool)" }
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
        // The trace's part of every span's point key, built once (the same key text ``Histogram`` builds).
        var traceKey = ""
        for attribute in traceAttributes { Histogram.appendKey(attribute.key, Histogram.text(attribute.value), to: &traceKey) }
        if !traceKey.isEmpty { traceKey = "\u{1F}" + traceKey }
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
                    var key = ""
                    Histogram.appendKey("root", Histogram.text(bool: isRoot), to: &key)
                    Histogram.appendKey("span_type", Histogram.text(string: spanType), to: &key)
                    Histogram.appendKey("span_status", Histogram.text(string: status), to: &key)
                    Histogram.appendKey("experiment_id", Histogram.text(string: experiment), to: &key)
                    key += traceKey
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
        attributes.first { $0.key == key }?.value
    }

    static let genAIOperations = ["CHAT_MODEL": "chat", "LLM": "generate_content", "EMBEDDING": "embeddings"]

    private mutating func recordGenAI(spanType: String, status: String, seconds: Double, attributes: [Opentelemetry_Proto_Common_V1_KeyValue]) {
        guard let operation = Self.genAIOperations[spanType], let usageText = Self.first("mlflow.chat.tokenUsage", in: attributes)?.stringValue,
            let usage = JSONValue(parsing: usageText), usage.objectMembers != nil
        else { return }
        var common = [Self.string("gen_ai.operation.name", operation)]
        if let provider = Self.first("mlflow.llm.provider", in: attributes)?.stringValue, !provider.isEmpty {
            common.append(Self.string("gen_ai.provider.name", provider))
        }
        if let model = Self.first("mlflow.llm.model", in: attributes)?.stringValue, !model.isEmpty {
            common.append(Self.string("gen_ai.request.model", model))
        }
        var durationAttributes = common
        if status == "ERROR" { durationAttributes.append(Self.string("error.type", "_OTHER")) }
        operationDuration.record(seconds, attributes: durationAttributes)
        for (key, type) in [("input_tokens", "input"), ("output_tokens", "output")] {
            if let tokens = usage[key]?.doubleValue {
                tokenUsage.record(tokens, attributes: common + [Self.string("gen_ai.token.type", type)])
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
