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
        name.utf8.withContiguousStorageIfAvailable(isHopByHop(bytes:)) ?? Array(name.utf8).withUnsafeBufferPointer(isHopByHop(bytes:))
    }

    /// ``isHopByHop(_:)`` of a name's bytes.
    static func isHopByHop(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count < hopByHopByLength.count else { return false }
        return hopByHopByLength[bytes.count].contains { equalsIgnoringASCIICase(bytes: bytes, lowercased: $0) }
    }

    /// Whether `name`'s bytes are `lowercased`'s, ASCII letters compared without case.
    static func equalsIgnoringASCIICase(_ name: some StringProtocol, lowercased: [UInt8]) -> Bool {
        guard name.utf8.count == lowercased.count else { return false }
        func equal(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool { equalsIgnoringASCIICase(bytes: bytes, lowercased: lowercased) }
        return name.utf8.withContiguousStorageIfAvailable(equal) ?? Array(name.utf8).withUnsafeBufferPointer(equal)
    }

    /// ``equalsIgnoringASCIICase(_:lowercased:)`` of a name's bytes.
    static func equalsIgnoringASCIICase(bytes: UnsafeBufferPointer<UInt8>, lowercased: [UInt8]) -> Bool {
        guard bytes.count == lowercased.count else { return false }
        return lowercased.withUnsafeBufferPointer { expected in
            for position in 0..<bytes.count {
                let byte = bytes[position]
                guard byte == expected[position] || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") && byte | 0x20 == expected[position])
                else { return false }
            }
            return true
        }
    }

    private static let connectionName = Array("connection".utf8)
    private static let contentLengthName = Array("content-length".utf8)
    private static let forwardedPrefix = Array("x-forwarded-".utf8)

    /// Whether a header name is `X-Forwarded-For`, `-Proto` or `-Host` in any case (set by ``addForwardingHeaders``).
    private static func isForwardingHeader(_ name: String) -> Bool {
        let count = name.utf8.count
        guard count >= 15, count <= 17 else { return false }
        let lowercased = name.lowercased()
        let bytes = lowercased.utf8
        guard bytes.starts(with: forwardedPrefix) else { return false }
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
    ///   - fields: the client's headers: HTTPTypes' fields (the application's requests) or NIO's headers without
    ///     the first `Host` (the passthrough's), with the same result for the same request.
    ///   - authority: the `Host` the client asked for.
    ///   - peer: the client's address, when known.
    ///   - appending: headers added last (the caller's `Host` and framing).
    public func requestHeaders(
        _ fields: some ForwardedRequestHeaders, authority: String?, peer: String?, settings: LiveSettings.Snapshot,
        appending: [(String, String)] = []
    ) -> HTTPHeaders {
        // Collected as a list and made into headers once: `HTTPHeaders.add` checks every name for non-ASCII bytes,
        // which these cannot have (tokens, as HTTPTypes' fields and NIO's decoder have them, and literals).
        var list: [(String, String)] = []
        list.reserveCapacity(fields.fieldCount + 4 + appending.count)  // the forwarding headers and `Via`: at most 4
        let connectionTokens = Self.connectionTokens(fields.values(of: .connection))
        fields.forEachField { name, value in
            if Self.isHopByHop(name) || (!connectionTokens.isEmpty && connectionTokens.contains(name.lowercased())) { return }
            if Self.isForwardingHeader(name) { return }
            list.append((name, value))
        }
        addForwardingHeaders(fields, authority: authority, peer: peer, to: &list)
        list.append(("Via", LoopGuard.viaEntry))
        if settings.upstreamHeaders.isEmpty {
            list.append(contentsOf: appending)
            return HTTPHeaders(list)
        }
        var headers = HTTPHeaders(list)
        for header in settings.upstreamHeaders {
            if header.key.lowercased() == "authorization" && settings.clientAuthorization == .keep && headers.contains(name: "authorization") {
                continue
            }
            headers.replaceOrAdd(name: header.key, value: header.value)
        }
        for (name, value) in appending { headers.add(name: name, value: value) }
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
        forEachForwardedResponseHeader(headers) { name, value in
            guard let fieldName = HTTPField.Name(name) else { return }
            fields.append(HTTPField(name: fieldName, value: value))
        }
        return fields
    }

    /// ``responseFields(_:)`` for the listener's ``RelayedAnswerWriter``: the same fields, not made into HTTPTypes
    /// fields.
    public static func relayedResponseFields(_ headers: HTTPHeaders) -> [RelayedField] {
        var fields: [RelayedField] = []
        fields.reserveCapacity(headers.count + 1)
        forEachForwardedResponseHeader(headers) { name, value in
            if let field = RelayedAnswerWriter.field(name: name, value: value) { fields.append(field) }
        }
        return fields
    }

    /// Calls `body` with each of the upstream's answer headers that goes to the client, in order.
    private static func forEachForwardedResponseHeader(_ headers: HTTPHeaders, _ body: (String, String) -> Void) {
        var connectionValues: [String] = []
        for header in headers where equalsIgnoringASCIICase(header.name, lowercased: connectionName) { connectionValues.append(header.value) }
        let responseTokens = connectionValues.isEmpty ? [] : connectionTokens(connectionValues)
        for header in headers {
            if isHopByHop(header.name) && !equalsIgnoringASCIICase(header.name, lowercased: contentLengthName) { continue }
            if !responseTokens.isEmpty && responseTokens.contains(header.name.lowercased()) { continue }
            body(header.name, header.value)
        }
    }

    /// `X-Forwarded-For`, `-Proto` and `-Host`. From a peer in `trusted_proxies` (a load balancer in front of the
    /// proxy) they are kept and the peer's address is appended to the `For` chain; from anyone else what the client
    /// sent is replaced by what the proxy saw (its address, the listener's scheme, the `Host` it asked for), so a
    /// client cannot make the upstream believe it comes from elsewhere.
    private func addForwardingHeaders(
        _ fields: some ForwardedRequestHeaders, authority: String?, peer: String?, to headers: inout [(String, String)]
    ) {
        let trusted = peer.map { address in trustedProxies.contains { $0.contains(address) } } ?? false
        var chain = trusted ? fields.values(of: Self.forwardedFor).joined(separator: ", ") : ""
        if let peer { chain = chain.isEmpty ? peer : "\(chain), \(peer)" }
        if !chain.isEmpty { headers.append(("X-Forwarded-For", chain)) }
        let ownProto = listenerIsTLS ? "https" : "http"
        headers.append(("X-Forwarded-Proto", trusted ? fields.value(of: Self.forwardedProto) ?? ownProto : ownProto))
        if let host = (trusted ? fields.value(of: Self.forwardedHost) : nil) ?? authority {
            headers.append(("X-Forwarded-Host", host))
        }
    }

    private static let forwardedFor = HTTPField.Name("X-Forwarded-For")!  // a valid literal header name
    private static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")!  // a valid literal header name
    private static let forwardedHost = HTTPField.Name("X-Forwarded-Host")!  // a valid literal header name

    /// Lower-cased header names listed in `Connection` values (`keep-alive` alone, the usual case, is an empty set:
    /// `Keep-Alive` is hop-by-hop anyway).
    public static func connectionTokens(_ values: some Sequence<String>) -> Set<String> {
        var tokens: Set<String> = []
        for var value in values {
            value.withUTF8 { bytes in
                var start = 0
                while start < bytes.count {
                    var end = start
                    while end < bytes.count && bytes[end] != UInt8(ascii: ",") { end += 1 }
                    var first = start
                    var last = end
                    while first < last && (bytes[first] == UInt8(ascii: " ") || bytes[first] == UInt8(ascii: "\t")) { first += 1 }
                    while last > first && (bytes[last - 1] == UInt8(ascii: " ") || bytes[last - 1] == UInt8(ascii: "\t")) { last -= 1 }
                    let token = UnsafeBufferPointer(rebasing: bytes[first..<last])
                    if !token.isEmpty && !isHopByHop(bytes: token) { tokens.insert(String(decoding: token, as: UTF8.self).lowercased()) }
                    start = end + 1
                }
            }
        }
        return tokens
    }
}

/// A client's request headers as ``ForwardingRules/requestHeaders(_:authority:peer:settings:appending:)`` reads
/// them: HTTPTypes' fields (the requests the application forwards) or NIO's headers as the listener's decoder made
/// them (the passthrough's, never converted). Names are compared without case; a repeated field's values are joined
/// with `", "`.
public protocol ForwardedRequestHeaders {
    /// How many fields there are.
    var fieldCount: Int { get }
    /// Calls `body` with each field's name (as the client spelt it) and value, in order.
    func forEachField(_ body: (_ name: String, _ value: String) -> Void)
    /// The values of the fields named `name`, one per field line.
    func values(of name: HTTPField.Name) -> [String]
    /// The value of the field `name` (a repeated one's values joined with `", "`); `nil` when there is none.
    func value(of name: HTTPField.Name) -> String?
}

/// `value(of:)` and `values(of:)` are HTTPListener's (the same lookups admission makes).
extension HTTPFields: ForwardedRequestHeaders {
    public var fieldCount: Int { count }
    public func forEachField(_ body: (_ name: String, _ value: String) -> Void) {
        for field in self { body(field.name.rawName, field.value) }
    }
}

/// NIO's headers give each value as HTTPTypes' fields hold it (``HTTPHeaders/fieldValue(_:)``).
extension HTTPHeaders: ForwardedRequestHeaders {
    public var fieldCount: Int { count }
    public func forEachField(_ body: (_ name: String, _ value: String) -> Void) {
        for header in self { body(header.name, Self.fieldValue(header.value)) }
    }
}
