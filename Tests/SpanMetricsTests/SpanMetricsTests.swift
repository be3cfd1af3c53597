import Foundation
import MLflowWire
import OTLPExport
import OTLPProto
import OTLPTranslation
import ProxyConfig
import ProxySettings
import SharedSettings
import TestSupport
import Testing
import TraceAssembly

@testable import SpanMetrics

struct SpanMetricsTests {
    func translatedSync() throws -> [(resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans], info: TraceInfo?)] {
        let (traces, _) = CaptureReplay.assemble(try CaptureReplay.uploads(try CaptureReplay.exchanges("01_sync")))
        return traces.map { (OTLPTraceTranslator.translate($0, settings: TranslationSettings(scopeVersion: "1")), $0.info) }
    }

    func metric(_ request: Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest?, _ name: String)
        -> Opentelemetry_Proto_Metrics_V1_Metric?
    {
        request?.resourceMetrics.flatMap(\.scopeMetrics).flatMap(\.metrics).first { $0.name == name }
    }

    func attributes(_ point: Opentelemetry_Proto_Metrics_V1_HistogramDataPoint) -> [String: String] {
        Dictionary(
            uniqueKeysWithValues: point.attributes.map { attribute in
                (
                    attribute.key,
                    attribute.value.stringValue.isEmpty && attribute.key == "root" ? "\(attribute.value.boolValue)" : attribute.value.stringValue
                )
            })
    }

    @Test func spanDurationHistogramMatchesTheSpans() throws {
        var aggregator = SpanMetricsAggregator(startTimeUnixNano: 1)
        var expected: [String: (count: UInt64, sum: Double)] = [:]
        for (resourceSpans, info) in try translatedSync() {
            aggregator.record(resourceSpans)
            for span in resourceSpans.flatMap({ $0.scopeSpans.flatMap(\.spans) }) {
                let type = span.attributes.first { $0.key == "mlflow.spanType" }!.value.stringValue
                let key = "\(span.parentSpanID.isEmpty)|\(type)|\(span.status.code == .error ? "ERROR" : "OK")"
                expected[key, default: (0, 0)].count += 1
                expected[key, default: (0, 0)].sum += Double(span.endTimeUnixNano - span.startTimeUnixNano) / 1_000_000
            }
        }
        let request = aggregator.collect(nowUnixNano: 100, cumulative: true, resource: [], scopeVersion: "1")
        let histogram = try #require(metric(request, "mlflow.trace.span.duration"))
        #expect(histogram.unit == "ms")
        #expect(histogram.histogram.aggregationTemporality == .cumulative)
        #expect(request?.resourceMetrics.first?.scopeMetrics.first?.scope.name == "mlflow.tracing")
        var seen: [String: (count: UInt64, sum: Double)] = [:]
        for point in histogram.histogram.dataPoints {
            let values = attributes(point)
            #expect(values["experiment_id"] == "1")
            #expect(point.explicitBounds == SpanMetricsAggregator.spanDurationBounds)
            #expect(point.bucketCounts.reduce(0, +) == point.count)
            #expect(point.startTimeUnixNano == 1 && point.timeUnixNano == 100)
            seen["\(values["root"]!)|\(values["span_type"]!)|\(values["span_status"]!)"] = (point.count, point.sum)
        }
        #expect(Set(seen.keys) == Set(expected.keys))
        for (key, value) in expected {
            #expect(seen[key]?.count == value.count, "\(key)")
            #expect(abs((seen[key]?.sum ?? 0) - value.sum) < 0.001, "\(key)")
        }
        #expect(expected.values.reduce(0) { $0 + $1.count } == 8)
    }

    @Test func genAIHistogramsForModelSpansWithTokenUsage() throws {
        var aggregator = SpanMetricsAggregator(startTimeUnixNano: 1)
        for (resourceSpans, _) in try translatedSync() { aggregator.record(resourceSpans) }
        let request = aggregator.collect(nowUnixNano: 2, cumulative: true, resource: [], scopeVersion: "1")
        let tokens = try #require(metric(request, "gen_ai.client.token.usage"))
        let byType = Dictionary(uniqueKeysWithValues: tokens.histogram.dataPoints.map { (attributes($0)["gen_ai.token.type"]!, $0) })
        #expect(byType["input"]?.sum == 12 && byType["output"]?.sum == 5)
        #expect(byType["input"].map(attributes)?["gen_ai.operation.name"] == "chat")
        #expect(byType["input"].map(attributes)?["gen_ai.request.model"] == "gpt-4o-mini")
        let duration = try #require(metric(request, "gen_ai.client.operation.duration"))
        #expect(duration.unit == "s" && duration.histogram.dataPoints.first?.count == 1)
    }

    @Test func deltaStartsANewPeriodAfterEachCollection() throws {
        var aggregator = SpanMetricsAggregator(startTimeUnixNano: 1)
        let traces = try translatedSync()
        aggregator.record(traces[0].resourceSpans)
        let first = aggregator.collect(nowUnixNano: 10, cumulative: false, resource: [], scopeVersion: "1")
        #expect(metric(first, "mlflow.trace.span.duration")?.histogram.aggregationTemporality == .delta)
        #expect(metric(first, "mlflow.trace.span.duration")?.histogram.dataPoints.reduce(0) { $0 + $1.count } == 3)
        #expect(aggregator.collect(nowUnixNano: 20, cumulative: false, resource: [], scopeVersion: "1") == nil)
        aggregator.record(traces[1].resourceSpans)
        let third = aggregator.collect(nowUnixNano: 30, cumulative: false, resource: [], scopeVersion: "1")
        let points = metric(third, "mlflow.trace.span.duration")?.histogram.dataPoints ?? []
        #expect(points.reduce(0) { $0 + $1.count } == 2)
        #expect(points.allSatisfy { $0.startTimeUnixNano == 20 && $0.timeUnixNano == 30 })
    }

    /// Point keys keep values of different types apart (a string "true" is not the bool), and a key appended
    /// after another equals the attributes appended one by one.
    @Test func pointKeysTellTypesApartAndCompose() {
        func key(_ value: Opentelemetry_Proto_Common_V1_AnyValue) -> SpanMetricsAggregator.PointKey {
            var key = SpanMetricsAggregator.PointKey()
            key.append("a", value)
            return key
        }
        func value(_ set: (inout Opentelemetry_Proto_Common_V1_AnyValue) -> Void) -> Opentelemetry_Proto_Common_V1_AnyValue {
            var value = Opentelemetry_Proto_Common_V1_AnyValue()
            set(&value)
            return value
        }
        let values = [
            value { $0.stringValue = "true" }, value { $0.boolValue = true }, value { $0.stringValue = "1" }, value { $0.intValue = 1 },
            value { $0.stringValue = "" },
        ]
        #expect(Set(values.map(key)).count == values.count)
        var whole = SpanMetricsAggregator.PointKey()
        whole.append("root", bool: true)
        whole.append("tags.team", string: "wire")
        var head = SpanMetricsAggregator.PointKey()
        head.append("root", bool: true)
        var tail = SpanMetricsAggregator.PointKey()
        tail.append("tags.team", value { $0.stringValue = "wire" })
        head.append(tail)
        #expect(head == whole && head.hashValue == whole.hashValue)
        var empty = SpanMetricsAggregator.PointKey()
        empty.append(SpanMetricsAggregator.PointKey())
        #expect(empty == SpanMetricsAggregator.PointKey())
    }

    /// Model spans land in one GenAI point per distinct attribute set, whatever order they come in: the keys written
    /// from the values find the points made for the same attributes (a span recorded again adds to its point; provider,
    /// model and failure make points of their own), and every point's attributes are the ones its spans had.
    @Test func genAIPointsAreFoundAgainForTheSameAttributes() throws {
        func span(provider: String?, model: String?, failed: Bool) -> Opentelemetry_Proto_Trace_V1_Span {
            var span = Opentelemetry_Proto_Trace_V1_Span()
            span.startTimeUnixNano = 1_000_000_000
            span.endTimeUnixNano = 1_500_000_000
            span.parentSpanID = Data([1])
            span.status.code = failed ? .error : .ok
            var attributes = [SpanMetricsAggregator.string("mlflow.spanType", "CHAT_MODEL")]
            attributes.append(SpanMetricsAggregator.string("mlflow.chat.tokenUsage", #"{"input_tokens": 3, "output_tokens": 4}"#))
            if let provider { attributes.append(SpanMetricsAggregator.string("mlflow.llm.provider", provider)) }
            if let model { attributes.append(SpanMetricsAggregator.string("mlflow.llm.model", model)) }
            span.attributes = attributes
            return span
        }
        var spans: [Opentelemetry_Proto_Trace_V1_Span] = []
        for provider in [nil, "", "openai"] as [String?] {
            for model in [nil, "gpt-4o-mini"] as [String?] {
                for failed in [false, true] { spans.append(span(provider: provider, model: model, failed: failed)) }
            }
        }
        var aggregator = SpanMetricsAggregator(startTimeUnixNano: 1)
        for round in 0..<3 {
            var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
            var scopeSpans = Opentelemetry_Proto_Trace_V1_ScopeSpans()
            scopeSpans.spans = round == 1 ? spans.reversed() : spans
            resourceSpans.scopeSpans = [scopeSpans]
            aggregator.record([resourceSpans])
        }
        let request = aggregator.collect(nowUnixNano: 2, cumulative: true, resource: [], scopeVersion: "1")
        // An empty provider counts as none: 2 providers × 2 models × 2 outcomes for durations, × 2 token types for
        // token counts (which have no outcome).
        let duration = try #require(metric(request, "gen_ai.client.operation.duration")).histogram.dataPoints
        #expect(duration.count == 8)
        #expect(duration.allSatisfy { attributes($0)["gen_ai.provider.name"] == nil ? $0.count == 6 : $0.count == 3 })
        #expect(duration.filter { attributes($0)["error.type"] == "_OTHER" }.count == 4)
        let tokens = try #require(metric(request, "gen_ai.client.token.usage")).histogram.dataPoints
        #expect(tokens.count == 8)
        // Token counts do not tell failures apart: twice the spans per point.
        #expect(tokens.allSatisfy { attributes($0)["gen_ai.provider.name"] == nil ? $0.count == 12 : $0.count == 6 })
        #expect(tokens.allSatisfy { attributes($0)["error.type"] == nil && attributes($0)["gen_ai.operation.name"] == "chat" })
        #expect(Set(tokens.map { attributes($0) }).count == 8)
        #expect(tokens.filter { attributes($0)["gen_ai.token.type"] == "output" }.allSatisfy { $0.sum == Double($0.count) * 4 })
    }

    @Test func traceTagsAndMetadataOnlyWhenConfigured() throws {
        var aggregator = SpanMetricsAggregator(startTimeUnixNano: 1, traceTagKeys: ["team"], traceMetadataKeys: ["mlflow.trace.session"])
        let traces = try translatedSync()
        aggregator.record(traces[0].resourceSpans)
        let points =
            metric(aggregator.collect(nowUnixNano: 2, cumulative: true, resource: [], scopeVersion: "1"), "mlflow.trace.span.duration")?
            .histogram.dataPoints ?? []
        #expect(!points.isEmpty)  // allSatisfy holds for no points at all
        #expect(points.allSatisfy { attributes($0)["tags.team"] == "wire" && attributes($0)["metadata.mlflow.trace.session"] == "session-123" })
    }

    @Test func metricsSettingsFollowTheStandardVariables() throws {
        func metrics(_ env: [String: String]) throws -> MetricsSettings? {
            try ProxyConfiguration.load(environment: env.merging(["OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"]) { old, _ in old }).metrics
        }
        #expect(try metrics([:]) == nil)
        #expect(try metrics(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"])?.destination.endpoint.description == "http://c:4318/v1/metrics")
        #expect(
            try metrics(["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:4318/custom"])?.destination.endpoint.description == "http://m:4318/custom")
        #expect(try metrics(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_METRICS_EXPORTER": "none"]) == nil)
        let settings = try #require(
            try metrics([
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_METRIC_EXPORT_INTERVAL": "500",
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Delta", "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "k=v",
            ]))
        #expect(settings.interval == .milliseconds(500) && settings.temporality == .delta)
        #expect(settings.destination.headers == [KeyValuePair("k", "v")])
        #expect(throws: ConfigurationError.self) {
            try metrics(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_METRICS_EXPORTER": "prometheus"])
        }
    }
}
