import Foundation
import SharedSettings

/// OAuth machine-to-machine credentials for the upstream: the proxy exchanges them at `tokenURL` for short-lived
/// access tokens (client-credentials grant) and sends the current one as `Authorization: Bearer`. The secret is never
/// logged or shown; `description` masks it.
public struct OAuthClientCredentials: Sendable, Equatable, CustomStringConvertible {
    /// Where tokens come from (`<workspace>/oidc/v1/token` for Databricks).
    public var tokenURL: UpstreamURL
    /// The service principal's client id (not a secret).
    public var clientID: String
    /// The client secret.
    public var clientSecret: String
    /// The scope asked for (`all-apis` for Databricks).
    public var scope: String

    /// Creates credentials.
    public init(tokenURL: UpstreamURL, clientID: String, clientSecret: String, scope: String = "all-apis") {
        self.tokenURL = tokenURL
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.scope = scope
    }

    /// `oauth(client_id=…, token_url=…)`, without the secret.
    public var description: String { "oauth(client_id=\(clientID), token_url=\(tokenURL))" }
}
