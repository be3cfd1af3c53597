import Foundation

/// How trace uploads are handled; the names follow MLflow's "OpenTelemetry Export" page.
public enum ExportMode: String, Sendable, Equatable {
    /// No OTLP endpoint: trace calls pass through to the upstream untouched.
    case mlflowOnly = "mlflow-only"
    /// An OTLP endpoint: trace uploads are answered by the proxy and exported; they never reach the upstream.
    case openTelemetryOnly = "opentelemetry-only"
    /// An endpoint and the dual-export switch: uploads go upstream unchanged and a copy is exported.
    case dual
    /// No upstream and no endpoint: the proxy answers the trace API and writes traces to a local file.
    case standalone

    /// Whether the proxy answers trace uploads itself instead of forwarding them.
    public var answersTraceCallsLocally: Bool { self == .openTelemetryOnly || self == .standalone }
    /// Whether trace uploads are decoded and exported at all.
    public var exportsTraces: Bool { self != .mlflowOnly }
}

/// A `host:port` pair the proxy listens on.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// MLflow's own default, so a client's default tracking URI works unchanged.
    public static let `default` = ListenAddress(host: "127.0.0.1", port: 5000)
    /// Host name or IP address.
    public var host: String
    /// TCP port (0 picks a free one).
    public var port: Int
    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    /// `host:port`, with IPv6 hosts in brackets.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Whether only this machine can connect (`127.0.0.0/8`, `::1`, `localhost`).
    public var isLoopback: Bool {
        let lower = host.lowercased()
        return lower == "localhost" || lower == "::1" || (AddressRange("127.0.0.0/8")?.contains(lower) ?? false)
    }

    /// Parses `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces).
    public static func parse(_ text: String) -> ListenAddress? {
        var hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        if hostPart.isEmpty { hostPart = "0.0.0.0" }
        guard let port = Int(portPart), (0...65535).contains(port) else { return nil }
        return ListenAddress(host: String(hostPart), port: port)
    }
}

/// An ordered string key/value pair (headers, resource attributes).
public struct KeyValuePair: Sendable, Equatable {
    /// The key.
    public var key: String
    /// The value.
    public var value: String
    /// Creates a pair.
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// The rules for a header the operator configures (sent as given, so checked once when the configuration is loaded).
public enum HeaderText {
    /// Why `name: value` cannot be sent as an HTTP header, or `nil` when it can: the name must be a token (RFC 9110
    /// §5.1), the value must not hold CR, LF or NUL (which would end the header and start another). The reason never
    /// quotes the value, which may be a credential.
    public static func problem(name: String, value: String) -> String? {
        if name.isEmpty { return "the header name is empty" }
        for byte in name.utf8 where !isTokenByte(byte) {
            return
                "the header name \"\(name.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? String($0) : "?" }.joined())\" is not an HTTP token"
        }
        for byte in value.utf8 where byte == 0x0D || byte == 0x0A || byte == 0 {
            return "the value of \(name) contains a line break or NUL"
        }
        return nil
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
