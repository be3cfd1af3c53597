import AsyncHTTPClient
import Foundation
import HTTPListener
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import Passthrough
import ProxyObservability
import ProxySettings
import SharedSettings
import Testing

/// The forwarder in-process: a client → the forwarder on a live listener → an upstream on 127.0.0.1 that echoes what
/// it received (a stand-in for MLflow's server, which the e2e passthrough tests use instead).
@Suite(.timeLimit(.minutes(1))) struct UpstreamForwarderTests {
    /// Answers 201 with what it received: method, path with query, headers (lower-cased names) and the body.
    static func echoUpstream() -> some ApplicationProtocol {
        let router = Router()
        router.on("/**", method: .post) { request, _ -> Response in
            let body = try await request.body.collect(upTo: 16 * 1024 * 1024)
            var headers: [String: String] = [:]
            for field in request.headers {
                headers[field.name.canonicalName, default: ""] += (headers[field.name.canonicalName] == nil ? "" : ",") + field.value
            }
            let object: [String: Any] = ["path": request.uri.description, "headers": headers, "body": String(buffer: body)]
            let data = try JSONSerialization.data(withJSONObject: object)
            return Response(
                status: .created, headers: [.contentType: "application/json", .init("X-Upstream")!: "yes"],
                body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    /// Every request to the forwarder.
    struct Forwarding: HTTPResponder {
        typealias Context = ProxyRequestContext
        let forwarder: UpstreamForwarder
        func respond(to request: Request, context: ProxyRequestContext) async throws -> Response {
            await forwarder.forward(request, context: context)
        }
    }

    static func proxy(
        upstreamPort: Int, client: HTTPClient, maxBodyBytes: Int? = nil, timeout: Duration = .seconds(10), counters: ProxyCounters = ProxyCounters()
    ) throws
        -> some ApplicationProtocol
    {
        let upstream = try #require(UpstreamURL("http://127.0.0.1:\(upstreamPort)"))
        let live = LiveSettings(LiveSettings.Snapshot(inboundTokens: [], upstreamHeaders: [], clientAuthorization: .keep))
        let forwarder = UpstreamForwarder(
            rules: ForwardingRules(upstream: upstream, trustedProxies: [], listenerIsTLS: false), client: client, timeout: timeout,
            counters: counters, live: live, maxBodyBytes: maxBodyBytes, tokenSource: nil)
        return Application(responder: Forwarding(forwarder: forwarder), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    @Test func endToEndHeadersPassAndHopByHopOnesDoNot() async throws {
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        try await Self.echoUpstream().test(.live) { upstream in
            try await Self.proxy(upstreamPort: try #require(upstream.port), client: http).test(.live) { client in
                let response = try await client.execute(
                    uri: "/api/2.0/mlflow/runs/create?x=1&y=%2F", method: .post,
                    headers: [
                        .contentType: "application/json", .init("X-Keep")!: "kept", .init("Proxy-Authorization")!: "Basic cHJveHk6cHc=",
                        .init("TE")!: "trailers", .init("Keep-Alive")!: "timeout=5", .init("X-Forwarded-For")!: "203.0.113.9",
                    ],
                    body: ByteBuffer(string: #"{"experiment_id":"1"}"#))
                #expect(response.status == .created)
                #expect(response.headers[.init("X-Upstream")!] == "yes")
                let echo = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
                let headers = try #require(echo["headers"] as? [String: String])
                #expect(echo["path"] as? String == "/api/2.0/mlflow/runs/create?x=1&y=%2F")
                #expect(echo["body"] as? String == #"{"experiment_id":"1"}"#)
                #expect(headers["x-keep"] == "kept")
                // Hop-by-hop fields stay on the client's connection (those a `Connection` header names are tested end to
                // end with raw sockets in Tests/e2e: this test client manages `Connection` itself).
                #expect(headers["proxy-authorization"] == nil && headers["keep-alive"] == nil && headers["te"] == nil)
                #expect(headers["via"]?.contains(LoopGuard.token) == true)
                // An untrusted client's X-Forwarded-For is replaced by the address it connected from.
                #expect(headers["x-forwarded-for"] == "127.0.0.1")
                #expect(headers["x-forwarded-proto"] == "http")
            }
        }
        try await http.shutdown()
    }

    @Test func aBodyOverTheLimitGets413AndAnUnreachableUpstream502() async throws {
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        try await Self.echoUpstream().test(.live) { upstream in
            try await Self.proxy(upstreamPort: try #require(upstream.port), client: http, maxBodyBytes: 1024).test(.live) { client in
                let response = try await client.execute(
                    uri: "/api/2.0/mlflow/artifacts/upload", method: .post, body: ByteBuffer(repeating: 0x41, count: 4096))
                #expect(response.status == .contentTooLarge)
                #expect(String(buffer: response.body).contains("\"error_code\""))
            }
        }
        // Port 9 (discard) on loopback: nothing listens there.
        // (The client retries connecting until the call's timeout, as the proxy's own upstream client does.)
        try await Self.proxy(upstreamPort: 9, client: http, timeout: .seconds(1)).test(.live) { client in
            let response = try await client.execute(uri: "/api/2.0/mlflow/experiments/search", method: .post, body: ByteBuffer(string: "{}"))
            #expect(response.status == .badGateway)
            let error = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
            #expect(error["error_code"] as? String != nil && error["message"] as? String != nil)
        }
        try await http.shutdown()
    }
}

/// The header rules' byte comparisons against the lower-cased `Set` lookups they replaced.
@Suite struct ForwardingRulesNameTests {
    @Test func hopByHopNamesInAnyCaseAndNothingElse() {
        var generator = SystemRandomNumberGenerator()
        var names = Array(ForwardingRules.hopByHop) + ["x-keep", "", "t", "tE2", "content-type", "connections", "hostt", "via", "\u{212A}eep-alive"]
        for name in ForwardingRules.hopByHop {
            for _ in 0..<50 {
                var bytes = Array(name.utf8)
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes = bytes.map { Bool.random(using: &generator) && $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }
                case 1: bytes[index] = UInt8.random(in: 0x21...0x7E, using: &generator)
                default: bytes.insert(UInt8.random(in: 0x21...0x7E, using: &generator), at: index)
                }
                names.append(String(decoding: bytes, as: UTF8.self))
            }
        }
        for name in names {
            let expected = ForwardingRules.hopByHop.contains(
                String(decoding: name.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self))
            #expect(ForwardingRules.isHopByHop(name) == expected, "\(name)")
            #expect(ForwardingRules.isHopByHop(name[...]) == expected, "\(name)")
        }
    }

    @Test func connectionTokensAreLowerCasedAndSkipHopByHopNames() {
        #expect(ForwardingRules.connectionTokens(["keep-alive"]).isEmpty)
        #expect(ForwardingRules.connectionTokens(["Keep-Alive, X-Secret ,\tUpgrade", " x-other"]) == ["x-secret", "x-other"])
        #expect(ForwardingRules.connectionTokens([" , ,"]).isEmpty)
    }

    @Test func answerHeadersDropHopByHopOnesAndThoseConnectionNames() {
        let headers: HTTPHeaders = [
            "Content-Type": "application/json", "Content-Length": "12", "CONNECTION": "keep-alive, X-Hop", "x-hop": "1",
            "Keep-Alive": "timeout=5", "Transfer-Encoding": "chunked", "X-Kept": "yes", "Via": "1.1 upstream",
        ]
        let fields = ForwardingRules.responseFields(headers)
        #expect(fields.map(\.name.canonicalName) == ["content-type", "content-length", "x-kept", "via"])
        #expect(fields[.contentLength] == "12")
        // The passthrough's relayed answers keep the same fields, names as the upstream spelt them.
        var more = headers
        more.add(contentsOf: [("X-Spaced", "a  b"), ("X-Unicode", "zoë")])
        let relayed = ForwardingRules.relayedResponseFields(more)
        let expected = ForwardingRules.responseFields(more)
        #expect(relayed.count == 6)
        #expect(relayed.map(\.name) == expected.map(\.name.rawName))
        #expect(relayed.map(\.value) == expected.map(\.value))
        #expect(relayed.map(\.name).first == "Content-Type")
    }
}
