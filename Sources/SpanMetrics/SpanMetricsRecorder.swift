import NIOConcurrencyHelpers
import OTLPProto

/// A thread-safe ``SpanMetricsAggregator``: the trace path records into it, the metrics exporter collects.
public final class SpanMetricsRecorder: Sendable {
    private let aggregator: NIOLockedValueBox<SpanMetricsAggregator>
    private let cumulative: Bool
    private let resource: [Opentelemetry_Proto_Common_V1_KeyValue]
    private let scopeVersion: String

    /// Creates a recorder.
    /// - Parameter resource: the resource attributes of exported metrics (the proxy's `service.name` and
    ///   `OTEL_RESOURCE_ATTRIBUTES`).
    public init(
        cumulative: Bool, resource: [Opentelemetry_Proto_Common_V1_KeyValue], scopeVersion: String, traceTagKeys: [String],
        traceMetadataKeys: [String],
        startTimeUnixNano: UInt64
    ) {
        aggregator = NIOLockedValueBox(
            SpanMetricsAggregator(startTimeUnixNano: startTimeUnixNano, traceTagKeys: traceTagKeys, traceMetadataKeys: traceMetadataKeys))
        self.cumulative = cumulative
        self.resource = resource
        self.scopeVersion = scopeVersion
    }

    /// Records one translated trace.
    public func record(_ resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) {
        aggregator.withLockedValue { $0.record(resourceSpans) }
    }

    /// The metrics of the period ending now.
    public func collect(nowUnixNano: UInt64) -> Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest? {
        aggregator.withLockedValue { $0.collect(nowUnixNano: nowUnixNano, cumulative: cumulative, resource: resource, scopeVersion: scopeVersion) }
    }
}
