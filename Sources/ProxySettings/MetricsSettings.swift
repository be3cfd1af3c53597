import OTLPExport
import SharedSettings

/// OTLP metrics export (span-duration and GenAI histograms), configured by the standard variables:
/// `OTEL_METRICS_EXPORTER` (`otlp` default, `none`), `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (as is) or
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (+ `/v1/metrics`), `OTEL_EXPORTER_OTLP_METRICS_{PROTOCOL,HEADERS,COMPRESSION,
/// TIMEOUT}` (else the generic ones), `OTEL_METRIC_EXPORT_INTERVAL` (ms, default 60000) and
/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` (`cumulative` default, `delta`, `lowmemory`).
public struct MetricsSettings: Sendable, Equatable {
    /// Where metrics go (name `metrics`).
    public var destination: OTLPDestination
    /// How often metrics are exported.
    public var interval: Duration
    /// Cumulative (default) or delta histograms.
    public var temporality: MetricsTemporality
    /// Trace tag keys added to the span-duration histogram as `tags.<key>` (off by default: cardinality).
    public var traceTagAttributes: [String]
    /// Trace metadata keys added as `metadata.<key>`.
    public var traceMetadataAttributes: [String]

    /// Creates settings.
    public init(
        destination: OTLPDestination, interval: Duration = .seconds(60), temporality: MetricsTemporality = .cumulative,
        traceTagAttributes: [String] = [], traceMetadataAttributes: [String] = []
    ) {
        self.destination = destination
        self.interval = interval
        self.temporality = temporality
        self.traceTagAttributes = traceTagAttributes
        self.traceMetadataAttributes = traceMetadataAttributes
    }
}

/// Aggregation temporality of exported histograms.
public enum MetricsTemporality: String, Sendable, Equatable {
    /// Totals since the proxy started (the OpenTelemetry default).
    case cumulative
    /// Totals since the previous export (Datadog needs this).
    case delta
}
