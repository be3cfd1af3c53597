import Foundation
import HTTPTypes
import Hummingbird

/// Stops a request that comes back to the proxy that forwarded it (an upstream that is, through any path, this
/// proxy again). Every forwarded request carries `Via: 1.1 <token>` (RFC 9110 §7.6.3) with a token unique to this
/// process; a request that already carries it is answered `508 Loop Detected` instead of being forwarded again.
/// The start-up check for an upstream that is the proxy's own listener is `ProxyConfiguration`'s.
public enum LoopGuard {
    /// `mlflow-otel-proxy-<16 hex digits>`, chosen at start-up.
    public static let token: String = {
        var generator = SystemRandomNumberGenerator()
        return "mlflow-otel-proxy-" + String(format: "%016llx", generator.next() as UInt64)
    }()

    /// The `Via` entry this proxy adds to what it forwards (made once: every forwarded request carries it).
    public static let viaEntry = "1.1 \(token)"

    /// Whether the request has already passed through this proxy.
    public static func hasLooped(_ request: Request) -> Bool {
        hasLooped(request.head)
    }

    /// Whether a head says the request has already passed through this proxy.
    public static func hasLooped(_ head: some ListenerRequestHead) -> Bool {
        head.values(of: .via).contains { $0.contains(token) }
    }

    /// The answer for a request that came back: MLflow's format, with `Connection: close`.
    public static func loopDetected() -> Response {
        ErrorResponses.mlflow(
            status: .init(code: 508, reasonPhrase: "Loop Detected"), code: "INTERNAL_ERROR",
            message:
                "mlflow-otel-proxy received a request it had forwarded itself: its upstream leads back to the proxy. "
                + "Point --upstream (MLFLOW_TRACKING_URI on the proxy) at the MLflow server, not at the proxy.",
            headers: [.connection: "close"]
        )
    }
}
