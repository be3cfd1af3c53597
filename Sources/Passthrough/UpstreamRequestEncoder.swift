import HTTPListener
import NIOCore
import NIOHTTP1

/// Writes the passthrough's requests to an upstream connection in HTTP/1 wire format: NIO's `HTTPRequestEncoder`
/// (framing headers set automatically) with the same bytes on the wire, except that a head is measured first and
/// written into one buffer of its size in one pass, and its framing is found in one scan of the headers; headers are
/// changed only where NIO's encoder changes them (a declared length drops `Transfer-Encoding`, a body without a length
/// gets `transfer-encoding: chunked`, a `TRACE` loses both). NIO's encoder writes every name, separator and value as a
/// separate buffer write (about a tenth of a passthrough call's instructions).
///
/// It sits where NIO's encoder would, before the response decoder (which reads each request head going out, to
/// know that an answer to `HEAD` has no body).
final class UpstreamRequestEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = IOData

    /// Whether the body of the request being written is chunked (otherwise its end writes nothing).
    private(set) var isChunked = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            isChunked = Self.frame(&head) == .chunked
            var buffer = context.channel.allocator.buffer(capacity: 0)
            Self.write(head, to: &buffer)
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
        case .body(let part):
            guard isChunked, part.readableBytes > 0 else {
                // An empty part is not framed (it would end a chunked body) but still written, for its promise.
                context.write(wrapOutboundOut(part), promise: promise)
                return
            }
            var line = context.channel.allocator.buffer(capacity: 20)
            line.writeString(String(part.readableBytes, radix: 16))
            line.writeStaticString("\r\n")
            context.write(wrapOutboundOut(.byteBuffer(line)), promise: nil)
            context.write(wrapOutboundOut(part), promise: nil)
            var end = context.channel.allocator.buffer(capacity: 2)
            end.writeStaticString("\r\n")
            context.write(wrapOutboundOut(.byteBuffer(end)), promise: promise)
        case .end(let trailers):
            if isChunked {
                var buffer = context.channel.allocator.buffer(capacity: 8)
                buffer.writeStaticString("0\r\n")
                if let trailers {
                    Self.write(fields: trailers, to: &buffer)
                } else {
                    buffer.writeStaticString("\r\n")
                }
                context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
            } else if let promise {
                // Nothing to write, but the promise completes in order with the writes before it.
                context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
            }
        }
    }

    /// How a request body is delimited on the wire.
    enum Framing: Equatable {
        case contentLength, chunked, neither
    }

    private static let contentLengthName = Array("content-length".utf8)
    private static let transferEncodingName = Array("transfer-encoding".utf8)

    /// The framing of `head`'s body, with its headers corrected as NIO's encoder corrects them: `TRACE` has no body
    /// (both framing headers dropped); a declared length wins over `Transfer-Encoding` (dropped); `POST`, `PUT` and
    /// `PATCH` without a length are chunked (`transfer-encoding: chunked` replaces any other); other methods are
    /// chunked only when their first `Transfer-Encoding` says so. HTTP/1.0 has no chunked bodies.
    static func frame(_ head: inout HTTPRequestHead) -> Framing {
        var hasLength = false
        var firstTransferEncoding: String?
        var transferEncodings = 0
        for header in head.headers {
            if ForwardingRules.equalsIgnoringASCIICase(header.name, lowercased: contentLengthName) {
                hasLength = true
            } else if ForwardingRules.equalsIgnoringASCIICase(header.name, lowercased: transferEncodingName) {
                if firstTransferEncoding == nil { firstTransferEncoding = header.value }
                transferEncodings += 1
            }
        }
        let modern = head.version.major == 1 && head.version.minor >= 1
        switch head.method {
        case .TRACE:
            if hasLength { head.headers.remove(name: "content-length") }
            if transferEncodings > 0 { head.headers.remove(name: "transfer-encoding") }
            return .neither
        case .POST, .PUT, .PATCH:
            if hasLength {
                if transferEncodings > 0 { head.headers.remove(name: "transfer-encoding") }
                return .contentLength
            }
            guard modern else { return .neither }
            head.headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
            return .chunked
        default:
            if hasLength {
                if transferEncodings > 0 { head.headers.remove(name: "transfer-encoding") }
                return .contentLength
            }
            return modern && firstTransferEncoding == "chunked" ? .chunked : .neither
        }
    }

    /// The request line and headers, as NIO's encoder writes them (`METHOD target HTTP/1.1`, `Name: value` lines, an
    /// empty line), measured first and copied in one pass.
    static func write(_ head: HTTPRequestHead, to buffer: inout ByteBuffer) {
        let method = head.method.rawValue
        let version: String
        switch (head.version.major, head.version.minor) {
        case (1, 1): version = "HTTP/1.1"
        case (1, 0): version = "HTTP/1.0"
        default: version = "HTTP/\(head.version.major).\(head.version.minor)"
        }
        var size = method.utf8.count + 1 + head.uri.utf8.count + 1 + version.utf8.count + 2 + 2
        for header in head.headers { size += header.name.utf8.count + 2 + header.value.utf8.count + 2 }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            var output = HeadOutput(raw: raw)
            output.append(method)
            output.append(UInt8(ascii: " "))
            output.append(head.uri)
            output.append(UInt8(ascii: " "))
            output.append(version)
            output.appendLineEnd()
            for header in head.headers {
                output.append(header.name)
                output.append(UInt8(ascii: ":"))
                output.append(UInt8(ascii: " "))
                output.append(header.value)
                output.appendLineEnd()
            }
            output.appendLineEnd()
            return output.written
        }
    }

    /// Trailer lines and the empty line that ends them.
    static func write(fields: HTTPHeaders, to buffer: inout ByteBuffer) {
        for header in fields {
            buffer.writeString(header.name)
            buffer.writeStaticString(": ")
            buffer.writeString(header.value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
    }
}
