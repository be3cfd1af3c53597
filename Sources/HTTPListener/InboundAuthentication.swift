import Foundation
import HTTPTypes
import Hummingbird

/// Optional inbound authentication: applications present one of the configured tokens, either as
/// `Authorization: Bearer <token>` (what `MLFLOW_TRACKING_TOKEN` sends) or, when `Authorization` carries the
/// MLflow server's own credentials, as `X-MLflow-OTel-Proxy-Token: <token>`. The token is removed from the request
/// before anything goes upstream or to a destination. Requests without a valid token get 401 in MLflow's format
/// and `Connection: close`.
public struct InboundAuthentication: Sendable {
    /// The header that carries the proxy's token when `Authorization` carries the MLflow server's credentials.
    public static let tokenHeader = HTTPField.Name("X-MLflow-OTel-Proxy-Token")!  // a valid literal header name
    /// The tokens accepted.
    public let tokens: Set<String>

    /// Accepts any of `tokens`.
    public init(tokens: Set<String>) { self.tokens = tokens }

    /// What a check decided.
    public enum Outcome {
        /// Authenticated; the request with the proxy's token removed.
        case allowed(Request)
        /// The answer for the client.
        case denied(Response)
    }

    /// Checks the request. The token never appears in an answer or a log.
    public func check(_ request: Request) -> Outcome {
        if let head = allowedHead(request.head) { return .allowed(Request(head: head, body: request.body)) }
        return .denied(Self.deniedResponse())
    }

    /// The request head with the proxy's token removed when it carries a valid one; `nil` when it does not.
    public func allowedHead<Head: ListenerRequestHead>(_ head: Head) -> Head? {
        let tokenField = head.value(of: Self.tokenHeader)
        if let token = tokenField, tokens.contains(token) {
            var stripped = head
            stripped.removeFields(Self.tokenHeader)
            return stripped
        }
        if tokenField == nil, let authorization = head.value(of: .authorization),
            authorization.lowercased().hasPrefix("bearer "),
            tokens.contains(String(authorization.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces))
        {
            var stripped = head
            stripped.removeFields(.authorization)
            return stripped
        }
        return nil
    }

    /// The 401 for a request without a valid token.
    public static func deniedResponse() -> Response {
        var response = ErrorResponses.mlflow(
            status: .unauthorized, code: "UNAUTHENTICATED",
            message:
                "mlflow-otel-proxy requires a token: send it as Authorization: Bearer <token> (MLFLOW_TRACKING_TOKEN) or X-MLflow-OTel-Proxy-Token"
        )
        response.headers[.wwwAuthenticate] = "Bearer realm=\"mlflow-otel-proxy\""
        // The connection closes after the answer (the guard sees the header): a client without a token gets no
        // kept-alive connection to hold, and whatever body it was sending is not read.
        response.headers[.connection] = "close"
        return response
    }
}
