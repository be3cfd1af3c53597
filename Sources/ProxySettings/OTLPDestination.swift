import Foundation
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
    /// Its own `retry_on_failure` and `sending_queue` keys; ``delivery(over:)`` gives the settings it runs with.
    public var deliveryOverrides = DeliveryOverrides()

    /// The delivery settings this destination runs with: the proxy-wide ones with its own keys over them.
    public func delivery(over shared: DeliverySettings) -> DeliverySettings { deliveryOverrides.applied(to: shared) }

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

/// An absolute `http` or `https` URL split into the parts the HTTP clients need.
public struct UpstreamURL: Sendable, Equatable, CustomStringConvertible {
    /// `http` or `https`.
    public var scheme: String
    /// Host name or address (IPv6 without brackets).
    public var host: String
    /// Explicit port, or `nil` for the scheme's default.
    public var port: Int?
    /// Path without a trailing slash for base URLs; `""` when the URL has none.
    public var path: String

    /// Parses an absolute http(s) URL; returns `nil` for anything else (userinfo, queries and fragments are rejected).
    public init?(_ text: String) {
        let lower = text.lowercased()
        let scheme: String
        if lower.hasPrefix("http://") { scheme = "http" } else if lower.hasPrefix("https://") { scheme = "https" } else { return nil }
        var rest = Substring(text.dropFirst(scheme.count + 3))
        if rest.contains("?") || rest.contains("#") { return nil }
        let authority: Substring
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            rest = rest[slash...]
        } else {
            authority = rest
            rest = ""
        }
        if authority.isEmpty || authority.contains("@") { return nil }
        var host = authority
        var port: Int?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let tail = authority[authority.index(after: close)...]
            if !tail.isEmpty {
                guard tail.hasPrefix(":"), let value = Int(tail.dropFirst()), (1...65535).contains(value) else { return nil }
                port = value
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let value = Int(authority[authority.index(after: colon)...]), (1...65535).contains(value) else { return nil }
            port = value
        }
        if host.isEmpty { return nil }
        self.scheme = scheme
        self.host = String(host)
        self.port = port
        self.path = String(rest)
    }

    /// The URL with `path` replaced.
    public func with(path: String) -> UpstreamURL {
        var copy = self
        copy.path = path
        return copy
    }

    /// The URL as text.
    public var description: String {
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(hostPart)\(port.map { ":\($0)" } ?? "")\(path)"
    }

    /// The path with any trailing slash removed, so request paths can be appended.
    public var basePath: String {
        var base = path
        while base.hasSuffix("/") { base.removeLast() }
        return base
    }
}

extension UpstreamURL {
    /// A rejected URL as it may be shown in an error message or log line: the parts that can hold a secret
    /// (user information, query, fragment) replaced by `***`, so `https://user:KEY@host/p?token=T` reads
    /// `https://***@host/p?***`. The reason for the rejection is said separately.
    public static func redactedForDisplay(_ text: String) -> String {
        var rest = Substring(text)
        var prefix = ""
        if let schemeEnd = rest.range(of: "://") {
            prefix = String(rest[..<schemeEnd.upperBound])
            rest = rest[schemeEnd.upperBound...]
        }
        var tail = ""
        if let cut = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            tail = rest[cut] == "?" ? "?***" : "#***"
            rest = rest[..<cut]
        }
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        if let at = rest[..<authorityEnd].lastIndex(of: "@") {
            rest = "***@" + rest[rest.index(after: at)...]
        }
        return prefix + rest + tail
    }

    /// Why `text` is not an acceptable URL, naming the secret-bearing parts without repeating them.
    public static func rejectionReason(_ text: String, expected: String) -> String {
        let shown = redactedForDisplay(text)
        if shown != text {
            return "\(expected), got \"\(shown)\": credentials, queries and fragments do not belong in a URL here "
                + "(put credentials in headers or secret references)"
        }
        return "\(expected), got \"\(text)\""
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
