import Foundation
import OTLPExport
import ProxySettings
import SharedSettings
import SpanShaping

/// What a destination profile fills in from its keys (the loader's side of ``DestinationProfile``).
extension DestinationProfile {
    /// What a profile contributes before explicit keys apply.
    struct Defaults {
        var endpoint: String?
        var protocolChoices: [OTLPProtocol] = OTLPProtocol.allCases
        var headers: [KeyValuePair] = []
        var maxRequestBytes: Int?
        var grpcEndpoint: String?
        var metricsHeaders: [KeyValuePair] = []
    }

    /// Reads the profile's keys.
    /// - Parameters:
    ///   - values: the profile keys' resolved values (missing keys absent).
    ///   - path: the destination's key path, for errors (`destinations.dd`).
    ///   - present: the keys the destination has, resolved or not (a key whose reference failed was reported already).
    func defaults(_ values: [String: String], present: Set<String>, path: String, problems: inout ConfigProblems) -> Defaults {
        func required(_ key: String) -> String? {
            guard let value = values[key] else {
                if !present.contains(key) { problems.add(path: "\(path).\(key)", "is required by the \(rawValue) profile") }
                return nil
            }
            return value
        }
        func region(_ allowed: [String], default fallback: String) -> String? {
            let value = values["region"] ?? fallback
            guard allowed.contains(value) else {
                problems.add(path: "\(path).region", "unknown region \"\(value)\", expected one of \(allowed.joined(separator: ", "))")
                return nil
            }
            return value
        }
        // With an explicit endpoint (a vendor gateway, a proxy of the vendor's), the key that only locates the
        // vendor's intake is optional: the profile still brings its auth header, limits and protocol.
        let explicitEndpoint = present.contains("endpoint") || present.contains("traces_endpoint")
        func location(_ key: String) -> String? { explicitEndpoint ? values[key] : required(key) }
        var result = Defaults()
        switch self {
        case .otlp:
            break
        case .datadog:
            let site = values["site"] ?? "datadoghq.com"
            if Self.datadogSites.contains(site) {
                // Datadog's documentation source (regions.config.js, `otlp_trace_endpoint`) names otlp.<site> for
                // traces, as for metrics and logs; older pages said trace.agent.<site>.
                result.endpoint = "https://otlp.\(site)/v1/traces"
            } else {
                problems.add(path: "\(path).site", "unknown site \"\(site)\", expected one of \(Self.datadogSites.joined(separator: ", "))")
            }
            if let key = required("api_key") { result.headers = [KeyValuePair("dd-api-key", key)] }
            result.protocolChoices = [.httpProtobuf, .httpJSON]
            result.maxRequestBytes = 3_200_000
        case .grafana:
            if let zone = values["zone"] {
                let valid = !zone.isEmpty && zone.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" }
                if valid {
                    result.endpoint = "https://otlp-gateway-\(zone).grafana.net/otlp/v1/traces"
                } else {
                    problems.add(path: "\(path).zone", "\"\(zone)\" is not a zone name such as prod-us-east-0")
                }
            }
            if let instance = required("instance_id"), let token = required("token") {
                let credentials = Data("\(instance):\(token)".utf8).base64EncodedString()
                result.headers = [KeyValuePair("Authorization", "Basic \(credentials)")]
            }
            result.protocolChoices = [.httpProtobuf, .httpJSON]
        case .splunk:
            if let realm = location("realm") {
                result.endpoint = "https://ingest.\(realm).signalfx.com/v2/trace/otlp"
                result.grpcEndpoint = "https://ingest.\(realm).signalfx.com:443"
            }
            if let token = required("access_token") { result.headers = [KeyValuePair("X-SF-Token", token)] }
            result.protocolChoices = [.httpProtobuf, .grpc]
        case .newrelic:
            if let region = region(["us", "eu", "fedramp"], default: "us") {
                // New Relic's OTLP page: otlp.nr-data.net (US), otlp.eu01.nr-data.net (EU), gov-otlp.nr-data.net (FedRAMP).
                let host = ["eu": "otlp.eu01.nr-data.net", "fedramp": "gov-otlp.nr-data.net"][region] ?? "otlp.nr-data.net"
                result.endpoint = "https://\(host)/v1/traces"
                result.grpcEndpoint = "https://\(host):443"
            }
            if let key = required("license_key") { result.headers = [KeyValuePair("api-key", key)] }
            result.maxRequestBytes = 1_000_000
        case .honeycomb:
            if let region = region(["us", "eu"], default: "us") {
                let host = region == "eu" ? "api.eu1.honeycomb.io" : "api.honeycomb.io"
                result.endpoint = "https://\(host)/v1/traces"
                result.grpcEndpoint = "https://\(host):443"
            }
            if let key = required("api_key") { result.headers = [KeyValuePair("x-honeycomb-team", key)] }
            // Traces go to a dataset named after service.name; metrics need one named (Honeycomb's docs).
            if let dataset = values["metrics_dataset"] { result.metricsHeaders = [KeyValuePair("x-honeycomb-dataset", dataset)] }
        case .signoz:
            if let region = region(["us", "eu", "in"], default: "us") {
                result.endpoint = "https://ingest.\(region).signoz.cloud:443/v1/traces"
                result.grpcEndpoint = "https://ingest.\(region).signoz.cloud:443"
            }
            if let key = required("ingestion_key") { result.headers = [KeyValuePair("signoz-ingestion-key", key)] }
        case .lightstep:
            if let region = region(["us", "eu"], default: "us") {
                let host = region == "eu" ? "ingest.eu.lightstep.com" : "ingest.lightstep.com"
                result.endpoint = "https://\(host):443/v1/traces"
                result.grpcEndpoint = "https://\(host):443"
            }
            if let token = required("access_token") { result.headers = [KeyValuePair("lightstep-access-token", token)] }
        case .dynatrace:
            if let environment = location("environment_url") {
                if let url = UpstreamURL(environment) {
                    result.endpoint = url.with(path: url.basePath + "/api/v2/otlp/v1/traces").description
                } else {
                    problems.add(path: "\(path).environment_url", "expected an https:// URL such as https://abc12345.live.dynatrace.com")
                }
            }
            if let token = required("api_token") { result.headers = [KeyValuePair("Authorization", "Api-Token \(token)")] }
            result.protocolChoices = [.httpProtobuf]
            result.maxRequestBytes = 8_000_000
        }
        return result
    }
}
