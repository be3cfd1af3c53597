import HTTPListener
import HTTPTypes
import NIOHTTP1
import SharedSettings

/// What a forwarded request and its answer look like: the rules both forwarders follow (``PassthroughHandler``
/// on the listener's event loop, ``UpstreamForwarder`` for the trace uploads the proxy also reads), kept in one
/// place so that they cannot drift apart.
///
/// Method, target, end-to-end headers and body are kept; hop-by-hop headers (RFC 9110 §7.6.1, plus any named in
/// `Connection`) are dropped both ways; `X-Forwarded-For`, `-Proto` and `-Host` are set, `Via` gets this proxy's
/// ``LoopGuard`` entry, and the operator's upstream headers are added. Pure: no I/O.
public struct ForwardingRules: Sendable {
    /// The upstream MLflow server; its path is the base every request target is appended to.
    public let upstream: UpstreamURL
    /// Peers whose `X-Forwarded-*` headers are kept and extended; anyone else's are replaced.
    public let trustedProxies: [AddressRange]
    /// Whether clients reach the proxy over TLS (`X-Forwarded-Proto: https` for untrusted peers).
    public let listenerIsTLS: Bool

    /// The `Host` header for the upstream: its host, with the port when one is given.
    public let upstreamHost: String

    /// Rules for forwarding to `upstream`.
    public init(upstream: UpstreamURL, trustedProxies: [AddressRange], listenerIsTLS: Bool) {
        self.upstream = upstream
        self.trustedProxies = trustedProxies
        self.listenerIsTLS = listenerIsTLS
        let host = upstream.host.contains(":") ? "[\(upstream.host)]" : upstream.host
        upstreamHost = upstream.port.map { "\(host):\($0)" } ?? host
    }

    /// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus `Host` (set from the
    /// upstream URL) and `Content-Length` (set from the body that is actually sent).
    public static let hopByHop: Set<String> = Set(hopByHopByLength.joined().map { String(decoding: $0, as: UTF8.self) })

    /// ``hopByHop``'s names (lower case) by their length, for ``isHopByHop(_:)``.
    private static let hopByHopByLength: [[[UInt8]]] = {
        let names = [
            "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
            "proxy-authenticate", "proxy-authorization", "host", "content-length",
        ]
        var table = [[[UInt8]]](repeating: [], count: names.map(\.utf8.count).max()! + 1)  // a non-empty literal list
        for name in names { table[name.utf8.count].append(Array(name.utf8)) }
        return table
    }()

    /// Whether `name`, in any case, is one of ``hopByHop``: its bytes compared with the names of its length, without
    /// making a lower-cased copy or hashing it (this runs for every header of every forwarded request and answer).
    public static func isHopByHop(_ name: some StringProtocol) -> Bool {
        let count = name.utf8.count
        guard count < hopByHopByLength.count else { return false }
        return hopByHopByLength[count].contains { equalsIgnoringASCIICase(name, lowercased: $0) }
    }

    /// Whether `name`'s bytes are `lowercased`'s, ASCII letters compared without case.
    static func equalsIgnoringASCIICase(_ name: some StringProtocol, lowercased: [UInt8]) -> Bool {
        guard name.utf8.count == lowercased.count else { return false }
        func equal(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
            lowercased.withUnsafeBufferPointer { expected in
                for position in 0..<bytes.count {
                    let byte = bytes[position]
                    guard byte == expected[position] || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") && byte | 0x20 == expected[position])
                    else { return false }
                }
                return true
            }
        }
        return name.utf8.withContiguousStorageIfAvailable(equal) ?? Array(name.utf8).withUnsafeBufferPointer(equal)
    }

    private static let connectionName = Array("connection".utf8)
    private static let contentLengthName = Array("content-length".utf8)
    private static let forwardedPrefix = Array("x-forwarded-".utf8)

    /// Whether a lower-case header name is `x-forwarded-for`, `-proto` or `-host` (set by ``addForwardingHeaders``).
    private static func isForwardingHeader(_ canonicalName: String) -> Bool {
        let bytes = canonicalName.utf8
        guard bytes.count >= 15, bytes.count <= 17, bytes.starts(with: forwardedPrefix) else { return false }
        let rest = bytes.dropFirst(forwardedPrefix.count)
        return rest.elementsEqual("for".utf8) || rest.elementsEqual("proto".utf8) || rest.elementsEqual("host".utf8)
    }

    /// The request target the upstream gets: its base path, then the client's path and query.
    public func upstreamTarget(_ target: String) -> String { upstream.basePath + target }

    /// The upstream's port (the scheme's default when the URL has none).
    public var upstreamPort: Int { upstream.port ?? (upstream.scheme == "https" ? 443 : 80) }

    /// The end-to-end headers of a client's request for the upstream, with the forwarding headers, `Via` and the
    /// operator's upstream headers (a client's own `Authorization` kept over an injected one when `settings` say
    /// so). `Host`, the body's framing and an OAuth token are the caller's.
    /// - Parameters:
    ///   - fields: the client's headers.
    ///   - authority: the `Host` the client asked for.
    ///   - peer: the client's address, when known.
    public func requestHeaders(_ fields: HTTPFields, authority: String?, peer: String?, settings: LiveSettings.Snapshot) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.reserveCapacity(fields.count + 4)
        let connectionTokens = fields.contains(.connection) ? Self.connectionTokens(fields[values: .connection]) : []
        for field in fields {
            let name = field.name.canonicalName
            if Self.isHopByHop(name) || (!connectionTokens.isEmpty && connectionTokens.contains(name)) { continue }
            if Self.isForwardingHeader(name) { continue }
            headers.add(name: field.name.rawName, value: field.value)
        }
        addForwardingHeaders(fields, authority: authority, peer: peer, to: &headers)
        headers.add(name: "Via", value: LoopGuard.viaEntry)
        for header in settings.upstreamHeaders {
            if header.key.lowercased() == "authorization" && settings.clientAuthorization == .keep && headers.contains(name: "authorization") {
                continue
            }
            headers.replaceOrAdd(name: header.key, value: header.value)
        }
        return headers
    }

    /// Whether an access token from the upstream's OAuth credentials goes into these headers (not when the
    /// client's own `Authorization` is kept).
    public static func takesToken(_ headers: HTTPHeaders, settings: LiveSettings.Snapshot) -> Bool {
        !(settings.clientAuthorization == .keep && headers.contains(name: "authorization"))
    }

    /// The upstream's answer headers for the client: its hop-by-hop ones dropped, `Content-Length` kept (the body
    /// is passed on unchanged).
    public static func responseFields(_ headers: HTTPHeaders) -> HTTPFields {
        var fields = HTTPFields()
        fields.reserveCapacity(headers.count)
        var connectionValues: [String] = []
        for header in headers where equalsIgnoringASCIICase(header.name, lowercased: connectionName) { connectionValues.append(header.value) }
        let responseTokens = connectionValues.isEmpty ? [] : connectionTokens(connectionValues)
        for header in headers {
            if isHopByHop(header.name) && !equalsIgnoringASCIICase(header.name, lowercased: contentLengthName) { continue }
            if !responseTokens.isEmpty && responseTokens.contains(header.name.lowercased()) { continue }
            guard let fieldName = HTTPField.Name(header.name) else { continue }
            fields.append(HTTPField(name: fieldName, value: header.value))
        }
        return fields
    }

    /// `X-Forwarded-For`, `-Proto` and `-Host`. From a peer in `trusted_proxies` (a load balancer in front of the
    /// proxy) they are kept and the peer's address is appended to the `For` chain; from anyone else what the client
    /// sent is replaced by what the proxy saw (its address, the listener's scheme, the `Host` it asked for), so a
    /// client cannot make the upstream believe it comes from elsewhere.
    private func addForwardingHeaders(_ fields: HTTPFields, authority: String?, peer: String?, to headers: inout HTTPHeaders) {
        let trusted = peer.map { address in trustedProxies.contains { $0.contains(address) } } ?? false
        var chain = trusted ? fields[values: Self.forwardedFor].joined(separator: ", ") : ""
        if let peer { chain = chain.isEmpty ? peer : "\(chain), \(peer)" }
        if !chain.isEmpty { headers.add(name: "X-Forwarded-For", value: chain) }
        let ownProto = listenerIsTLS ? "https" : "http"
        headers.add(name: "X-Forwarded-Proto", value: trusted ? fields.value(of: Self.forwardedProto) ?? ownProto : ownProto)
        if let host = (trusted ? fields.value(of: Self.forwardedHost) : nil) ?? authority {
            headers.add(name: "X-Forwarded-Host", value: host)
        }
    }

    private static let forwardedFor = HTTPField.Name("X-Forwarded-For")!  // a valid literal header name
    private static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")!  // a valid literal header name
    private static let forwardedHost = HTTPField.Name("X-Forwarded-Host")!  // a valid literal header name

    /// Lower-cased header names listed in `Connection` values (`keep-alive` alone, the usual case, is an empty set:
    /// `Keep-Alive` is hop-by-hop anyway).
    public static func connectionTokens(_ values: some Sequence<String>) -> Set<String> {
        var tokens: Set<String> = []
        for value in values {
            var rest = value.utf8[...]
            while !rest.isEmpty {
                let comma = rest.firstIndex(of: UInt8(ascii: ",")) ?? rest.endIndex
                var token = rest[..<comma]
                rest = comma == rest.endIndex ? rest[comma...] : rest[rest.index(after: comma)...]
                while let first = token.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { token = token.dropFirst() }
                while let last = token.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { token = token.dropLast() }
                guard !token.isEmpty else { continue }
                let name = Substring(token)
                if !isHopByHop(name) { tokens.insert(name.lowercased()) }
            }
        }
        return tokens
    }
}
