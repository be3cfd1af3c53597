import NIOConcurrencyHelpers
import SharedSettings

/// The listener's settings that requests read each time, replaceable by a configuration reload: inbound tokens and
/// the headers injected upstream. The wiring builds its ``Snapshot`` from the configuration.
public final class LiveSettings: Sendable {
    /// One consistent set of values.
    public struct Snapshot: Sendable {
        /// The inbound tokens, when the proxy requires one.
        public var authentication: InboundAuthentication?
        /// Headers the operator configured for every upstream request.
        public var upstreamHeaders: [KeyValuePair]
        /// Whether a client's own `Authorization` survives an injected one.
        public var clientAuthorization: ClientAuthorizationPolicy

        /// The values; no tokens means no inbound authentication.
        public init(inboundTokens: [String], upstreamHeaders: [KeyValuePair], clientAuthorization: ClientAuthorizationPolicy) {
            authentication = inboundTokens.isEmpty ? nil : InboundAuthentication(tokens: Set(inboundTokens))
            self.upstreamHeaders = upstreamHeaders
            self.clientAuthorization = clientAuthorization
        }
    }

    private let state: NIOLockedValueBox<Snapshot>

    /// Starts with `snapshot`.
    public init(_ snapshot: Snapshot) { state = NIOLockedValueBox(snapshot) }

    /// The values now.
    public var current: Snapshot { state.withLockedValue { $0 } }

    /// Replaces the values for requests from now on.
    public func update(to snapshot: Snapshot) {
        state.withLockedValue { $0 = snapshot }
    }
}
