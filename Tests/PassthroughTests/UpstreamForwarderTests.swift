import AsyncHTTPClient
import Foundation
import HTTPListener
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypesHTTP1
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

/// The passthrough forwards NIO's headers as the listener's decoder made them, the application HTTPTypes' fields made
/// of them: the upstream gets the same headers either way.
@Suite struct ForwardingRulesHeadersTests {
    /// The heads NIO's request decoder makes of raw HTTP/1 requests (what the listener decodes), each on a
    /// connection of its own.
    static func decodedHeads(_ requests: [String]) throws -> [HTTPRequestHead] {
        try requests.map { raw in
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            defer { _ = try? channel.finish() }
            try channel.writeInbound(ByteBuffer(string: raw))
            guard case .head(let head) = try channel.readInbound(as: HTTPServerRequestPart.self) else { throw ChannelError.badInterfaceAddressFamily }
            return head
        }
    }

    static let requests = [
        // What MLflow's Python client sends.
        "POST /api/2.0/mlflow/runs/create HTTP/1.1\r\nHost: proxy:5000\r\nUser-Agent: mlflow-python-client/3.17.2\r\n"
            + "Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\nContent-Length: 2\r\n"
            + "Content-Type: application/json\r\nAuthorization: Basic dXNlcjpwdw==\r\n\r\n{}",
        // Hop-by-hop headers, names listed in `Connection` in any case, names spelt in other cases.
        "GET /api/2.0/mlflow/experiments/get?experiment_id=1 HTTP/1.1\r\nhost: proxy\r\nCONNECTION: close, X-Secret\r\n"
            + "x-secret: 1\r\nX-SECRET: 2\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Authorization: Basic eA==\r\n"
            + "content-TYPE: application/json\r\nX-Kept: yes\r\n\r\n",
        // What a client says about forwarding: kept only from a trusted peer.
        "GET /a HTTP/1.1\r\nHost: proxy\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2, 10.0.0.3\r\n"
            + "X-FORWARDED-PROTO: https\r\nX-Forwarded-Host: public.example\r\nX-Forwarded-Port: 443\r\nVia: 1.0 other\r\n\r\n",
        // Repeated and unusual values: spaces inside and around, Unicode, an empty one, a second `Host`.
        "PUT /b HTTP/1.1\r\nHost: first\r\nHost: second\r\nX-Spaced:   a  b   \r\nX-Tab:\tc\t\r\nX-Unicode: zoë ☃\r\nX-Empty:\r\n"
            + "X-Repeated: 1\r\nX-Repeated: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // No Host at all (HTTP/1.0); spaces and tabs at a value's end, a value of spaces alone (control characters,
        // DEL among them, the decoder refuses).
        "DELETE /c HTTP/1.0\r\nAuthorization: Bearer token \t \r\nConnection: X-Listed \r\nX-Listed: 1\r\nX-Blank:   \r\n"
            + "X-Forwarded-Host: spaced.example  \r\n\r\n",
    ]

    @Test func nioHeadersAndHTTPTypesFieldsAreForwardedAlike() throws {
        let upstream = try #require(UpstreamURL("http://127.0.0.1:5000/base"))
        let rules = ForwardingRules(upstream: upstream, trustedProxies: [try #require(AddressRange("10.0.0.0/8"))], listenerIsTLS: false)
        let plain = LiveSettings.Snapshot(inboundTokens: [], upstreamHeaders: [], clientAuthorization: .keep)
        let operatorHeaders = [KeyValuePair("Authorization", "Bearer operator"), KeyValuePair("X-Kept", "operator")]
        let settings = [
            plain,
            LiveSettings.Snapshot(inboundTokens: [], upstreamHeaders: operatorHeaders, clientAuthorization: .keep),
            LiveSettings.Snapshot(inboundTokens: [], upstreamHeaders: operatorHeaders, clientAuthorization: .replace),
        ]
        let heads = try Self.decodedHeads(Self.requests)
        #expect(heads.count == Self.requests.count)
        for head in heads {
            for peer in ["10.1.2.3", "192.0.2.7", nil] {
                for snapshot in settings {
                    let framing = [("Host", rules.upstreamHost), ("Content-Length", "2")]
                    let fromNIO = rules.requestHeaders(
                        head.headers, authority: head.headers.first(name: "host"), peer: peer, settings: snapshot, appending: framing)
                    let converted = try HTTPRequest(head, secure: false, splitCookie: false)
                    let fromFields = rules.requestHeaders(
                        converted.headerFields, authority: converted.authority, peer: peer, settings: snapshot, appending: framing)
                    #expect(fromNIO.map { "\($0.name): \($0.value)" } == fromFields.map { "\($0.name): \($0.value)" }, "\(head) from \(peer ?? "-")")
                }
            }
        }
        // What the rules did with them, on the second request from an untrusted peer.
        let forwarded = rules.requestHeaders(heads[1].headers, authority: "proxy", peer: "192.0.2.7", settings: plain)
        #expect(forwarded.map(\.name) == ["content-TYPE", "X-Kept", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Via"])
        let trusted = rules.requestHeaders(heads[2].headers, authority: "proxy", peer: "10.1.2.3", settings: plain)
        #expect(trusted.first(name: "x-forwarded-for") == "10.0.0.1, 10.0.0.2, 10.0.0.3, 10.1.2.3")
        #expect(trusted.first(name: "x-forwarded-proto") == "https" && trusted.first(name: "x-forwarded-host") == "public.example")
    }

    @Test func headerValuesReadAsHTTPTypesReadsThem() throws {
        let heads = try Self.decodedHeads(Self.requests)
        let names: [HTTPField.Name] = [
            .contentLength, .connection, .authorization, .via, .init("X-Repeated")!, .init("X-Empty")!, .init("X-Absent")!, .init("X-Spaced")!,
            .init("X-Blank")!, .init("X-Forwarded-Host")!,
        ]  // valid literal names
        for head in heads {
            let fields = try HTTPRequest(head, secure: false, splitCookie: false).headerFields
            for name in names {
                #expect(head.headers.value(of: name) == fields[name], "\(name) in \(head)")
                #expect(head.headers.values(of: name) == fields[values: name], "\(name) in \(head)")
            }
        }
    }
}
