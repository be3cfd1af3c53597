import HTTPTypes
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import ProxyObservability
import TestSupport
import Testing

@testable import HTTPListener

/// The listener's answers as bytes: ``ListenerHTTPTypesCodec`` after NIO's request decoder against what it replaces,
/// NIO's server pipeline (`configureHTTPServerPipeline` as the listener set it up: no pipelining assistance, error
/// handling or header validation) writing the answer converted by NIOHTTPTypesHTTP1 to NIO's head. Same requests in,
/// same answers written: the same bytes on the wire and the same writes failed.
@Suite struct ListenerResponseEncodingTests {
    /// The conversion the codec did before it wrote bytes itself (NIOHTTPTypesHTTP1's).
    final class Conversion: ChannelOutboundHandler {
        typealias OutboundIn = HTTPResponsePart
        typealias OutboundOut = HTTPServerResponsePart

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            switch unwrapOutboundIn(data) {
            case .head(let response): context.write(wrapOutboundOut(.head(HTTPResponseHead(response))), promise: promise)
            case .body(let body): context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: promise)
            case .end(let trailers): context.write(wrapOutboundOut(.end(trailers.map(HTTPHeaders.init))), promise: promise)
            }
        }
    }

    /// The bytes written and whether each write succeeded, for `requests` (raw HTTP/1) answered with `answers`.
    static func wire(listener: Bool, requests: String, answers: [HTTPResponsePart]) throws -> (bytes: String, writes: [Bool]) {
        let channel = EmbeddedChannel()
        let pipeline = channel.pipeline.syncOperations
        if listener {
            try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try pipeline.addHandler(ListenerHTTPTypesCodec())
        } else {
            try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false)
            try pipeline.addHandler(Conversion())
        }
        try channel.writeInbound(ByteBuffer(string: requests))
        let (bytes, writes) = try bytesWritten(through: channel, answers)
        _ = try? channel.finish()
        return (String(decoding: bytes, as: UTF8.self), writes)
    }

    static func request(_ method: String) -> String { "\(method) /api/2.0/mlflow/experiments/get?experiment_id=1 HTTP/1.1\r\nHost: proxy\r\n\r\n" }
    static func head(_ code: Int, _ phrase: String = "", _ fields: HTTPFields = [:]) -> HTTPResponsePart {
        .head(HTTPResponse(status: .init(code: code, reasonPhrase: phrase), headerFields: fields))
    }
    static let json: HTTPResponsePart = .body(ByteBuffer(string: #"{"experiment": {"experiment_id": "1"}}"#))
    static let empty: HTTPResponsePart = .body(ByteBuffer())
    static let typed: HTTPFields = [.contentType: "application/json", .init("X-Request-Id")!: "Zoë ☃"]  // a valid literal name

    static let exchanges: [(String, String, [HTTPResponsePart])] = [
        ("a length", request("GET"), [head(200, "OK", typed + [.contentLength: "38"]), json, .end(nil)]),
        ("no length: chunked", request("GET"), [head(200, "OK", typed), json, empty, json, .end(nil)]),
        ("chunked with trailers", request("POST"), [head(201, "Created"), json, .end([.init("X-Sum")!: "1"])]),
        (
            "a length and Transfer-Encoding", request("GET"),
            [head(200, "OK", [.transferEncoding: "chunked", .contentLength: "38"]), json, .end(nil)]
        ),
        ("Transfer-Encoding of its own", request("GET"), [head(200, "OK", [.transferEncoding: "gzip", .contentType: "a/b"]), json, .end(nil)]),
        ("HEAD with a length", request("HEAD"), [head(200, "OK", [.contentLength: "38"]), .end(nil)]),
        ("HEAD without a length", request("HEAD"), [head(200, "OK", typed), .end(nil)]),
        ("HEAD with a body written", request("HEAD"), [head(200, "OK", [.contentLength: "38"]), json, .end(nil)]),
        ("CONNECT", request("CONNECT"), [head(200, "OK", [.contentLength: "38", .transferEncoding: "chunked"]), .end(nil)]),
        ("204", request("DELETE"), [head(204, "No Content", [.contentLength: "0", .transferEncoding: "chunked"]), .end(nil)]),
        ("304", request("GET"), [head(304, "Not Modified", [.contentLength: "38"]), .end(nil)]),
        ("an interim answer first", request("HEAD"), [head(100, "Continue"), .end(nil), head(200, "OK", typed), .end(nil)]),
        ("NIO's own phrase for a known code", request("GET"), [head(200, "Fine", [.contentLength: "0"]), .end(nil)]),
        ("508 Loop Detected", request("GET"), [head(508, "Loop Detected", [.connection: "close", .contentLength: "0"]), .end(nil)]),
        ("a code NIO does not know", request("GET"), [head(599, "Odd", [.contentLength: "0"]), .end(nil)]),
        ("no phrase", request("GET"), [head(599, "", [.contentLength: "0"]), .end(nil)]),
        (
            "pipelined HEAD then GET", request("HEAD") + request("GET"),
            [head(200, "OK", typed), .end(nil), head(200, "OK", typed), json, .end(nil)]
        ),
        ("an answer before any request", "", [head(400, "Bad Request", [.connection: "close"]), json, .end(nil)]),
    ]

    @Test(arguments: exchanges.map(\.0))
    func writesWhatNIOsEncoderWrites(_ name: String) throws {
        let (_, requests, answers) = try #require(Self.exchanges.first { $0.0 == name })
        let listener = try Self.wire(listener: true, requests: requests, answers: answers)
        let nio = try Self.wire(listener: false, requests: requests, answers: answers)
        #expect(listener.bytes == nio.bytes)
        #expect(listener.writes == nio.writes)
    }

    /// The listener's pipeline with the guard after the codec and the connection's ``RelayedAnswerWriter``, after
    /// `requests` (raw HTTP/1) came in.
    static func relayPipeline(requests: String) throws -> (EmbeddedChannel, RelayedAnswerWriter) {
        let channel = EmbeddedChannel()
        let pipeline = channel.pipeline.syncOperations
        let codec = ListenerHTTPTypesCodec()
        let guardHandler = ConnectionGuardHandler(
            limits: ConnectionLimits(), rejectAsOverLimit: false, counters: ProxyCounters(), gauge: ConnectionGauge(listener: "test"),
            logger: Logger(label: "test"))
        try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
        try pipeline.addHandler(codec)
        try pipeline.addHandler(guardHandler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(string: requests))
        while try channel.readInbound(as: HTTPServerRequestPart.self) != nil {}
        return (channel, RelayedAnswerWriter(codec: codec, guardHandler: guardHandler))
    }

    /// The bytes an answer relayed through ``RelayedAnswerWriter`` comes out as (trailers are never relayed);
    /// `whole`: each answer's head written with its whole body, as the passthrough writes a small answer.
    static func relayed(requests: String, answers: [HTTPResponsePart], whole: Bool = false) throws -> (bytes: String, open: Bool) {
        let (channel, writer) = try relayPipeline(requests: requests)
        let parts = whole ? merged(answers) : answers
        for (index, answer) in parts.enumerated() {
            switch answer {
            case .head(let response):
                let fields = response.headerFields.compactMap { RelayedAnswerWriter.field(name: $0.name.rawName, value: $0.value) }
                let closes = response.headerFields[.connection] == "close"
                if whole, index + 1 < parts.count, case .body(let body) = parts[index + 1] {
                    writer.writeHead(status: response.status, fields: fields, closes: closes, wholeBody: body)
                } else {
                    writer.writeHead(status: response.status, fields: fields, closes: closes)
                }
            case .body(let body):
                if !whole { writer.writeBody(body) }
            case .end: writer.writeEnd()
            }
        }
        let bytes = try outboundBytes(of: channel)
        channel.embeddedEventLoop.run()
        let open = channel.isActive
        _ = try? channel.finish()
        return (String(decoding: bytes, as: UTF8.self), open)
    }

    /// An answer relayed through ``RelayedAnswerWriter`` is written as the same bytes as the same answer written
    /// through the pipeline as HTTPTypes parts (NIO's encoder's bytes, above); the connection closes after an answer
    /// that says `Connection: close`, as the guard closes it for one through the pipeline.
    @Test(
        arguments: exchanges.filter { exchange in !exchange.2.contains { if case .end(let trailers) = $0 { trailers != nil } else { false } } }.map(
            \.0))
    func relayedAnswersAreTheSameBytes(_ name: String) throws {
        let (_, requests, answers) = try #require(Self.exchanges.first { $0.0 == name })
        // A body for an answer to HEAD or CONNECT is refused either way (NIO's encoder fails that write).
        let relayed = try Self.relayed(requests: requests, answers: answers)
        let listener = try Self.wire(listener: true, requests: requests, answers: answers)
        #expect(relayed.bytes == listener.bytes)
        let closes = answers.contains { if case .head(let head) = $0 { head.headerFields[.connection] == "close" } else { false } }
        #expect(relayed.open == !closes)
        // A head written with its whole body: the bytes of the head and that body as one part.
        let whole = try Self.relayed(requests: requests, answers: answers, whole: true)
        let wholeThroughPipeline = try Self.wire(listener: true, requests: requests, answers: Self.merged(answers))
        #expect(whole.bytes == wholeThroughPipeline.bytes)
        #expect(whole.open == !closes)
    }

    /// The answers with each answer's body parts as one part (none for an answer without a body).
    static func merged(_ answers: [HTTPResponsePart]) -> [HTTPResponsePart] {
        var result: [HTTPResponsePart] = []
        var body: ByteBuffer?
        for answer in answers {
            switch answer {
            case .head: result.append(answer)
            case .body(var part):
                body = body ?? ByteBuffer()
                body?.writeBuffer(&part)
            case .end:
                if let whole = body { result.append(.body(whole)) }
                body = nil
                result.append(answer)
            }
        }
        return result
    }

    /// The header names a relayed answer keeps are the ones HTTPTypes accepts, byte for byte, and a value HTTPTypes
    /// would change is changed the same way.
    @Test func relayedFieldsAreWhatHTTPTypesWouldMakeOfThem() {
        for byte in UInt8(0)...UInt8(255) {
            let name = String(decoding: [UInt8(ascii: "x"), byte], as: UTF8.self)
            #expect((RelayedAnswerWriter.field(name: name, value: "v") != nil) == (HTTPField.Name(name) != nil), "byte \(byte)")
        }
        #expect(RelayedAnswerWriter.field(name: "", value: "v") == nil)
        #expect(RelayedAnswerWriter.field(name: "X-Ok_1.~", value: "v")?.name == "X-Ok_1.~")
        for value in ["plain", " leading", "trailing\t", "in  side", "zoë ☃", "nul\u{0}byte", "line\r\nbreak", ""] {
            let expected = HTTPField(name: .init("X-V")!, value: value).value  // a valid literal name
            #expect(RelayedAnswerWriter.field(name: "X-V", value: value)?.value == expected, "\(value.debugDescription)")
        }
    }
}

extension HTTPFields {
    fileprivate static func + (lhs: HTTPFields, rhs: HTTPFields) -> HTTPFields { HTTPFields(Array(lhs) + Array(rhs)) }
}
