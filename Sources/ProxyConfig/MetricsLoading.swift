import Foundation
import ProxySettings
import SharedSettings

extension ProxyConfiguration {
    /// The metrics settings the standard variables describe, or `nil` when no endpoint is set or
    /// `OTEL_METRICS_EXPORTER=none`.
    static func loadMetrics(_ env: EnvironmentReader) throws(ConfigurationError) -> MetricsSettings? {
        if try sdkDisabled(env) { return nil }
        if let exporter = env["OTEL_METRICS_EXPORTER"] {
            let names = exporter.split(separator: ",").map { $0.trimmingWhitespace().lowercased() }
            if names.contains("none") { return nil }
            guard names.allSatisfy({ $0 == "otlp" }) else {
                throw ConfigurationError(setting: "OTEL_METRICS_EXPORTER", reason: "unsupported exporter \"\(exporter)\", expected otlp or none")
            }
        }
        guard let destination = try loadSignalDestination(env, signal: "METRICS", name: "metrics") else { return nil }
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
