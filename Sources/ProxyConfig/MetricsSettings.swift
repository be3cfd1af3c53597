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

extension ProxyConfiguration {
    /// The metrics settings the standard variables describe, or `nil` when no endpoint is set or
    /// `OTEL_METRICS_EXPORTER=none`.
    static func loadMetrics(_ env: EnvironmentReader) throws(ConfigurationError) -> MetricsSettings? {
        if let exporter = env["OTEL_METRICS_EXPORTER"] {
            let names = exporter.split(separator: ",").map { $0.trimmingWhitespace().lowercased() }
            if names.contains("none") { return nil }
            guard names.allSatisfy({ $0 == "otlp" }) else {
                throw ConfigurationError(setting: "OTEL_METRICS_EXPORTER", reason: "unsupported exporter \"\(exporter)\", expected otlp or none")
            }
        }
        func value(_ suffix: String) -> (String, String?) {
            let specific = "OTEL_EXPORTER_OTLP_METRICS_\(suffix)"
            if let value = env[specific] { return (specific, value) }
            return ("OTEL_EXPORTER_OTLP_\(suffix)", env["OTEL_EXPORTER_OTLP_\(suffix)"])
        }
        let (protocolSetting, protocolText) = value("PROTOCOL")
        var transport = OTLPProtocol.httpProtobuf
        if let protocolText {
            guard let parsed = OTLPProtocol(rawValue: protocolText) else {
                throw ConfigurationError(
                    setting: protocolSetting, reason: "unknown protocol \"\(protocolText)\", expected one of grpc, http/protobuf, http/json")
            }
            transport = parsed
        }
        let insecure = value("INSECURE").1?.lowercased() == "true"
        let endpoint: UpstreamURL
        if let text = env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] {
            let parsed =
                transport == .grpc ? grpcEndpoint(text, insecure: insecure) : UpstreamURL(text).map { $0.path.isEmpty ? $0.with(path: "/") : $0 }
            guard let parsed else {
                throw ConfigurationError(setting: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", reason: "expected a URL, got \"\(text)\"")
            }
            endpoint = parsed
        } else if let text = env["OTEL_EXPORTER_OTLP_ENDPOINT"] {
            let parsed =
                transport == .grpc
                ? grpcEndpoint(text, insecure: insecure)
                : UpstreamURL(text).map { $0.with(path: ($0.path.hasSuffix("/") ? $0.path : $0.path + "/") + "v1/metrics") }
            guard let parsed else { throw ConfigurationError(setting: "OTEL_EXPORTER_OTLP_ENDPOINT", reason: "expected a URL, got \"\(text)\"") }
            endpoint = parsed
        } else {
            return nil
        }
        var destination = OTLPDestination(name: "metrics", endpoint: endpoint, transportProtocol: transport)
        destination.tls.insecure = insecure
        let (headersSetting, headersText) = value("HEADERS")
        if let headersText { destination.headers = try KeyValueListParser.parse(headersText, setting: headersSetting, showsValues: false) }
        let (compressionSetting, compressionText) = value("COMPRESSION")
        if let compressionText {
            guard let parsed = OTLPCompression(rawValue: compressionText.lowercased()) else {
                throw ConfigurationError(setting: compressionSetting, reason: "unknown compression \"\(compressionText)\", expected gzip or none")
            }
            destination.compression = parsed
        }
        let (timeoutSetting, timeoutText) = value("TIMEOUT")
        if let timeoutText {
            guard let millis = Int(timeoutText), millis >= 0 else {
                throw ConfigurationError(setting: timeoutSetting, reason: "expected a whole number of milliseconds, got \"\(timeoutText)\"")
            }
            destination.timeout = millis == 0 ? nil : .milliseconds(millis)
        }
        destination.tls.caFile = try env.readableFile(value("CERTIFICATE"))
        destination.tls.certFile = try env.readableFile(value("CLIENT_CERTIFICATE"))
        destination.tls.keyFile = try env.readableFile(value("CLIENT_KEY"))
        var settings = MetricsSettings(destination: destination)
        if let interval = try env.milliseconds("OTEL_METRIC_EXPORT_INTERVAL") {
            guard let interval else { throw ConfigurationError(setting: "OTEL_METRIC_EXPORT_INTERVAL", reason: "must be more than 0") }
            settings.interval = interval
        }
        if let text = env["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"] {
            switch text.lowercased() {
            case "cumulative": settings.temporality = .cumulative
            case "delta", "lowmemory": settings.temporality = .delta  // histograms are delta under both
            default:
                throw ConfigurationError(
                    setting: "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", reason: "expected cumulative, delta or lowmemory, got \"\(text)\""
                )
            }
        }
        return settings
    }
}
