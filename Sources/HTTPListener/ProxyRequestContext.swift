import Hummingbird
import Logging
import NIOCore

/// The per-request context: Hummingbird's core storage plus the client's address (for `X-Forwarded-For`).
public struct ProxyRequestContext: RequestContext {
    /// Hummingbird's storage.
    public var coreContext: CoreRequestContextStorage
    /// The connected client's address.
    public let remoteAddress: SocketAddress?

    /// Creates the context for a new request.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
