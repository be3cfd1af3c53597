/// One OTLP destination, as the `OTEL_EXPORTER_OTLP_*` variables describe it.
public struct OTLPDestination: Sendable, Equatable {
    /// The full URL requests are posted to (signal path already applied).
    public var endpoint: UpstreamURL
    /// The wire protocol; only `http/protobuf` is supported so far.
    public var transportProtocol: OTLPProtocol
    /// Extra request headers (API keys live here); values are secrets and never logged.
    public var headers: [KeyValuePair]
    /// Request-body compression.
    public var compression: OTLPCompression
    /// Per-request timeout; `nil` means no limit (`0` in the variable).
    public var timeout: Duration?

    /// Creates a destination.
    public init(
        endpoint: UpstreamURL,
        transportProtocol: OTLPProtocol = .httpProtobuf,
        headers: [KeyValuePair] = [],
        compression: OTLPCompression = .none,
        timeout: Duration? = .seconds(10)
    ) {
        self.endpoint = endpoint
        self.transportProtocol = transportProtocol
        self.headers = headers
        self.compression = compression
        self.timeout = timeout
    }

    /// The destination with header values shown as `***`.
    public var redactedDescription: String {
        let headerNames = headers.map { "\($0.key)=***" }.joined(separator: ",")
        return "\(endpoint) (\(transportProtocol.rawValue), compression=\(compression.rawValue)"
            + (headerNames.isEmpty ? "" : ", headers=\(headerNames)") + ")"
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
