import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
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
            try pipeline.addHandler(ListenerHTTPTypesCodec(secure: false))
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
}

extension HTTPFields {
    fileprivate static func + (lhs: HTTPFields, rhs: HTTPFields) -> HTTPFields { HTTPFields(Array(lhs) + Array(rhs)) }
}
