import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore
import ProxyConfig
import ProxySettings
import SharedSettings
import Testing
import UpstreamAccess

/// OAuth client credentials against a token endpoint served in-process on 127.0.0.1. A stand-in (mock): a Databricks
/// workspace's `/oidc/v1/token` cannot run here; the grant's wire format is RFC 6749 §4.4, checked field by field.
@Suite(.timeLimit(.minutes(1))) struct UpstreamTokenSourceTests {
    /// What the stand-in saw, and what it answers.
    final class TokenEndpoint: Sendable {
        let requests = NIOLockedValueBox<[(authorization: String, body: String)]>([])
        let answer: NIOLockedValueBox<(status: HTTPResponse.Status, body: String)>
        init(status: HTTPResponse.Status = .ok, body: String) { answer = NIOLockedValueBox((status, body)) }

        func application() -> some ApplicationProtocol {
            let router = Router()
            router.post("/oidc/v1/token") { request, _ -> Response in
                let body = try await request.body.collect(upTo: 64 * 1024)
                // A slow endpoint, so that concurrent callers really overlap.
                try await Task.sleep(for: .milliseconds(50))
                let number = self.requests.withLockedValue { requests in
                    requests.append((request.headers[.authorization] ?? "", String(buffer: body)))
                    return requests.count
                }
                let (status, text) = self.answer.withLockedValue { $0 }
                return Response(
                    status: status, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: text.replacingOccurrences(of: "{n}", with: "\(number)"))))
            }
            return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        }
    }

    static func credentials(port: Int) throws -> OAuthClientCredentials {
        let url = try #require(UpstreamURL("http://127.0.0.1:\(port)/oidc/v1/token"))
        return OAuthClientCredentials(tokenURL: url, clientID: "principal-id", clientSecret: "s3cr3t+/=")
    }

    @Test func oneFetchServesConcurrentCallersAndTheTokenIsCached() async throws {
        let endpoint = TokenEndpoint(body: #"{"access_token":"token-{n}","token_type":"Bearer","expires_in":3600}"#)
        try await endpoint.application().test(.live) { client in
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            let source = UpstreamTokenSource(credentials: try Self.credentials(port: try #require(client.port)), client: http)
            let tokens = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<20 { group.addTask { try await source.accessToken() } }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(Set(tokens) == ["token-1"])
            #expect(try await source.accessToken() == "token-1")
            let seen = endpoint.requests.withLockedValue { $0 }
            #expect(seen.count == 1)
            let basic = "Basic " + Data("principal-id:s3cr3t%2B%2F%3D".utf8).base64EncodedString()
            #expect(seen.first?.authorization == basic)
            #expect(seen.first?.body == "grant_type=client_credentials&scope=all-apis")
            // A 401 upstream: the token is forgotten and the next call fetches a new one.
            await source.invalidate("token-1")
            #expect(try await source.accessToken() == "token-2")
            await source.invalidate("some-other-token")
            #expect(try await source.accessToken() == "token-2")
            try await http.shutdown()
        }
    }

    @Test func aRefusalIsNamedWithoutTheSecret() async throws {
        let endpoint = TokenEndpoint(status: .unauthorized, body: #"{"error":"invalid_client","error_description":"secret s3cr3t+/= is wrong"}"#)
        try await endpoint.application().test(.live) { client in
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            let source = UpstreamTokenSource(credentials: try Self.credentials(port: try #require(client.port)), client: http)
            do {
                _ = try await source.accessToken()
                Issue.record("a refused grant gave a token")
            } catch {
                #expect("\(error)".contains("401: invalid_client"))
                #expect(!"\(error)".contains("s3cr3t"))
            }
            // Not cached: the next call asks again.
            _ = try? await source.accessToken()
            #expect(endpoint.requests.withLockedValue { $0.count } == 2)
            try await http.shutdown()
        }
    }

    @Test func anAnswerWithoutATokenOrAnEndpointThatIsDownIsAnError() async throws {
        let endpoint = TokenEndpoint(body: #"{"token_type":"Bearer"}"#)
        try await endpoint.application().test(.live) { client in
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            let source = UpstreamTokenSource(credentials: try Self.credentials(port: try #require(client.port)), client: http)
            await #expect(throws: UpstreamTokenSource.Failure.self) { _ = try await source.accessToken() }
            try await http.shutdown()
        }
        // Port 9 (discard) on loopback: nothing listens there in CI. Connection attempts are not retried here, so the
        // refusal is seen at once instead of at the token request's 30 s timeout.
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let down = UpstreamTokenSource(credentials: try Self.credentials(port: 9), client: http)
        do {
            _ = try await down.accessToken()
            Issue.record("an unreachable endpoint gave a token")
        } catch {
            #expect(error.description.contains("could not be reached"))
        }
        try await http.shutdown()
    }
}
