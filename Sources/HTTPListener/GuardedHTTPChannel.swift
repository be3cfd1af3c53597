import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOSSL
import ProxyObservability
import SharedSettings
import Synchronization

/// An HTTP/1.1 server channel with the proxy's connection limits (``ConnectionLimits``) and optional TLS.
///
/// Hummingbird's own `HTTP1Channel` answers a too-large head with an empty 400 and has one timeout for
/// everything; this channel sets up the same pipeline with, in front of the application:
/// - TLS from a ``ListenerTLSContext`` read per connection, so a reload takes effect for new connections;
/// - ``ConnectionGuardHandler``: 431 for a head over the limit, 400 for malformed HTTP, 408 for a head that
///   takes too long, closes stalled, too slow or too long bodies, answers nobody reads, and idle keep-alive
///   connections; at the connection limit it closes a connection that sends nothing useful for the new one, and
///   answers 503 when every connection is busy. Every answer is MLflow's JSON error format, counted and logged.
struct GuardedHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let limits: ConnectionLimits
    let tls: ListenerTLSContext?
    let connections: ConnectionGauge
    let counters: ProxyCounters
    /// Adds handlers after the guard that take some requests before the application does (the passthrough).
    let requestHandlers: RequestHandlers?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // At the limit, a connection that is not sending a request (idle, trickling) makes room; only when
            // every connection is busy does the new one get 503.
            let overLimit =
                connections.opened() > limits.maxConnections && !connections.evictOne(minBodyBytesPerSecond: limits.minBodyBytesPerSecond)
            channel.closeFuture.whenComplete { [connections] _ in connections.closed() }
            let guardHandler = ConnectionGuardHandler(
                limits: limits, rejectAsOverLimit: overLimit, counters: counters, gauge: connections, logger: logger)
            let pipeline = channel.pipeline.syncOperations
            if let tls { try pipeline.addHandler(NIOSSLServerHandler(context: tls.current)) }
            try pipeline.addHandler(ByteActivityHandler(guardHandler: guardHandler))
            var decoderLimits = NIOHTTPDecoderLimitConfiguration()
            decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
            decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
            // NIO's request decoder; the answers are written by the codec after it (NIO's response encoder's bytes, see
            // ``ListenerHTTPTypesCodec``). Header names and values are not checked again on the way out: answers
            // come from the upstream's parsed answers, the proxy's own code and validated configuration.
            try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: decoderLimits)))
            let codec = ListenerHTTPTypesCodec()
            try pipeline.addHandler(codec)
            // The guard also does what Hummingbird's connection state handler did (not in this pipeline): on a
            // graceful shutdown it closes idle connections and those in flight once answered.
            try pipeline.addHandler(guardHandler)
            try requestHandlers?(channel, logger, RelayedAnswerWriter(codec: codec, guardHandler: guardHandler))
            // The requests that reach the application become HTTPTypes requests only here.
            try pipeline.addHandler(ListenerRequestConverter(secure: tls != nil))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: value, logger: logger)
    }
}

/// Adds handlers to a connection's pipeline after the guard (the listener's passthrough), given the connection's
/// ``RelayedAnswerWriter`` for the answers they relay.
public typealias RequestHandlers = @Sendable (any Channel, Logger, RelayedAnswerWriter) throws -> Void

extension HTTPServerBuilder {
    /// The proxy's HTTP/1.1 server: ``GuardedHTTP1Channel`` with these limits and TLS.
    /// - Parameter requestHandlers: adds handlers to each connection's pipeline, after the guard and before the
    ///   application, that may answer requests themselves (the listener's passthrough).
    public static func guarded(
        limits: ConnectionLimits, tls: ListenerTLSContext?, connections: ConnectionGauge, counters: ProxyCounters,
        requestHandlers: RequestHandlers? = nil
    ) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            GuardedHTTP1Channel(
                responder: responder, limits: limits, tls: tls, connections: connections, counters: counters, requestHandlers: requestHandlers)
        }
    }
}

/// The certificate and key a listener presents, replaceable while it runs (on reload).
public final class ListenerTLSContext: Sendable {
    private let context: NIOLockedValueBox<NIOSSLContext>

    /// Loads the PEM files.
    /// - Throws: ``ConfigurationError`` naming the file that could not be used (never its contents).
    public init(_ settings: ListenerTLS, setting: String) throws(ConfigurationError) {
        context = NIOLockedValueBox(try Self.makeContext(settings, setting: setting))
    }

    /// The context new connections use.
    var current: NIOSSLContext { context.withLockedValue { $0 } }

    /// Replaces the certificate and key for connections accepted from now on.
    public func replace(with settings: ListenerTLS, setting: String) throws(ConfigurationError) {
        let new = try Self.makeContext(settings, setting: setting)
        context.withLockedValue { $0 = new }
    }

    static func makeContext(_ settings: ListenerTLS, setting: String) throws(ConfigurationError) -> NIOSSLContext {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(settings.certFile).map { NIOSSLCertificateSource.certificate($0) }
            guard !chain.isEmpty else { throw ConfigurationError(setting: "\(setting).cert_file", reason: "no certificate in the file") }
            let key = try NIOSSLPrivateKey(file: settings.keyFile, format: .pem)
            var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            configuration.applicationProtocols = ["http/1.1"]
            return try NIOSSLContext(configuration: configuration)
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError(
                setting: setting, reason: "cannot use \(settings.certFile) and \(settings.keyFile) as a certificate chain and key: \(error)")
        }
    }
}

/// Open connections of one listener: the connection limit, the `connections_open` gauge, and the choice of a
/// connection to close when a new one arrives at the limit.
public final class ConnectionGauge: Sendable {
    private let count = Atomic<Int>(0)
    private let lastOverLimitLog = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
    private let slots = NIOLockedValueBox<[ObjectIdentifier: ConnectionSlot]>([:])  // NIO's lock: TSan sees it (not Synchronization.Mutex)
    /// The listener's name in metrics (`proxy`, `admin`).
    public let listener: String

    /// A gauge for one listener.
    public init(listener: String) { self.listener = listener }

    /// Connections open now.
    public var open: Int { count.load(ordering: .relaxed) }

    /// Counts a new connection; returns the count including it.
    func opened() -> Int { count.add(1, ordering: .relaxed).newValue }

    /// Counts a closed connection.
    func closed() { count.subtract(1, ordering: .relaxed) }

    func register(_ slot: ConnectionSlot) { slots.withLockedValue { $0[ObjectIdentifier(slot)] = slot } }

    func unregister(_ slot: ConnectionSlot) { _ = slots.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(slot)) } }

    /// Asks the connection that has waited longest without sending a request at a useful rate (idle, a head not
    /// yet complete, or a body below `minBodyBytesPerSecond` for at least a second) to close, so a new connection
    /// can be served in its place. - Returns: whether one was asked; `false` when every connection is busy.
    ///
    /// The connection checks again on its own event loop before it closes (it may have just sent its request); in
    /// that race the new connection is still served, and the listener is one over its limit until one closes.
    func evictOne(minBodyBytesPerSecond: Int?, now: NIODeadline = .now()) -> Bool {
        let nowNanos = now.uptimeNanoseconds
        let victim: ConnectionSlot? = slots.withLockedValue { slots in
            var best: (slot: ConnectionSlot, age: UInt64)?
            for slot in slots.values where !slot.evictionRequested.load(ordering: .relaxed) {
                guard let age = slot.evictableAge(nowNanos: nowNanos, minBodyBytesPerSecond: minBodyBytesPerSecond) else { continue }
                if age >= best?.age ?? 0 { best = (slot, age) }
            }
            guard let best else { return nil }
            best.slot.evictionRequested.store(true, ordering: .relaxed)
            return best.slot
        }
        guard let victim else { return false }
        victim.evict()
        return true
    }

    /// Whether an over-limit warning should be logged now (at most one a minute, so a flood stays one line).
    func shouldLogOverLimit() -> Bool {
        let now = ContinuousClock.now
        return lastOverLimitLog.withLockedValue { last in
            if let last, now - last < .seconds(60) { return false }
            last = now
            return true
        }
    }
}

/// What one connection is doing, published by its ``ConnectionGuardHandler`` for ``ConnectionGauge/evictOne``,
/// which reads it from other threads (hence atomics; the handler itself lives on its event loop).
final class ConnectionSlot: Sendable {
    enum State: UInt8 {
        /// Handling a request or closing: never evicted.
        case busy = 0
        /// Waiting for a request's head, or receiving it.
        case awaitingHead = 1
        /// Receiving a request's body.
        case readingBody = 2
    }

    private let state = Atomic<UInt8>(State.busy.rawValue)
    /// When the current state began (uptime nanoseconds).
    private let since = Atomic<UInt64>(0)
    private let bodyBytes = Atomic<Int>(0)
    let evictionRequested = Atomic<Bool>(false)
    /// Runs the handler's own check-and-close on its event loop.
    let evict: @Sendable () -> Void

    init(evict: @escaping @Sendable () -> Void) { self.evict = evict }

    func publish(_ newState: State, since instant: NIODeadline) {
        since.store(instant.uptimeNanoseconds, ordering: .relaxed)
        bodyBytes.store(0, ordering: .relaxed)
        state.store(newState.rawValue, ordering: .relaxed)
    }

    func addBodyBytes(_ count: Int) { bodyBytes.add(count, ordering: .relaxed) }

    /// How long the connection has been evictable, or `nil` if it is not.
    func evictableAge(nowNanos: UInt64, minBodyBytesPerSecond: Int?) -> UInt64? {
        let started = since.load(ordering: .relaxed)
        let age = nowNanos >= started ? nowNanos - started : 0
        switch State(rawValue: state.load(ordering: .relaxed)) {
        case .awaitingHead:
            return age
        case .readingBody:
            guard let rate = minBodyBytesPerSecond, age >= 1_000_000_000 else { return nil }
            return Self.isBelow(rate: rate, bytes: bodyBytes.load(ordering: .relaxed), nanoseconds: age) ? age : nil
        case .busy, nil:
            return nil
        }
    }

    static func isBelow(rate: Int, bytes: Int, nanoseconds: UInt64) -> Bool {
        Double(bytes) < Double(rate) * Double(nanoseconds) / 1e9
    }
}

/// Tells the guard that bytes arrived, before the HTTP decoder (which reports nothing until a whole head is in).
final class ByteActivityHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let guardHandler: ConnectionGuardHandler

    init(guardHandler: ConnectionGuardHandler) { self.guardHandler = guardHandler }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guardHandler.bytesArrived()
        context.fireChannelRead(data)
    }
}

/// Enforces ``ConnectionLimits`` on one connection and answers the requests that never reach the application.
///
/// Phases: waiting for a head (idle, or reading one after its first byte), reading a body, handling (the
/// request is in, the answer is not out). One timer at a time is armed for the earliest deadline of the current
/// phase (and for the answer's write deadline while the client does not read); bytes arriving only move
/// timestamps, and the timer re-arms itself when it fires early.
///
/// Body deadlines count only time the proxy spent waiting for the client: from a `read` the application asked
/// for until bytes arrive. While the application holds the body back (its buffer is full because the upstream
/// reads slowly), the client is not blamed.
final class ConnectionGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    enum Phase {
        /// Between requests; `headStarted` is when the head's first byte arrived, if one has.
        case awaitingHead(headStarted: NIODeadline?)
        /// The head is in; `headStarted` is when its first byte arrived.
        case readingBody(headStarted: NIODeadline)
        case handling
        case closing
    }

    /// Why the timer closes a connection.
    enum Expiry {
        case idle, head, bodyStalled, bodyTooSlow, requestTimeout, responseWrite
    }

    private let limits: ConnectionLimits
    private let rejectAsOverLimit: Bool
    private let counters: ProxyCounters
    private let gauge: ConnectionGauge
    private let logger: Logger
    private var phase = Phase.awaitingHead(headStarted: nil)
    private var lastRead = NIODeadline.now()
    /// When the application last asked for bytes that have not come yet.
    private var readPendingSince: NIODeadline?
    /// Time spent waiting for this request's body, not counting a read pending now.
    private var bodyWait: TimeAmount = .zero
    private var bodyBytes = 0
    /// When the current request's head was complete.
    private var bodyStarted = NIODeadline.now()
    /// Since when the client has not been reading the answer (the channel is not writable).
    private var unwritableSince: NIODeadline?
    private var responseFinished = false
    private var closeAfterResponse = false
    /// Requests whose head came in and whose answer has not ended (more than one when a client pipelines).
    private var unansweredRequests = 0
    /// A graceful shutdown began: the connection closes once no request is unanswered.
    private var closeWhenAnswered = false
    private var timer = EarliestDeadlineTimer()
    /// This handler's own context (the byte handler reports reads without it); set while in the pipeline.
    private var ownContext: ChannelHandlerContext?
    private var slot: ConnectionSlot?

    init(limits: ConnectionLimits, rejectAsOverLimit: Bool, counters: ProxyCounters, gauge: ConnectionGauge, logger: Logger) {
        self.limits = limits
        self.rejectAsOverLimit = rejectAsOverLimit
        self.counters = counters
        self.gauge = gauge
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        ownContext = context
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let slot = ConnectionSlot(evict: { eventLoop.execute { bound.value.handler.evictIfStillIdle(context: bound.value.context) } })
        self.slot = slot
        if !rejectAsOverLimit {
            slot.publish(.awaitingHead, since: lastRead)
            gauge.register(slot)
        }
        if context.channel.isActive { arm(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        ownContext = nil
        timer.cancel()
        if let slot { gauge.unregister(slot) }
        // The slot's eviction closure holds this handler and its context: keeping it would make a cycle that
        // outlives the connection (one handler, context and channel leaked per connection).
        slot = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer.cancel()
        enter(.closing)
        context.fireChannelInactive()
    }

    /// Sets the phase and publishes it for eviction.
    private func enter(_ newPhase: Phase) {
        phase = newPhase
        guard let slot else { return }
        switch newPhase {
        case .awaitingHead(let started): slot.publish(.awaitingHead, since: started ?? lastRead)
        case .readingBody: slot.publish(.readingBody, since: .now())
        case .handling: slot.publish(.busy, since: .now())
        case .closing:
            slot.publish(.busy, since: .now())
            gauge.unregister(slot)
        }
    }

    /// Called by ``ByteActivityHandler`` for every read.
    func bytesArrived() {
        lastRead = .now()
        if let pending = readPendingSince {
            if case .readingBody = phase { bodyWait = bodyWait + (lastRead - pending) }
            readPendingSince = nil
        }
        if case .awaitingHead(headStarted: nil) = phase, let context = ownContext {
            enter(.awaitingHead(headStarted: lastRead))
            arm(context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        if readPendingSince == nil {
            readPendingSince = .now()
            if case .readingBody = phase { arm(context: context) }
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        unwritableSince = context.channel.isWritable ? nil : .now()
        arm(context: context)
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (part, phase) {
        case (_, .closing):
            return
        case (.head, _):
            if rejectAsOverLimit {
                counters.increment(.rejectedRequests, "too_many_connections")
                if gauge.shouldLogOverLimit() {
                    logger.warning(
                        "connection limit reached with every connection busy; answering 503 to connections over it",
                        metadata: ["listener": "\(gauge.listener)", "max_connections": "\(limits.maxConnections)"])
                }
                answerAndClose(
                    context: context, status: .serviceUnavailable, code: "TEMPORARILY_UNAVAILABLE",
                    message: "The proxy is serving its maximum of \(limits.maxConnections) connections; retry shortly.",
                    extraHeaders: [.retryAfter: "1"])
                return
            }
            let started: NIODeadline
            if case .awaitingHead(headStarted: let headStarted?) = phase { started = headStarted } else { started = lastRead }
            enter(.readingBody(headStarted: started))
            bodyWait = .zero
            bodyBytes = 0
            bodyStarted = .now()
            if readPendingSince != nil { readPendingSince = .now() }
            responseFinished = false
            unansweredRequests += 1
            arm(context: context)
        case (.end, _):
            enter(responseFinished ? .awaitingHead(headStarted: nil) : .handling)
            arm(context: context)
        case (.body(let buffer), _):
            bodyBytes += buffer.readableBytes
            slot?.addBodyBytes(buffer.readableBytes)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            answerHeadPassing(closes: head.headerFields.value(of: .connection)?.lowercased() == "close")
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            answerEndPassing(promise: promise) { written in
                if let written {
                    context.writeAndFlush(data, promise: written)
                } else {
                    context.write(data, promise: promise)
                }
            }
        }
    }

    /// An answer's head is on its way to the client (through this handler, or ``RelayedAnswerWriter``'s).
    func answerHeadPassing(closes: Bool) {
        if closes { closeAfterResponse = true }  // an answer that says `Connection: close` (a 413 before the body) is the last one
    }

    /// An answer's end is on its way to the client: `write` writes it, with a promise when the connection closes once
    /// it is written (then `write` also flushes; the promise completes `promise`).
    func answerEndPassing(promise: EventLoopPromise<Void>? = nil, _ write: (EventLoopPromise<Void>?) -> Void) {
        unansweredRequests = max(0, unansweredRequests - 1)
        if closeWhenAnswered && unansweredRequests == 0 { closeAfterResponse = true }
        guard let context = ownContext else {
            write(nil)
            return
        }
        if closeAfterResponse {
            enter(.closing)
            arm(context: context)  // only the write deadline is left
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let written = promise ?? context.eventLoop.makePromise(of: Void.self)
            write(written)
            written.futureResult.whenComplete { _ in bound.value.close(promise: nil) }
            return
        }
        switch phase {
        case .handling:
            enter(.awaitingHead(headStarted: nil))
            arm(context: context)
        case .readingBody:
            responseFinished = true  // an early answer; the body is still drained
        default:
            break
        }
        write(nil)
    }

    /// A graceful shutdown (Hummingbird's server quiescing): an idle connection closes now, one with a request in
    /// flight once that request is answered (what Hummingbird's own connection state handler does).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        if unansweredRequests == 0 {
            logger.debug("closing an idle connection for a graceful shutdown")
            close(context: context)
        } else {
            closeWhenAnswered = true
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A request whose head never reached the application: nobody else can answer it.
        guard case .awaitingHead = phase, let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if case .headerOverflow = parserError {
            counters.increment(.rejectedRequests, "header_too_large")
            logger.info("request head over the limit; answered 431", metadata: ["max_header_bytes": "\(limits.maxHeaderBytes)"])
            answerAndClose(
                context: context, status: .init(code: 431, reasonPhrase: "Request Header Fields Too Large"), code: "INVALID_PARAMETER_VALUE",
                message: "The request's headers exceed the proxy's limit of \(limits.maxHeaderBytes) bytes.")
        } else {
            counters.increment(.rejectedRequests, "malformed_http")
            logger.info("malformed HTTP request; answered 400", metadata: ["error": "\(parserError)"])
            answerAndClose(
                context: context, status: .badRequest, code: "BAD_REQUEST", message: "The request is not valid HTTP/1.1 (\(parserError)).")
        }
    }

    /// Closes this connection for a new one (``ConnectionGauge/evictOne``) if it is still idle, still sending its
    /// head, or still sending its body too slowly; otherwise it stays eligible for a later choice.
    func evictIfStillIdle(context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        let evictable: Bool
        switch phase {
        case .awaitingHead:
            evictable = true
        case .readingBody:
            let elapsed = now - bodyStarted
            evictable =
                limits.minBodyBytesPerSecond.map {
                    elapsed >= .seconds(1) && ConnectionSlot.isBelow(rate: $0, bytes: bodyBytes, nanoseconds: UInt64(elapsed.nanoseconds))
                } ?? false
        case .handling, .closing:
            evictable = false
        }
        guard evictable, ownContext != nil else {
            slot?.evictionRequested.store(false, ordering: .relaxed)
            return
        }
        counters.increment(.connectionsClosed, "evicted_for_new_connection")
        logger.debug("closing a connection that sent no request in time for a new connection at the limit")
        enter(.closing)
        timer.cancel()
        context.close(promise: nil)
    }

    // MARK: Timers

    /// Arms the one timer for the earliest deadline.
    ///
    /// A timer already armed for an earlier or equal instant is kept: when it fires before the deadline that now
    /// applies it re-arms itself, so the common calls (every read of a body, every writability change of a large
    /// answer) schedule nothing.
    private func arm(context: ChannelHandlerContext) {
        guard let (deadline, _) = nextExpiry() else { return }  // a timer still armed fires, finds nothing due, and stops
        if timer.covers(deadline) { return }
        timer.arm(for: deadline, on: context.eventLoop) { self.timerFired(context: context) }
    }

    /// The earliest deadline now and what it is for (kept as the candidates are looked at: this runs a few times per
    /// request, so it makes no list).
    private func nextExpiry() -> (NIODeadline, Expiry)? {
        var earliest: (NIODeadline, Expiry)?
        func consider(_ deadline: NIODeadline, _ expiry: Expiry) {
            if let current = earliest, current.0 <= deadline { return }
            earliest = (deadline, expiry)
        }
        switch phase {
        case .awaitingHead(headStarted: let started?):
            consider(started + TimeAmount(limits.requestReadTimeout), .head)
            if let whole = limits.requestTimeout { consider(started + TimeAmount(whole), .head) }
        case .awaitingHead(headStarted: nil):
            if let idle = limits.idleTimeout { consider(lastRead + TimeAmount(idle), .idle) }
        case .readingBody(let started):
            if let whole = limits.requestTimeout { consider(started + TimeAmount(whole), .requestTimeout) }
            if let pending = readPendingSince {
                consider(pending + TimeAmount(limits.requestReadTimeout), .bodyStalled)
                if let rate = limits.minBodyBytesPerSecond {
                    // The wait at which the body's rate would fall to the minimum if nothing more arrives.
                    let atRate = TimeAmount.nanoseconds(Int64(Double(bodyBytes) / Double(rate) * 1e9))
                    let needed = max(TimeAmount(limits.minBodyRateGracePeriod), atRate)
                    consider(pending + (needed - bodyWait), .bodyTooSlow)
                }
            }
        case .handling, .closing:
            break
        }
        if let since = unwritableSince, let timeout = limits.responseWriteTimeout {
            consider(since + TimeAmount(timeout), .responseWrite)
        }
        return earliest
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer.fired()
        guard let (deadline, expiry) = nextExpiry() else { return }
        guard deadline <= .now() else {
            arm(context: context)
            return
        }
        switch expiry {
        case .idle:
            counters.increment(.connectionsClosed, "idle_timeout")
            logger.debug("closing an idle connection")
            close(context: context)
        case .head:
            counters.increment(.rejectedRequests, "request_read_timeout")
            let timeout = min(limits.requestReadTimeout, limits.requestTimeout ?? limits.requestReadTimeout)
            logger.info("request head not received in time; answered 408", metadata: ["timeout": "\(timeout)"])
            answerAndClose(
                context: context, status: .requestTimeout, code: "BAD_REQUEST", message: "The request did not arrive within \(timeout).")
        case .bodyStalled:
            counters.increment(.connectionsClosed, "body_read_timeout")
            logger.info("request body stalled; connection closed", metadata: ["timeout": "\(limits.requestReadTimeout)"])
            close(context: context)
        case .bodyTooSlow:
            counters.increment(.connectionsClosed, "body_too_slow")
            logger.info(
                "request body arriving below the minimum rate; connection closed",
                metadata: ["min_body_rate": "\(limits.minBodyBytesPerSecond ?? 0)", "body_bytes": "\(bodyBytes)"])
            close(context: context)
        case .requestTimeout:
            counters.increment(.connectionsClosed, "request_timeout")
            logger.info(
                "request not received within the request timeout; connection closed", metadata: ["timeout": "\(limits.requestTimeout ?? .zero)"])
            close(context: context)
        case .responseWrite:
            counters.increment(.connectionsClosed, "response_write_timeout")
            logger.info("client stopped reading the answer; connection closed", metadata: ["timeout": "\(limits.responseWriteTimeout ?? .zero)"])
            close(context: context)
        }
    }

    private func close(context: ChannelHandlerContext) {
        enter(.closing)
        unwritableSince = nil
        context.close(promise: nil)
    }

    /// Writes a complete MLflow-format error answer, then closes the connection.
    private func answerAndClose(
        context: ChannelHandlerContext, status: HTTPResponse.Status, code: String, message: String, extraHeaders: HTTPFields = [:]
    ) {
        enter(.closing)
        timer.cancel()
        let body = Array(ErrorResponses.mlflowBody(code: code, message: message).utf8)
        var fields = extraHeaders
        fields[.contentType] = "application/json"
        fields[.contentLength] = "\(body.count)"
        fields[.connection] = "close"
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(ByteBuffer(bytes: body))), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in bound.value.close(promise: nil) }
    }
}
