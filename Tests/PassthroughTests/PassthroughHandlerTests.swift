import AsyncHTTPClient
import Foundation
import HTTPListener
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Passthrough
import ProxyObservability
import SharedSettings
import Testing

/// The listener's passthrough in-process: a client → the guarded listener with ``ListenerPassthrough`` in its
/// pipeline (and an application that answers what it does not take) → an upstream on 127.0.0.1 (a Hummingbird echo
/// server, or a raw NIO server where the test needs a misbehaving one; the e2e passthrough suite runs the real
/// `mlflow server` instead).
@Suite(.timeLimit(.minutes(1))) struct PassthroughHandlerTests {
    /// Answers 201 with what it received (method, path with query, headers with lower-cased names, body); `/slow/…`
    /// answers after two seconds.
    static func echoUpstream() -> some ApplicationProtocol {
        let router = Router()
        router.on("/slow/**", method: .get) { _, _ -> Response in
            try await Task.sleep(for: .seconds(2))
            return Response(status: .ok)
        }
        for method in [HTTPRequest.Method.get, .post] {
            router.on("/**", method: method) { request, _ -> Response in
                let body = try await request.body.collect(upTo: 16 * 1024 * 1024)
                var headers: [String: String] = [:]
                for field in request.headers {
                    headers[field.name.canonicalName, default: ""] += (headers[field.name.canonicalName] == nil ? "" : ",") + field.value
                }
                let object: [String: Any] = [
                    "method": request.method.rawValue, "path": request.uri.description, "host": request.head.authority ?? "",
                    "headers": headers, "body": String(buffer: body),
                ]
                return Response(
                    status: .created, headers: [.contentType: "application/json", .init("X-Upstream")!: "yes"],
                    body: .init(byteBuffer: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: object))))
            }
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    /// What the listener's application answers: 299 and "application".
    struct ApplicationMarker: HTTPResponder {
        typealias Context = ProxyRequestContext
        func respond(to request: Request, context: ProxyRequestContext) async throws -> Response {
            _ = try await request.body.collect(upTo: 1024 * 1024)
            return Response(status: .init(code: 299), headers: [.contentLength: "11"], body: .init(byteBuffer: ByteBuffer(string: "application")))
        }
    }

    /// The listener: requests under `/local` go to ``ApplicationMarker``, the others pass through to the upstream at
    /// `upstreamPort` (under `basePath`).
    static func listener(
        upstreamPort: Int, maxBodyBytes: Int? = nil, timeout: Duration = .seconds(10), counters: ProxyCounters = ProxyCounters(),
        basePath: String = ""
    ) throws -> some ApplicationProtocol {
        let upstream = try #require(UpstreamURL("http://127.0.0.1:\(upstreamPort)\(basePath)"))
        let live = LiveSettings(
            LiveSettings.Snapshot(inboundTokens: [], upstreamHeaders: [KeyValuePair("X-Operator", "set")], clientAuthorization: .keep))
        let forwarder = UpstreamForwarder(
            rules: ForwardingRules(upstream: upstream, trustedProxies: [], listenerIsTLS: false),
            client: .shared, timeout: timeout, counters: counters, live: live, maxBodyBytes: maxBodyBytes, tokenSource: nil)
        let pool = UpstreamConnectionPool(host: "127.0.0.1", port: upstreamPort, tls: nil, connectTimeout: .seconds(1))
        let passthrough = ListenerPassthrough(forwarder: forwarder, pool: pool, counters: counters) { head in
            head.uri.hasPrefix("/local") ? .application : .forward(head, route: "passthrough")
        }
        return Application(
            responder: ApplicationMarker(),
            server: .guarded(
                limits: ConnectionLimits(), tls: nil, connections: ConnectionGauge(listener: "test"), counters: counters,
                requestHandlers: { channel, logger, answers in try passthrough.addHandler(to: channel, logger: logger, answers: answers) }),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    static func json(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
    }

    @Test func forwardsWithTheForwardersRulesAndCounts() async throws {
        let counters = ProxyCounters()
        try await Self.echoUpstream().test(.live) { upstream in
            let port = try #require(upstream.port)
            try await Self.listener(upstreamPort: port, counters: counters, basePath: "/base/").test(.live) { client in
                let response = try await client.execute(
                    uri: "/api/2.0/mlflow/runs/create?x=1&y=%2F", method: .post,
                    headers: [
                        .contentType: "application/json", .init("X-Keep")!: "kept", .init("Proxy-Authorization")!: "Basic cHJveHk6cHc=",
                        .init("Keep-Alive")!: "timeout=5", .init("X-Forwarded-For")!: "203.0.113.9",
                    ],
                    body: ByteBuffer(string: #"{"experiment_id":"1"}"#))
                #expect(response.status == .created)
                #expect(response.headers[.init("X-Upstream")!] == "yes")
                let echo = try Self.json(response.body)
                let headers = try #require(echo["headers"] as? [String: String])
                #expect(echo["path"] as? String == "/base/api/2.0/mlflow/runs/create?x=1&y=%2F")
                #expect(echo["body"] as? String == #"{"experiment_id":"1"}"#)
                #expect(echo["host"] as? String == "127.0.0.1:\(port)")
                #expect(headers["content-length"] == "21")
                #expect(headers["x-keep"] == "kept" && headers["x-operator"] == "set")
                #expect(headers["proxy-authorization"] == nil && headers["keep-alive"] == nil)
                #expect(headers["via"]?.contains(LoopGuard.token) == true)
                #expect(headers["x-forwarded-for"] == "127.0.0.1" && headers["x-forwarded-proto"] == "http")

                // A body without a declared length is streamed with chunked framing.
                let streamed = try await client.execute(
                    uri: "/api/2.0/mlflow/artifacts/upload", method: .post, headers: [.transferEncoding: "chunked"],
                    body: ByteBuffer(repeating: 0x41, count: 300_000))
                let streamedEcho = try Self.json(streamed.body)
                #expect((streamedEcho["body"] as? String)?.count == 300_000)

                let other = try await client.execute(uri: "/local/runs/get", method: .get)
                #expect(other.status.code == 299 && String(buffer: other.body) == "application")
            }
        }
        #expect(counters.value(.requests, labels: ["passthrough", "2xx"]) == 2)
        #expect(counters.value(.upstreamResponses, "2xx") == 2)
    }

    @Test func pipelinedRequestsAreAnsweredInTheirOrder() async throws {
        try await Self.echoUpstream().test(.live) { upstream in
            try await Self.listener(upstreamPort: try #require(upstream.port)).test(.live) { client in
                let raw =
                    "GET /api/one HTTP/1.1\r\nHost: proxy\r\n\r\n"
                    + "GET /local HTTP/1.1\r\nHost: proxy\r\n\r\n"
                    + "POST /api/three HTTP/1.1\r\nHost: proxy\r\nContent-Length: 5\r\n\r\nthree"
                    + "GET /local HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n"
                let answer = try await RawClient.exchange(port: try #require(client.port), bytes: raw)
                let order = answer.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
                #expect(order == ["201", "299", "201", "299"])
                let one = try #require(answer.range(of: "api\\/one")), three = try #require(answer.range(of: "api\\/three"))
                #expect(one.lowerBound < three.lowerBound)
                #expect(answer.contains("\"body\":\"three\""))
            }
        }
    }

    @Test func unreachableIs502SlowIs504AndBodiesOverTheLimit413() async throws {
        let counters = ProxyCounters()
        // Port 9 (discard) on loopback: nothing listens there.
        try await Self.listener(upstreamPort: 9, counters: counters).test(.live) { client in
            let response = try await client.execute(uri: "/api/2.0/mlflow/experiments/search", method: .post, body: ByteBuffer(string: "{}"))
            #expect(response.status == .badGateway)
            let error = try Self.json(response.body)
            #expect(error["error_code"] as? String == "TEMPORARILY_UNAVAILABLE")
            #expect((error["message"] as? String)?.contains("POST /api/2.0/mlflow/experiments/search") == true)
        }
        #expect(counters.value(.upstreamErrors, "unreachable") == 1)
        try await Self.echoUpstream().test(.live) { upstream in
            let port = try #require(upstream.port)
            try await Self.listener(upstreamPort: port, maxBodyBytes: 1024, timeout: .milliseconds(300), counters: counters).test(.live) { client in
                let slow = try await client.execute(uri: "/slow/x", method: .get)
                #expect(slow.status == .gatewayTimeout)
                #expect(try Self.json(slow.body)["error_code"] as? String == "DEADLINE_EXCEEDED")
                // A declared length over the limit goes to the application (which answers 413 in the proxy); a body that
                // passes the limit while it streams is answered 413 here, and the connection closes.
                let chunk = "3e8\r\n" + String(repeating: "A", count: 1000) + "\r\n"
                let chunked = try await RawClient.exchange(
                    port: try #require(client.port),
                    bytes: "POST /api/2.0/mlflow-artifacts/artifacts/x HTTP/1.1\r\nHost: proxy\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + String(repeating: chunk, count: 4) + "0\r\n\r\n")
                #expect(chunked.hasPrefix("HTTP/1.1 413"))
                #expect(chunked.lowercased().contains("connection: close"))
                #expect(chunked.contains("MAX_READ_SIZE_EXCEEDED"))
            }
        }
        #expect(counters.value(.upstreamErrors, "timeout") == 1)
        #expect(counters.value(.rejectedRequests, "passthrough_body_too_large") == 1)
    }

    /// One timer serves a connection's requests: armed for the first request's deadline, it finds the later request's
    /// deadline still ahead when it fires and waits for it, so each request gets its whole timeout, no more.
    @Test func eachRequestOnAKeptAliveConnectionGetsItsOwnTimeout() async throws {
        let counters = ProxyCounters()
        try await Self.echoUpstream().test(.live) { upstream in
            let port = try #require(upstream.port)
            try await Self.listener(upstreamPort: port, timeout: .milliseconds(600), counters: counters).test(.live) { client in
                #expect(try await client.execute(uri: "/api/2.0/mlflow/runs/get", method: .get).status == .created)
                try await Task.sleep(for: .milliseconds(300))
                let clock = ContinuousClock()
                let started = clock.now
                let slow = try await client.execute(uri: "/slow/x", method: .get)
                let waited = clock.now - started
                #expect(slow.status == .gatewayTimeout)
                // Not at the first request's deadline (~300 ms from here), not after the upstream's answer (2 s).
                #expect(waited >= .milliseconds(550) && waited < .milliseconds(1_500), "\(waited)")
                #expect(try await client.execute(uri: "/api/2.0/mlflow/runs/get", method: .get).status == .created)
            }
        }
        #expect(counters.value(.upstreamErrors, "timeout") == 1)
    }

    /// A graceful shutdown (what SIGTERM starts) closes an idle kept-alive connection at once and one with a request in
    /// flight once its answer is written, so the server stops without waiting for the idle timeout (75 s, past this
    /// suite's time limit) and without cutting off an answer.
    @Test func aGracefulShutdownClosesIdleConnectionsAndAnswersTheOnesInFlight() async throws {
        try await Self.echoUpstream().test(.live) { upstream in
            let port = try #require(upstream.port)
            let clock = ContinuousClock()
            let (idle, inFlight) = try await Self.listener(upstreamPort: port).test(.live) { client in
                let listenerPort = try #require(client.port)
                // Answered by the upstream after two seconds; the shutdown begins while it waits.
                let inFlight = Task { try await RawClient.exchange(port: listenerPort, bytes: "GET /slow/x HTTP/1.1\r\nHost: proxy\r\n\r\n") }
                let idle = Task { try await RawClient.exchange(port: listenerPort, bytes: "") }
                try await Task.sleep(for: .milliseconds(500))
                return (idle, inFlight)
            }
            let started = clock.now
            #expect(try await idle.value == "")
            let answer = try await inFlight.value
            #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(answer)")
            #expect(clock.now - started < .seconds(10))
        }
    }

    @Test func aKeptAliveConnectionTheUpstreamClosedIsReplaced() async throws {
        let upstream = try await ClosingUpstream.start()
        try await Self.listener(upstreamPort: upstream.port).test(.live) { client in
            for attempt in 1...3 {
                let response = try await client.execute(uri: "/api/2.0/mlflow/experiments/get?attempt=\(attempt)", method: .get)
                #expect(response.status == .ok, "attempt \(attempt)")
                #expect(String(buffer: response.body) == "answered")
            }
        }
        #expect(upstream.connections.withLockedValue { $0 } == 3)
        try await upstream.channel.close()
    }
}

/// Sends bytes on one connection and returns everything that comes back until the server closes it.
enum RawClient {
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = NIOLockedValueBox(ByteBuffer())
        let done: EventLoopPromise<String>
        init(done: EventLoopPromise<String>) { self.done = done }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            _ = received.withLockedValue { $0.writeBuffer(&buffer) }
        }
        func channelInactive(context: ChannelHandlerContext) {
            done.succeed(received.withLockedValue { String(buffer: $0) })
        }
    }

    static func exchange(port: Int, bytes: String) async throws -> String {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let done = loop.makePromise(of: String.self)
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(done: done)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: bytes))
        return try await done.futureResult.get()
    }
}

/// An upstream that answers the first request on each connection (kept alive) and closes the connection without an
/// answer on the second: the race of a kept-alive connection the server closes just as the proxy reuses it.
final class ClosingUpstream: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let connections: NIOLockedValueBox<Int>
    private let requests = NIOLockedValueBox(0)

    init(connections: NIOLockedValueBox<Int>) { self.connections = connections }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        let count = requests.withLockedValue { count in
            count += 1
            return count
        }
        guard count == 1 else {
            context.close(promise: nil)
            return
        }
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "8"])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "answered")))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    struct Running {
        let channel: any Channel
        let port: Int
        let connections: NIOLockedValueBox<Int>
    }

    static func start() async throws -> Running {
        let connections = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                connections.withLockedValue { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(ClosingUpstream(connections: connections))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return Running(channel: channel, port: try #require(channel.localAddress?.port), connections: connections)
    }
}
