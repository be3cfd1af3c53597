import NIOConcurrencyHelpers
import ProxySettings

/// The settings requests read each time, replaceable by a configuration reload: inbound tokens and the
/// headers injected upstream.
public final class LiveSettings: Sendable {
    /// One consistent set of values.
    public struct Snapshot: Sendable {
        /// The inbound tokens, when the proxy requires one.
        public var authentication: InboundAuthentication?
        /// Headers the operator configured for every upstream request.
        public var upstreamHeaders: [KeyValuePair]
        /// Whether a client's own `Authorization` survives an injected one.
        public var clientAuthorization: ClientAuthorizationPolicy
    }

    private let state: NIOLockedValueBox<Snapshot>

    /// The values of `configuration`.
    public init(_ configuration: ProxyConfiguration) { state = NIOLockedValueBox(Self.snapshot(of: configuration)) }

    /// The values now.
    public var current: Snapshot { state.withLockedValue { $0 } }

    /// Replaces the values for requests from now on.
    public func update(from configuration: ProxyConfiguration) {
        let new = Self.snapshot(of: configuration)
        state.withLockedValue { $0 = new }
    }

    static func snapshot(of configuration: ProxyConfiguration) -> Snapshot {
        Snapshot(
            authentication: configuration.inboundTokens.isEmpty ? nil : InboundAuthentication(tokens: Set(configuration.inboundTokens)),
            upstreamHeaders: configuration.upstreamHeaders, clientAuthorization: configuration.clientAuthorization)
    }
}
