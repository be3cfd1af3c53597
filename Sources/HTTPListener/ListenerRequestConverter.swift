import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Makes HTTPTypes requests of NIO's request parts for the application (Hummingbird), after the handlers that take
/// requests before it (the passthrough reads NIO's parts as the decoder made them, and forwards most requests
/// without this conversion).
///
/// The conversion (``request(_:secure:)``) is NIOHTTPTypesHTTP1's `HTTP1ToHTTPServerCodec`'s (no cookie splitting),
/// except that an origin-form target (`/path?query`: every request MLflow clients send) becomes the request's path
/// as it is. That codec parses every target with Foundation's `URLComponents` to turn an absolute-form target
/// (`http://host/path`) into its path, and returns an origin-form one unchanged, so the result is the same; only the
/// parse per request is saved. Other targets go through that codec's own conversion. A head that cannot be
/// converted is an error caught by the pipeline, as with that codec.
final class ListenerRequestConverter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPRequestPart

    private let secure: Bool

    /// A converter for a listener with TLS (`secure`: the requests' scheme is `https`) or without.
    init(secure: Bool) { self.secure = secure }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            do {
                context.fireChannelRead(wrapInboundOut(.head(try Self.request(head, secure: secure))))
            } catch {
                context.fireErrorCaught(error)
            }
        case .body(let body):
            context.fireChannelRead(wrapInboundOut(.body(body)))
        case .end(let trailers):
            context.fireChannelRead(wrapInboundOut(.end(trailers.map { HTTPFields($0, splitCookie: false) })))
        }
    }

    /// The HTTPTypes request of an HTTP/1 head, as `HTTPRequest(head, secure:splitCookie: false)` makes it.
    static func request(_ head: HTTPRequestHead, secure: Bool) throws -> HTTPRequest {
        guard head.uri.utf8.first == UInt8(ascii: "/") else { return try HTTPRequest(head, secure: secure, splitCookie: false) }
        let (fields, authority) = Self.fields(head.headers)
        return HTTPRequest(
            method: try HTTPRequest.Method(head.method), scheme: secure ? "https" : "http", authority: authority, path: head.uri,
            headerFields: fields)
    }

    /// The fields NIOHTTPTypesHTTP1's `HTTPFields(headers, splitCookie: false)` makes (the first `Host` left out,
    /// names that are not tokens dropped, values legalized), and that first `Host`'s value, the request's authority
    /// (`headers["Host"].first`), found in the same pass. A name spelt exactly as one of HTTPTypes' own (what clients
    /// send: `User-Agent`, `Accept`, …) is that constant: the same name, without checking it and making its lower-case
    /// form again.
    static func fields(_ headers: HTTPHeaders) -> (fields: HTTPFields, authority: String?) {
        var fields = HTTPFields()
        fields.reserveCapacity(headers.count)
        var authority: String?
        var hostSeen = false
        for header in headers {
            if !hostSeen && RelayedField.nameEquals(header.name, lowercased: "host") {
                hostSeen = true
                authority = header.value
                continue
            }
            guard let name = knownName(header.name) ?? HTTPField.Name(header.name) else { continue }
            fields.append(HTTPField(name: name, value: header.value))
        }
        return (fields, authority)
    }

    /// HTTPTypes' constant for a name spelt exactly as it is, for the names most requests carry.
    private static func knownName(_ name: String) -> HTTPField.Name? {
        switch name {
        case "User-Agent": .userAgent
        case "Accept": .accept
        case "Accept-Encoding": .acceptEncoding
        case "Connection": .connection
        case "Content-Type": .contentType
        case "Content-Length": .contentLength
        case "Authorization": .authorization
        default: nil
        }
    }
}

extension HTTPFields {
    /// The fields of a request's headers as the application gets them (``ListenerRequestConverter``): the first
    /// `Host` left out (it is the request's authority), names that are not tokens dropped, values legalized.
    public init(requestHeaders headers: HTTPHeaders) {
        self = ListenerRequestConverter.fields(headers).fields
    }
}
