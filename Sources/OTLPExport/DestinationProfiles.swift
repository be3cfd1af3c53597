import Foundation
import SharedSettings
import SpanShaping

/// Vendor profiles: fill in endpoint, protocol, auth header and request-size limit from a few keys
/// (../shared/docs/otlp-and-vendors.md §3). Explicit destination keys (`endpoint`, `protocol`, `headers`, …)
/// override what a profile fills in.
public enum DestinationProfile: String, Sendable, Equatable, CaseIterable {
    /// Generic OTLP: everything from the explicit keys.
    case otlp
    /// Datadog OTLP intake: `site`, `api_key` → `dd-api-key`; HTTP only; 3.2 MB per request.
    case datadog
    /// Grafana Cloud OTLP gateway: `zone` (or `endpoint`), `instance_id` + `token` → Basic auth.
    case grafana
    /// Splunk Observability Cloud: `realm`, `access_token` → `X-SF-Token`; `/v2/trace/otlp`, or gRPC.
    case splunk
    /// New Relic: `region` (`us`, `eu`, `fedramp`), `license_key` → `api-key`; 1 MB per request.
    case newrelic
    /// Honeycomb: `region` (`us`, `eu`), `api_key` → `x-honeycomb-team`.
    case honeycomb
    /// SigNoz Cloud: `region` (`us`, `eu`, `in`), `ingestion_key` → `signoz-ingestion-key`.
    case signoz
    /// ServiceNow Cloud Observability (Lightstep): `access_token` → `lightstep-access-token`, `region` (`us`, `eu`).
    case lightstep
    /// Dynatrace: `environment_url`, `api_token` → `Authorization: Api-Token …`; HTTP/protobuf only.
    case dynatrace

    /// The keys the profile reads, besides the generic destination keys.
    public var keys: [String] {
        switch self {
        case .otlp: []
        case .datadog: ["site", "api_key"]
        case .grafana: ["zone", "instance_id", "token"]
        case .splunk: ["realm", "access_token"]
        case .newrelic: ["region", "license_key"]
        case .honeycomb: ["region", "api_key", "metrics_dataset"]
        case .signoz: ["region", "ingestion_key"]
        case .lightstep: ["region", "access_token"]
        case .dynatrace: ["environment_url", "api_token"]
        }
    }

    /// The keys that hold secrets (shown as `***`).
    public static let secretKeys: Set<String> = ["api_key", "token", "access_token", "license_key", "ingestion_key", "api_token"]

    /// Datadog sites with an OTLP trace intake.
    public static let datadogSites = [
        "datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com", "ap2.datadoghq.com",
    ]

    /// The span size limits the vendor documents (otlp-and-vendors §3.1); explicit `limits` keys override them.
    public var defaultLimits: SpanSizeLimits {
        switch self {
        case .newrelic: SpanSizeLimits(maxAttributeValueLength: 4095, maxAttributesPerSpan: 128)
        case .dynatrace: SpanSizeLimits(maxAttributesPerSpan: 1281)
        default: SpanSizeLimits()
        }
    }
}
