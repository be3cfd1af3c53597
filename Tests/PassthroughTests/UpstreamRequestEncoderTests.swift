import NIOCore
import NIOEmbedded
import NIOHTTP1
import TestSupport
import Testing

@testable import Passthrough

/// The proxy's upstream request encoder against NIO's own `HTTPRequestEncoder` (the one it replaces, framing headers
/// set automatically): for every request the same bytes on the wire and the same promises completed.
@Suite struct UpstreamRequestEncoderTests {
    /// The bytes the proxy's encoder (`ours`) or NIO's writes for `parts`.
    static func wire(ours: Bool, _ parts: [HTTPClientRequestPart]) throws -> [UInt8] {
        let channel = EmbeddedChannel()
        if ours {
            try channel.pipeline.syncOperations.addHandler(UpstreamRequestEncoder())
        } else {
            try channel.pipeline.syncOperations.addHandler(HTTPRequestEncoder())
        }
        let (bytes, succeeded) = try bytesWritten(through: channel, parts)
        #expect(succeeded.allSatisfy { $0 })  // every write got its promise through
        _ = try channel.finish()
        return bytes
    }

    static func head(_ method: HTTPMethod, _ headers: [(String, String)], version: HTTPVersion = .http1_1) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: method, uri: "/api/2.0/mlflow/runs/get?run_id=abc%20d&x=é", headers: HTTPHeaders(headers))
    }

    static let body = HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: "{\"run_id\": \"abc\"}")))
    static let empty = HTTPClientRequestPart.body(.byteBuffer(ByteBuffer()))

    /// Requests as the passthrough sends them, and the framing cases NIO's encoder corrects.
    static let requests: [(String, [HTTPClientRequestPart])] = [
        ("GET, no body", [.head(head(.GET, [("Host", "mlflow:5000"), ("Via", "1.1 x"), ("X-Forwarded-For", "127.0.0.1")])), .end(nil)]),
        ("POST with a length", [.head(head(.POST, [("Host", "h"), ("Content-Length", "17")])), body, .end(nil)]),
        ("POST chunked", [.head(head(.POST, [("Host", "h"), ("Transfer-Encoding", "chunked")])), body, empty, body, .end(nil)]),
        ("POST chunked with trailers", [.head(head(.PUT, [("transfer-encoding", "chunked")])), body, .end(HTTPHeaders([("X-Sum", "1")]))]),
        ("PATCH without framing", [.head(head(.PATCH, [("Host", "h")])), body, .end(nil)]),
        (
            "POST with a length and Transfer-Encoding",
            [.head(head(.POST, [("Transfer-Encoding", "gzip"), ("Content-Length", "17")])), body, .end(nil)]
        ),
        ("POST over HTTP/1.0 without a length", [.head(head(.POST, [("Host", "h")], version: .http1_0)), body, .end(nil)]),
        ("DELETE with a length", [.head(head(.DELETE, [("Content-Length", "17"), ("TRANSFER-ENCODING", "chunked")])), body, .end(nil)]),
        ("DELETE chunked", [.head(head(.DELETE, [("Transfer-Encoding", "chunked")])), body, .end(nil)]),
        ("DELETE with another coding first", [.head(head(.DELETE, [("Transfer-Encoding", "gzip"), ("Transfer-Encoding", "chunked")])), .end(nil)]),
        ("TRACE loses its framing", [.head(head(.TRACE, [("Content-Length", "0"), ("Transfer-Encoding", "chunked"), ("A", "b")])), .end(nil)]),
        ("HEAD", [.head(head(.HEAD, [("Accept", "*/*")])), .end(nil)]),
        ("a method of its own", [.head(head(.RAW(value: "PROPFIND"), [("Depth", "1")])), .end(nil)]),
        ("HTTP/2.0 version line", [.head(head(.GET, [], version: HTTPVersion(major: 2, minor: 0))), .end(nil)]),
        ("non-ASCII value", [.head(head(.GET, [("X-Name", "Zoë ☃")])), .end(nil)]),
    ]

    @Test(arguments: requests.map(\.0))
    func writesWhatNIOsEncoderWrites(_ name: String) throws {
        let parts = try #require(Self.requests.first { $0.0 == name }).1
        let ours = try Self.wire(ours: true, parts)
        let nio = try Self.wire(ours: false, parts)
        #expect(String(decoding: ours, as: UTF8.self) == String(decoding: nio, as: UTF8.self))
        #expect(ours == nio)
    }

    /// Through an upstream connection (its pipeline as the pool sets it up): the same bytes as NIO's encoder, and a
    /// request's end is left out of the pipeline exactly when it writes nothing (a body that is not chunked).
    @Test(arguments: requests.map(\.0))
    func anUpstreamConnectionWritesTheSameBytesAndSkipsOnlyEmptyEnds(_ name: String) throws {
        let parts = try #require(Self.requests.first { $0.0 == name }).1
        let channel = EmbeddedChannel()
        let encoder = UpstreamRequestEncoder()
        let relay = UpstreamRelay()
        try channel.pipeline.syncOperations.addHandler(encoder)
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
        try channel.pipeline.syncOperations.addHandler(relay)
        let connection = UpstreamConnection(channel: channel, encoder: encoder, relay: relay)
        var bytes: [UInt8] = []
        for part in parts {
            let wrote = connection.write(part)
            connection.flush()
            let written = try outboundBytes(of: channel)
            bytes += written
            if case .end = part {
                let nioEnd = try Self.wire(ours: false, Array(parts.dropLast())).count < Self.wire(ours: false, parts).count
                #expect(wrote == nioEnd)
            } else {
                #expect(wrote)
            }
        }
        #expect(bytes == (try Self.wire(ours: false, parts)))
        _ = try channel.finish()
    }

    @Test func framingAsNIOSetsIt() {
        var chunked = Self.head(.POST, [("Transfer-Encoding", "chunked")])
        #expect(UpstreamRequestEncoder.frame(&chunked) == .chunked)
        var length = Self.head(.POST, [("content-length", "3")])
        #expect(UpstreamRequestEncoder.frame(&length) == .contentLength)
        var none = Self.head(.GET, [])
        #expect(UpstreamRequestEncoder.frame(&none) == .neither)
        #expect(none.headers.isEmpty)
    }
}
