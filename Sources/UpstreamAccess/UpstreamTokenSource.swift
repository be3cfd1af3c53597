import AsyncHTTPClient
import Foundation
import JSONText
import NIOCore
import NIOHTTP1
import SharedSettings

/// Access tokens for the upstream from OAuth client credentials (a Databricks service principal): the
/// client-credentials grant at the token URL, the token cached and fetched again before it expires (a fifth of its
/// lifetime, at most five minutes, before), one fetch at a time however many requests wait for it. Neither the
/// secret nor a token is ever logged or put in an error. Used by the passthrough and by `backfill`.
public actor UpstreamTokenSource {
    /// Why no token could be had, in words safe to show a client and to log.
    public struct Failure: Error, CustomStringConvertible {
        /// What went wrong, without the secret or a token.
        public var description: String
    }

    private let credentials: OAuthClientCredentials
    private let client: HTTPClient
    private var cached: (token: String, refreshAt: ContinuousClock.Instant)?
    private var fetching: Task<(String, Duration), any Error>?

    /// Creates a source; nothing is fetched before the first ``accessToken()``.
    public init(credentials: OAuthClientCredentials, client: HTTPClient) {
        self.credentials = credentials
        self.client = client
    }

    /// The current access token, fetched when there is none or it is due for refresh.
    public func accessToken() async throws(Failure) -> String {
        if let cached, ContinuousClock.now < cached.refreshAt { return cached.token }
        let task: Task<(String, Duration), any Error>
        if let fetching {
            task = fetching
        } else {
            let credentials = credentials
            let client = client
            task = Task { try await Self.fetch(credentials, client: client) }
            fetching = task
        }
        do {
            let (token, lifetime) = try await task.value
            if fetching == task {
                fetching = nil
                let margin = min(lifetime / 5, .seconds(300))
                cached = (token, ContinuousClock.now + lifetime - margin)
            }
            return token
        } catch {
            if fetching == task { fetching = nil }
            throw (error as? Failure) ?? Failure(description: "the token request failed: \(type(of: error))")
        }
    }

    /// Forgets `token` if it is the cached one (the upstream answered 401 to it): the next request fetches a new one.
    public func invalidate(_ token: String) {
        if cached?.token == token { cached = nil }
    }

    /// One client-credentials request: `grant_type=client_credentials&scope=…`, the client id and secret as HTTP
    /// Basic credentials (RFC 6749 §4.4). - Returns: the token and its lifetime.
    private static func fetch(_ credentials: OAuthClientCredentials, client: HTTPClient) async throws -> (String, Duration) {
        var request = HTTPClientRequest(url: credentials.tokenURL.description)
        request.method = .POST
        let basic = Data("\(formEncoded(credentials.clientID)):\(formEncoded(credentials.clientSecret))".utf8).base64EncodedString()
        request.headers.add(name: "Authorization", value: "Basic \(basic)")
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        request.body = .bytes(ByteBuffer(string: "grant_type=client_credentials&scope=\(formEncoded(credentials.scope))"))
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(30))
        } catch {
            throw Failure(description: "the token endpoint \(credentials.tokenURL) could not be reached (\(type(of: error)))")
        }
        let body = try? await response.body.collect(upTo: 64 * 1024)
        let json = body.flatMap { JSONValue(parsing: String(buffer: $0)) }
        guard response.status == .ok else {
            // The OAuth error code (`invalid_client`, …) is safe to show; the rest of the body is not repeated.
            let code = json?["error"]?.stringValue.map { ": \($0)" } ?? ""
            throw Failure(description: "the token endpoint \(credentials.tokenURL) answered \(response.status.code)\(code)")
        }
        guard let token = json?["access_token"]?.stringValue, !token.isEmpty else {
            throw Failure(description: "the token endpoint \(credentials.tokenURL) answered without an access_token")
        }
        let seconds = json?["expires_in"]?.doubleValue.map { max(1, min($0, 86_400)) } ?? 3600
        return (token, .milliseconds(Int64(seconds * 1000)))
    }

    /// `application/x-www-form-urlencoded` escaping of one value.
    private static func formEncoded(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
