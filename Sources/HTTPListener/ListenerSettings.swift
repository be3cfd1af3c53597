import Foundation

/// Limits on what one client connection may cost; each is answered with a clear error when hit.
///
/// The defaults follow nginx's (`client_header_timeout`/`client_body_timeout` 60 s, `keepalive_timeout` 75 s)
/// with room for MLflow's large trace uploads.
public struct ConnectionLimits: Sendable, Equatable {
    /// The largest request head (request line and headers), in bytes; beyond it the answer is 431. Default 64 KiB.
    public var maxHeaderBytes = 64 * 1024
    /// How long a request may take to arrive: its head from its first byte, and its body between two reads.
    /// A head that misses it gets 408; a stalled body has its connection closed. Default 60 s.
    public var requestReadTimeout: Duration = .seconds(60)
    /// How long a whole request (head and body) may take to arrive, from the head's first byte; `nil`: no cap.
    /// A request that misses it has its connection closed (408 if the application has not answered). Default 1 h,
    /// room for multi-gigabyte artifact uploads passed through to the upstream.
    public var requestTimeout: Duration? = .seconds(3600)
    /// The slowest a request body may arrive, in bytes per second of time the proxy spent waiting for it (time the
    /// proxy itself held the body back, e.g. behind a slow upstream, does not count), judged once
    /// ``minBodyRateGracePeriod`` has passed; `nil`: no minimum. Default 1 KiB/s (Apache's `mod_reqtimeout` uses
    /// 500 B/s, Kestrel 240 B/s; 1 KiB/s still passes a 64 MiB upload in 18 hours).
    public var minBodyBytesPerSecond: Int? = 1024
    /// How long a body may arrive at any rate before ``minBodyBytesPerSecond`` is judged. Default 10 s.
    public var minBodyRateGracePeriod: Duration = .seconds(10)
    /// How long an answer may wait for the client to read it (the connection's send buffer full the whole time);
    /// the connection is then closed, which also frees the upstream connection of a passthrough answer; `nil`:
    /// forever. Default 60 s (nginx's `send_timeout`).
    public var responseWriteTimeout: Duration? = .seconds(60)
    /// How long a keep-alive connection may wait for its next request; `nil`: forever. Default 75 s.
    public var idleTimeout: Duration? = .seconds(75)
    /// Connections served at once. A connection over the limit closes the oldest connection that is idle, still
    /// sending its head, or sending its body below ``minBodyBytesPerSecond`` (as nginx reuses idle
    /// connections); when every connection is busy it gets 503 with `Retry-After` and is closed. Default 1024.
    public var maxConnections = 1024
    /// Request bodies held in memory at once, over all connections (trace uploads are read whole before they are
    /// decoded); a request that would go over gets 503 with `Retry-After`. Default 256 MiB.
    public var maxBodyBytesInMemory = 256 * 1024 * 1024
    /// The largest body of a request passed through to the upstream (artifact uploads included); `nil`: no
    /// cap, the body streams. Beyond it the answer is 413.
    public var maxPassthroughBodyBytes: Int?
    /// Creates the defaults.
    public init() {}
}

/// A certificate chain and private key (PEM files) a listener presents.
public struct ListenerTLS: Sendable, Equatable {
    /// The certificate chain, leaf first.
    public var certFile: String
    /// The private key.
    public var keyFile: String
    /// Creates settings.
    public init(certFile: String, keyFile: String) {
        self.certFile = certFile
        self.keyFile = keyFile
    }
}

/// What the proxy does with a client's own `Authorization` header when the configuration injects one upstream.
public enum ClientAuthorizationPolicy: String, Sendable, Equatable {
    /// The client's header wins; the configured one is added only when the client sent none.
    case keep
    /// The configured header always replaces the client's.
    case replace
}
