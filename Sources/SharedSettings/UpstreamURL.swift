import Foundation

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
