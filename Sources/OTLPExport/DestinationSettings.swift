import Foundation
import SharedSettings
import SpanShaping

/// One OTLP destination: from the configuration file's `destinations`, or the one named `otlp` that the
/// `OTEL_EXPORTER_OTLP_*` variables describe.
public struct OTLPDestination: Sendable, Equatable {
    /// The destination's name (the key under `destinations`; `otlp` for the environment's).
    public var name: String
    /// The vendor profile that filled in defaults.
    public var profile: DestinationProfile
    /// The full URL requests are posted to (signal path already applied); for gRPC the server's URL.
    public var endpoint: UpstreamURL
    /// The wire protocol: gRPC, or OTLP/HTTP with protobuf or JSON bodies.
    public var transportProtocol: OTLPProtocol
    /// Extra request headers (API keys live here); values are secrets and never logged.
    public var headers: [KeyValuePair]
    /// Request-body compression.
    public var compression: OTLPCompression
    /// Per-request timeout; `nil` means no limit (`0` in the variable).
    public var timeout: Duration?
    /// TLS settings for `https` endpoints (and gRPC).
    public var tls: TLSSettings
    /// The vendor's documented request-size limit, when it has one.
    public var maxRequestBytes: Int?
    /// What the destination may receive and in which shape.
    public var policy: DataPolicy
    /// Headers only its metrics requests carry (Honeycomb's `x-honeycomb-dataset` from `metrics_dataset`).
    public var metricsHeaders: [KeyValuePair] = []

    /// Creates a destination.
    public init(
        name: String = "otlp",
        profile: DestinationProfile = .otlp,
        endpoint: UpstreamURL,
        transportProtocol: OTLPProtocol = .httpProtobuf,
        headers: [KeyValuePair] = [],
        compression: OTLPCompression = .none,
        timeout: Duration? = .seconds(10),
        tls: TLSSettings = TLSSettings(),
        maxRequestBytes: Int? = nil,
        policy: DataPolicy = DataPolicy()
    ) {
        self.policy = policy
        self.name = name
        self.profile = profile
        self.tls = tls
        self.maxRequestBytes = maxRequestBytes
        self.endpoint = endpoint
        self.transportProtocol = transportProtocol
        self.headers = headers
        self.compression = compression
        self.timeout = timeout
    }

    /// The destination with header values shown as `***`.
    public var redactedDescription: String {
        let headerNames = headers.map { "\($0.key)=***" }.joined(separator: ",")
        return "\(name): \(endpoint) (\(transportProtocol.rawValue), compression=\(compression.rawValue)"
            + (headerNames.isEmpty ? "" : ", headers=\(headerNames)") + ")"
    }
}

extension OTLPDestination {
    /// `text` (a destination's answer, an error it sent) with this destination's credentials masked: every header
    /// value, the credential after an auth scheme (`Bearer x`, `Api-Token x`), and for `Basic` the decoded
    /// `user:password` and its password. Vendors do echo a rejected key back ("invalid API key abc…"), and such an
    /// answer reaches the log and the status page.
    public func maskingCredentials(in text: String) -> String {
        var fragments: Set<String> = []
        for header in headers + metricsHeaders {
            let value = header.value.trimmingCharacters(in: .whitespaces)
            fragments.insert(value)
            if let space = value.firstIndex(of: " ") {
                let scheme = value[..<space].lowercased()
                let credential = value[value.index(after: space)...].trimmingCharacters(in: .whitespaces)
                fragments.insert(credential)
                if scheme == "basic", let data = Data(base64Encoded: credential), let decoded = String(data: data, encoding: .utf8) {
                    fragments.insert(decoded)
                    if let colon = decoded.firstIndex(of: ":") { fragments.insert(String(decoded[decoded.index(after: colon)...])) }
                }
            }
        }
        var result = text
        // Longest first, so a value is masked whole before a part of it; very short values (a flag, a team name)
        // would mask ordinary words and are no credentials.
        for fragment in fragments.filter({ $0.count >= 6 }).sorted(by: { $0.count > $1.count }) {
            result = result.replacingOccurrences(of: fragment, with: "***")
        }
        return result
    }
}

/// TLS settings of a destination, named as the OpenTelemetry Collector names them.
public struct TLSSettings: Sendable, Equatable {
    /// A PEM file of CA certificates to trust instead of the system's (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    public var caFile: String?
    /// The client certificate chain for mutual TLS, PEM (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`).
    public var certFile: String?
    /// The client private key for mutual TLS, PEM (`OTEL_EXPORTER_OTLP_CLIENT_KEY`).
    public var keyFile: String?
    /// gRPC only: plaintext (no TLS) when the endpoint has no scheme (`OTEL_EXPORTER_OTLP_INSECURE`).
    public var insecure: Bool
    /// Skip verifying the server's certificate (testing only; logged as a warning).
    public var insecureSkipVerify: Bool
    /// gRPC only: the name the server certificate is verified against, when it differs from the endpoint's host.
    public var serverName: String?

    /// Creates settings (verification on, system trust roots).
    public init(
        caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, insecure: Bool = false, insecureSkipVerify: Bool = false,
        serverName: String? = nil
    ) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.insecure = insecure
        self.insecureSkipVerify = insecureSkipVerify
        self.serverName = serverName
    }
}

/// OTLP transport protocols named as `OTEL_EXPORTER_OTLP_PROTOCOL` names them.
public enum OTLPProtocol: String, Sendable, Equatable, CaseIterable {
    /// Protobuf over HTTP (the specification's default).
    case httpProtobuf = "http/protobuf"
    /// JSON over HTTP.
    case httpJSON = "http/json"
    /// gRPC.
    case grpc
}

/// OTLP request compression (`OTEL_EXPORTER_OTLP_COMPRESSION`).
public enum OTLPCompression: String, Sendable, Equatable {
    /// gzip, with `Content-Encoding: gzip`.
    case gzip
    /// No compression.
    case none
}

/// Retries of failed exports, with the OpenTelemetry Collector's `retry_on_failure` keys and defaults:
/// exponential backoff with jitter from `initialInterval` up to `maxInterval`, a server's requested delay
/// (`Retry-After`, gRPC `RetryInfo`) honoured, and at most `maxElapsedTime` spent on one batch.
public struct RetryPolicy: Sendable, Equatable {
    /// Whether failed exports are retried at all.
    public var enabled = true
    /// The first backoff; default 5 s.
    public var initialInterval: Duration = .seconds(5)
    /// The largest backoff; default 30 s.
    public var maxInterval: Duration = .seconds(30)
    /// The most time spent on one batch, its attempts and waits together; default 300 s; `nil` (0 in the
    /// file): retry until delivered or shut down.
    public var maxElapsedTime: Duration? = .seconds(300)
    /// The backoff's growth per attempt; default 1.5.
    public var multiplier = 1.5
    /// The jitter: each wait is drawn from ±this fraction of the backoff; default 0.5.
    public var randomizationFactor = 0.5
    /// Creates a policy.
    public init(
        enabled: Bool = true, initialInterval: Duration = .seconds(5), maxInterval: Duration = .seconds(30),
        maxElapsedTime: Duration? = .seconds(300),
        multiplier: Double = 1.5, randomizationFactor: Double = 0.5
    ) {
        self.enabled = enabled
        self.initialInterval = initialInterval
        self.maxInterval = maxInterval
        self.maxElapsedTime = maxElapsedTime
        self.multiplier = multiplier
        self.randomizationFactor = randomizationFactor
    }
}
