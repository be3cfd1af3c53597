import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Kept-alive HTTP/1.1 connections to the upstream, one pool per event loop: a listener's connection and the
/// upstream connection that serves its request live on the same loop, so a passthrough request never changes
/// threads. Connections are reused newest first; the oldest idle ones close after ``idleTimeout`` (one timer per
/// loop, armed for the oldest), and at most ``maxIdlePerLoop`` wait.
public final class UpstreamConnectionPool: Sendable {
    let host: String
    let port: Int
    /// The TLS context for an `https` upstream.
    let tls: NIOSSLContext?
    /// The name the upstream's certificate is checked against (`nil` for an address).
    let serverHostname: String?
    let connectTimeout: TimeAmount
    let idleTimeout: TimeAmount
    let maxIdlePerLoop: Int
    private let loops = NIOLockedValueBox<[ObjectIdentifier: (loop: any EventLoop, pool: NIOLoopBoundBox<LoopPool>)]>([:])

    /// A pool for the upstream at `host`:`port`, over TLS with `tls` when it is given.
    public init(
        host: String, port: Int, tls: NIOSSLContext?, connectTimeout: TimeAmount = .seconds(10), idleTimeout: TimeAmount = .seconds(60),
        maxIdlePerLoop: Int = 64
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        // SNI and the certificate check need a name; an address is checked against the certificate's IP entries.
        self.serverHostname = (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.maxIdlePerLoop = maxIdlePerLoop
    }

    /// The pool of `eventLoop`; call on that loop.
    func pool(on eventLoop: any EventLoop) -> LoopPool {
        let key = ObjectIdentifier(eventLoop)
        if let entry = loops.withLockedValue({ $0[key] }) { return entry.pool.value }
        // Only this loop's thread creates its pool, so two cannot be made for one loop.
        let box = NIOLoopBoundBox(LoopPool(owner: self, eventLoop: eventLoop), eventLoop: eventLoop)
        loops.withLockedValue { $0[key] = (eventLoop, box) }
        return box.value
    }

    /// Closes every idle connection (at shutdown); connections in use close when their exchange ends.
    public func closeIdleConnections() async {
        let entries = loops.withLockedValue { Array($0.values) }
        for entry in entries {
            try? await entry.loop.submit { entry.pool.value.closeAll() }.get()
        }
    }

    /// Opens a connection on `eventLoop`.
    func connect(on eventLoop: any EventLoop) -> EventLoopFuture<UpstreamConnection> {
        let tls = tls
        let serverHostname = serverHostname
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls { try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverHostname)) }
                    // NIO's client handlers with the proxy's own request encoder; header names and values come from
                    // requests the listener's parser accepted and from validated configuration, so they are not
                    // checked again.
                    try pipeline.addHandler(UpstreamRequestEncoder())
                    try pipeline.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                    try pipeline.addHandler(UpstreamRelay())
                }
            }
            .connect(host: host, port: port)
            .flatMapThrowing { channel in
                let handlers = channel.pipeline.syncOperations
                return UpstreamConnection(
                    channel: channel, encoder: try handlers.handler(type: UpstreamRequestEncoder.self),
                    relay: try handlers.handler(type: UpstreamRelay.self))
            }
    }
}

/// One event loop's idle connections; used only on that loop.
final class LoopPool {
    /// Weak: the pool holds its loop pools, and a listener connection may still hold this one (and give a connection
    /// back) after the pool is gone, at shutdown or when a test drops it; connections given back then are closed.
    private weak var owner: UpstreamConnectionPool?
    private let maxIdle: Int
    private let idleTimeout: TimeAmount
    private let eventLoop: any EventLoop
    /// Oldest first; taken from the end.
    private var idle: [(connection: UpstreamConnection, since: NIODeadline)] = []
    private var timer: Scheduled<Void>?

    init(owner: UpstreamConnectionPool, eventLoop: any EventLoop) {
        self.owner = owner
        self.maxIdle = owner.maxIdlePerLoop
        self.idleTimeout = owner.idleTimeout
        self.eventLoop = eventLoop
    }

    /// The most recently used idle connection that is still open, if any.
    func take() -> UpstreamConnection? {
        while let (connection, _) = idle.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    /// A connection whose exchange ended cleanly: kept for the next request, or closed when enough wait.
    func give(_ connection: UpstreamConnection) {
        guard connection.channel.isActive else { return }
        idle.removeAll { !$0.connection.channel.isActive }
        guard owner != nil, idle.count < maxIdle else {
            connection.channel.close(promise: nil)
            return
        }
        idle.append((connection, .now()))
        if timer == nil { arm() }
    }

    /// Opens a new connection on this loop.
    func connect() -> EventLoopFuture<UpstreamConnection> {
        guard let owner else { return eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        return owner.connect(on: eventLoop)
    }

    func closeAll() {
        timer?.cancel()
        timer = nil
        for (connection, _) in idle { connection.channel.close(promise: nil) }
        idle = []
    }

    /// Arms the timer for the oldest idle connection's expiry.
    private func arm() {
        guard let oldest = idle.first else { return }
        timer = eventLoop.assumeIsolated().scheduleTask(deadline: oldest.since + idleTimeout) { [weak self] in
            guard let self else { return }
            timer = nil
            let now = NIODeadline.now()
            while let first = idle.first, first.since + idleTimeout <= now {
                idle.removeFirst()
                first.connection.channel.close(promise: nil)
            }
            arm()
        }
    }
}

/// An open connection to the upstream and the handler that hands its answers to the exchange using it.
final class UpstreamConnection {
    let channel: any Channel
    let relay: UpstreamRelay
    /// The connection's request encoder (read for the framing of the request being written).
    private let encoder: UpstreamRequestEncoder

    init(channel: any Channel, encoder: UpstreamRequestEncoder, relay: UpstreamRelay) {
        self.channel = channel
        self.encoder = encoder
        self.relay = relay
    }

    /// Writes a request part to the upstream (flushed by ``flush()``); returns whether it wrote anything. The end of a
    /// request whose body is not chunked writes no bytes (its trailers, if any, are dropped, as NIO's encoder drops
    /// them): it is not passed down the pipeline at all, which saves that pass and a flush per request.
    @discardableResult
    func write(_ part: HTTPClientRequestPart) -> Bool {
        if case .end = part, !encoder.isChunked { return false }
        channel.write(part, promise: nil)
        return true
    }

    func flush() { channel.flush() }

    /// Whether the connection reads as data comes (off while the client does not take the answer).
    private var reading = true

    /// Stops or resumes reading the upstream's answer (the client reads slower than the upstream sends).
    func setReading(_ on: Bool) {
        guard on != reading else { return }
        reading = on
        try? channel.syncOptions?.setOption(ChannelOptions.autoRead, value: on)
        if on { channel.read() }
    }
}

/// What an exchange hears from its upstream connection (all on the connection's event loop).
protocol UpstreamReceiver: AnyObject {
    func upstreamReceived(_ part: HTTPClientResponsePart)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(_ writable: Bool)
    /// The connection failed or closed; `error` when it failed.
    func upstreamClosed(error: (any Error)?)
}

/// The last handler of an upstream connection: passes its answer to the exchange using it. An idle connection
/// that receives anything (a server must not answer what was not asked) is closed.
final class UpstreamRelay: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    /// The exchange using the connection; `nil` while it is idle.
    weak var receiver: (any UpstreamReceiver)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let receiver else {
            context.close(promise: nil)
            return
        }
        receiver.upstreamReceived(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        receiver?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        receiver?.upstreamWritabilityChanged(context.channel.isWritable)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let receiver = receiver
        self.receiver = nil
        receiver?.upstreamClosed(error: error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let receiver = receiver
        self.receiver = nil
        receiver?.upstreamClosed(error: nil)
    }
}
