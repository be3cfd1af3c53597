import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// The listener's HTTP/1 codec above NIO's request decoder: requests pass on as NIO's parts (the passthrough reads
/// them as they are; ``ListenerRequestConverter``, after it, makes HTTPTypes requests of the ones the application
/// answers), answers are written as HTTP/1 bytes.
///
/// Answers: the bytes NIO's `HTTPResponseEncoder` writes for the answer converted to NIO's head (framing headers set
/// automatically, and no body for an answer to `HEAD` or `CONNECT`, whose methods this codec notes as requests come
/// in, as NIO's decoder tells its encoder), without the conversion: the head is measured and written in one pass,
/// where NIO's encoder converts the fields into its own headers and writes each name, separator and value separately.
final class ListenerHTTPTypesCodec: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = IOData

    /// The requests not answered yet, in order: what their methods mean for their answers' bodies.
    private var unanswered = CircularBuffer<AnswerBody>(initialCapacity: 2)

    /// What a request's method means for its answer's body (as NIO's encoder has it).
    private enum AnswerBody {
        /// As the status says.
        case usual
        /// `HEAD`: none, but the framing headers say what a `GET` would get.
        case headersOnly
        /// `CONNECT`: none, and no framing headers.
        case nothing
    }
    /// Whether the answer being written goes without its body (an answer to `HEAD` or `CONNECT`).
    private var suppressesBody = false
    /// Whether the answer being written has a chunked body.
    private var isChunked = false
    /// This handler's context while it is in the pipeline (for ``RelayedAnswerWriter``'s writes).
    private var context: ChannelHandlerContext?

    /// A codec for a listener's connection.
    init() {}

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            unanswered.append(head.method == .HEAD ? .headersOnly : head.method == .CONNECT ? .nothing : .usual)
        }
        context.fireChannelRead(data)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let response):
            writeHead(status: response.status, fields: response.headerFields, context: context, promise: promise)
        case .body(let body):
            writeBody(body, context: context, promise: promise)
        case .end(let trailers):
            writeEnd(trailers: trailers, context: context, promise: promise)
        }
    }

    /// Writes an answer's head (``write(status:fields:bodiless:to:)``), noting what it means for the body.
    private func writeHead(
        status: HTTPResponse.Status, fields: some Collection<some AnswerField>, context: ChannelHandlerContext,
        promise: EventLoopPromise<Void>?
    ) {
        var bodiless = false
        // A non-final interim answer (1xx but 101) is followed by the final one, which answers the request.
        if !((100..<200).contains(status.code) && status.code != 101), let request = unanswered.popFirst() {
            suppressesBody = request != .usual
            bodiless = request == .nothing
        }
        var buffer = context.channel.allocator.buffer(capacity: 0)
        let chunked = Self.write(status: status, fields: fields, bodiless: bodiless, to: &buffer)
        isChunked = suppressesBody ? false : chunked
        context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
    }

    /// Writes a head and, when the answer has a body that is not chunked, `body` after it in the same buffer (one
    /// buffer for the socket: a `write`, not a `writev`); any other body as ``writeBody(_:context:promise:)`` writes it.
    private func writeHead(
        status: HTTPResponse.Status, fields: [RelayedField], body: ByteBuffer, context: ChannelHandlerContext
    ) {
        var bodiless = false
        if !((100..<200).contains(status.code) && status.code != 101), let request = unanswered.popFirst() {
            suppressesBody = request != .usual
            bodiless = request == .nothing
        }
        var buffer = context.channel.allocator.buffer(capacity: 0)
        let chunked = Self.write(status: status, fields: fields, bodiless: bodiless, to: &buffer, reserving: body.readableBytes)
        isChunked = suppressesBody ? false : chunked
        if suppressesBody || isChunked {
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
            if body.readableBytes > 0 { writeBody(body, context: context, promise: nil) }
        } else {
            var body = body
            buffer.writeBuffer(&body)
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
        }
    }

    private func writeBody(_ body: ByteBuffer, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if suppressesBody {
            // As NIO's encoder: a body for an answer to HEAD or CONNECT is refused, not dropped silently.
            promise?.fail(NIOHTTPResponseEncoderError.responseBodyNotAllowed)
        } else if isChunked && body.readableBytes > 0 {
            var line = context.channel.allocator.buffer(capacity: 20)
            line.writeString(String(body.readableBytes, radix: 16))
            line.writeStaticString("\r\n")
            context.write(wrapOutboundOut(.byteBuffer(line)), promise: nil)
            context.write(wrapOutboundOut(.byteBuffer(body)), promise: nil)
            var end = context.channel.allocator.buffer(capacity: 2)
            end.writeStaticString("\r\n")
            context.write(wrapOutboundOut(.byteBuffer(end)), promise: promise)
        } else {
            // An empty part is not framed (it would end a chunked body) but still written, for its promise.
            context.write(wrapOutboundOut(.byteBuffer(body)), promise: promise)
        }
    }

    private func writeEnd(trailers: HTTPFields?, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        suppressesBody = false
        if isChunked {
            var buffer = context.channel.allocator.buffer(capacity: 8)
            buffer.writeStaticString("0\r\n")
            for field in trailers ?? [:] {
                buffer.writeString(field.name.rawName)
                buffer.writeStaticString(": ")
                buffer.writeString(field.value)
                buffer.writeStaticString("\r\n")
            }
            buffer.writeStaticString("\r\n")
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
        } else if let promise {
            // Nothing to write, but the promise completes in order with the writes before it.
            context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
        }
    }

    // MARK: Relayed answers (``RelayedAnswerWriter``), written here without passing the handlers after this one

    /// Writes a relayed answer's head: the same bytes as an `HTTPResponse` with these fields in this order.
    func writeRelayedHead(status: HTTPResponse.Status, fields: [RelayedField]) {
        guard let context else { return }
        writeHead(status: status, fields: fields, context: context, promise: nil)
    }

    /// Writes a relayed answer's head and its whole body (bytes as ``writeRelayedHead(status:fields:)`` then
    /// ``writeRelayedBody(_:)``, in one buffer where they follow each other unchanged).
    func writeRelayedHead(status: HTTPResponse.Status, fields: [RelayedField], wholeBody: ByteBuffer) {
        guard let context else { return }
        writeHead(status: status, fields: fields, body: wholeBody, context: context)
    }

    func writeRelayedBody(_ body: ByteBuffer) {
        guard let context else { return }
        writeBody(body, context: context, promise: nil)
    }

    func writeRelayedEnd(promise: EventLoopPromise<Void>?) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        writeEnd(trailers: nil, context: context, promise: promise)
    }

    /// Flushes from this handler's place (what a flush from the handlers after it would reach).
    func flushRelayed() { context?.flush() }

    /// Writes an answer's status line and headers as NIO's encoder writes `HTTPResponseHead(response)`: `HTTP/1.1`, the
    /// code and NIO's reason phrase for it (the answer's own for a code NIO does not know), the fields in order. The
    /// framing headers are corrected as NIO corrects them: an answer without a body (1xx, 204, 304, or `bodiless`: to
    /// `CONNECT`) loses `Content-Length` and `Transfer-Encoding`; one with a `Content-Length` loses `Transfer-Encoding`;
    /// one with neither is chunked (`transfer-encoding: chunked`, last, replacing any other). Returns whether the body
    /// is chunked.
    static func write(_ response: HTTPResponse, bodiless: Bool, to buffer: inout ByteBuffer) -> Bool {
        write(status: response.status, fields: response.headerFields, bodiless: bodiless, to: &buffer)
    }

    /// ``write(_:bodiless:to:)`` for a status and fields given apart (an answer's, or a relayed answer's).
    /// `reserving`: room for that many more bytes after the head (a body written after it in the same buffer).
    static func write(
        status answerStatus: HTTPResponse.Status, fields: some Collection<some AnswerField>, bodiless: Bool, to buffer: inout ByteBuffer,
        reserving: Int = 0
    ) -> Bool {
        let status = HTTPResponseStatus(statusCode: answerStatus.code, reasonPhrase: answerStatus.reasonPhrase)
        let mayHaveBody = !bodiless && status.mayHaveResponseBody
        let hasLength = fields.contains { $0.isContentLength }
        let dropsLength = !mayHaveBody
        // `Transfer-Encoding` never stays: a body without one has none, one with a length does not need it, and one
        // without a length is chunked by this encoder.
        let chunked = mayHaveBody && !hasLength
        let code = String(status.code)
        let phrase = status.reasonPhrase
        var size = 9 + code.utf8.count + 1 + phrase.utf8.count + 2 + 2 + (chunked ? 28 : 0)
        for field in fields { size += field.nameText.utf8.count + 2 + field.valueText.utf8.count + 2 }
        buffer.reserveCapacity(minimumWritableBytes: size + reserving)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
            var output = HeadOutput(raw: raw)
            output.append("HTTP/1.1 ")
            output.append(code)
            output.append(UInt8(ascii: " "))
            output.append(phrase)
            output.appendLineEnd()
            for field in fields {
                if dropsLength && field.isContentLength { continue }
                if field.isTransferEncoding { continue }
                output.append(field.nameText)
                output.append(UInt8(ascii: ":"))
                output.append(UInt8(ascii: " "))
                output.append(field.valueText)
                output.appendLineEnd()
            }
            if chunked { output.append("transfer-encoding: chunked\r\n") }
            output.appendLineEnd()
            return output.written
        }
        return chunked
    }
}

/// A header field as the head writer reads it: HTTPTypes' fields, or a relayed answer's (``RelayedField``).
protocol AnswerField {
    var nameText: String { get }
    var valueText: String { get }
    var isContentLength: Bool { get }
    var isTransferEncoding: Bool { get }
}

extension HTTPField: AnswerField {
    var nameText: String { name.rawName }
    var valueText: String { value }
    var isContentLength: Bool { name == .contentLength }
    var isTransferEncoding: Bool { name == .transferEncoding }
}

/// Bytes copied into a buffer whose size was measured from them beforehand (an HTTP/1 head written in one pass:
/// ``ListenerHTTPTypesCodec``'s answers, the passthrough's upstream requests). The writers measure exactly what they
/// then append; appending past the buffer stops the process (a precondition) rather than write past it.
public struct HeadOutput {
    let raw: UnsafeMutableRawBufferPointer
    /// The bytes appended so far.
    public private(set) var written = 0

    /// Appends into `raw`, from its start.
    public init(raw: UnsafeMutableRawBufferPointer) { self.raw = raw }

    /// Appends one byte.
    public mutating func append(_ byte: UInt8) {
        precondition(written < raw.count, "a head longer than measured")
        raw[written] = byte
        written += 1
    }

    /// Appends `\r\n`.
    public mutating func appendLineEnd() {
        append(UInt8(ascii: "\r"))
        append(UInt8(ascii: "\n"))
    }

    /// Appends a string's UTF-8 bytes (copied as a block when the string is stored contiguously, as native ones are).
    public mutating func append(_ text: String) {
        let copied = text.utf8.withContiguousStorageIfAvailable { bytes in
            precondition(bytes.count <= raw.count - written, "a head longer than measured")
            UnsafeMutableRawBufferPointer(rebasing: raw[written...]).copyMemory(from: UnsafeRawBufferPointer(bytes))
            return bytes.count
        }
        if let copied {
            written += copied
        } else {
            for byte in text.utf8 { append(byte) }
        }
    }
}
