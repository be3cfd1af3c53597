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
import ProxyConfig
import ProxyObservability
import Synchronization

/// An HTTP/1.1 server channel with the proxy's connection limits (``ConnectionLimits``) and optional TLS.
///
/// Hummingbird's own `HTTP1Channel` answers a too-large head with an empty 400 and has one timeout for
/// everything; this channel sets up the same pipeline with, in front of the application:
/// - TLS from a ``ListenerTLSContext`` read per connection, so a reload takes effect for new connections;
/// - ``ConnectionGuardHandler``: 431 for a head over the limit, 400 for malformed HTTP, 408 for a head that
///   takes too long, closes stalled bodies and idle keep-alive connections, and answers 503 on connections
///   over the connection limit. Every answer is MLflow's JSON error format, counted and logged.
struct GuardedHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let limits: ConnectionLimits
    let tls: ListenerTLSContext?
    let connections: ConnectionGauge
    let counters: ProxyCounters

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let overLimit = connections.opened() > limits.maxConnections
            channel.closeFuture.whenComplete { [connections] _ in connections.closed() }
            let guardHandler = ConnectionGuardHandler(
                limits: limits, rejectAsOverLimit: overLimit, counters: counters, gauge: connections, logger: logger)
            let pipeline = channel.pipeline.syncOperations
            if let tls { try pipeline.addHandler(NIOSSLServerHandler(context: tls.current)) }
            try pipeline.addHandler(ByteActivityHandler(guardHandler: guardHandler))
            var decoderLimits = NIOHTTPDecoderLimitConfiguration()
            decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
            decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits
            )
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: tls != nil))
            try pipeline.addHandler(guardHandler)
            // Hummingbird's state handler still runs for graceful shutdown (it closes idle connections and
            // finishes the ones in flight); timeouts are the guard's.
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// The proxy's HTTP/1.1 server: ``GuardedHTTP1Channel`` with these limits and TLS.
    static func guarded(limits: ConnectionLimits, tls: ListenerTLSContext?, connections: ConnectionGauge, counters: ProxyCounters)
        -> HTTPServerBuilder
    {
        HTTPServerBuilder { responder in
            GuardedHTTP1Channel(responder: responder, limits: limits, tls: tls, connections: connections, counters: counters)
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

/// Open connections of one listener, for the connection limit and the `connections_open` gauge.
public final class ConnectionGauge: Sendable {
    private let count = Atomic<Int>(0)
    private let lastOverLimitLog = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
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
/// request is in, the answer is not out). One timer at a time is armed for the current phase; bytes arriving
/// only move a timestamp, and the timer re-arms itself when it fires early.
final class ConnectionGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    enum Phase {
        /// Between requests; `since` is when the head's first byte arrived, if one has.
        case awaitingHead(headStarted: NIODeadline?)
        case readingBody
        case handling
        case closing
    }

    private let limits: ConnectionLimits
    private let rejectAsOverLimit: Bool
    private let counters: ProxyCounters
    private let gauge: ConnectionGauge
    private let logger: Logger
    private var phase = Phase.awaitingHead(headStarted: nil)
    private var lastRead = NIODeadline.now()
    private var responseFinished = false
    private var closeAfterResponse = false
    private var timer: Scheduled<Void>?
    /// This handler's own context (the byte handler reports reads without it); set while in the pipeline.
    private var ownContext: ChannelHandlerContext?

    init(limits: ConnectionLimits, rejectAsOverLimit: Bool, counters: ProxyCounters, gauge: ConnectionGauge, logger: Logger) {
        self.limits = limits
        self.rejectAsOverLimit = rejectAsOverLimit
        self.counters = counters
        self.gauge = gauge
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        ownContext = context
        if context.channel.isActive { arm(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        ownContext = nil
        timer?.cancel()
        timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        phase = .closing
        context.fireChannelInactive()
    }

    /// Called by ``ByteActivityHandler`` for every read.
    func bytesArrived() {
        lastRead = .now()
        if case .awaitingHead(headStarted: nil) = phase, let context = ownContext {
            phase = .awaitingHead(headStarted: lastRead)
            arm(context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (part, phase) {
        case (_, .closing):
            return
        case (.head, _):
            if rejectAsOverLimit {
                counters.increment("rejected_requests", "too_many_connections")
                if gauge.shouldLogOverLimit() {
                    logger.warning(
                        "connection limit reached; answering 503 to connections over it",
                        metadata: ["listener": "\(gauge.listener)", "max_connections": "\(limits.maxConnections)"])
                }
                answerAndClose(
                    context: context, status: .serviceUnavailable, code: "TEMPORARILY_UNAVAILABLE",
                    message: "The proxy is serving its maximum of \(limits.maxConnections) connections; retry shortly.",
                    extraHeaders: [.retryAfter: "1"])
                return
            }
            phase = .readingBody
            responseFinished = false
            arm(context: context)
        case (.end, _):
            phase = responseFinished ? .awaitingHead(headStarted: nil) : .handling
            arm(context: context)
        case (.body, _):
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        if case .head(let head) = part, head.headerFields[.connection]?.lowercased() == "close" {
            closeAfterResponse = true  // an answer that says `Connection: close` (a 413 before the body) is the last one
        }
        if case .end = part, closeAfterResponse {
            phase = .closing
            timer?.cancel()
            timer = nil
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let written = promise ?? context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(data, promise: written)
            written.futureResult.whenComplete { _ in bound.value.close(promise: nil) }
            return
        }
        if case .end = part {
            switch phase {
            case .handling:
                phase = .awaitingHead(headStarted: nil)
                arm(context: context)
            case .readingBody:
                responseFinished = true  // an early answer; the body is still drained
            default:
                break
            }
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A request whose head never reached the application: nobody else can answer it.
        guard case .awaitingHead = phase, let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if case .headerOverflow = parserError {
            counters.increment("rejected_requests", "header_too_large")
            logger.info("request head over the limit; answered 431", metadata: ["max_header_bytes": "\(limits.maxHeaderBytes)"])
            answerAndClose(
                context: context, status: .init(code: 431, reasonPhrase: "Request Header Fields Too Large"), code: "INVALID_PARAMETER_VALUE",
                message: "The request's headers exceed the proxy's limit of \(limits.maxHeaderBytes) bytes.")
        } else {
            counters.increment("rejected_requests", "malformed_http")
            logger.info("malformed HTTP request; answered 400", metadata: ["error": "\(parserError)"])
            answerAndClose(
                context: context, status: .badRequest, code: "BAD_REQUEST", message: "The request is not valid HTTP/1.1 (\(parserError)).")
        }
    }

    // MARK: Timers

    /// Arms the one timer for the current phase.
    private func arm(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        guard let deadline = deadline() else { return }
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            bound.value.handler.timerFired(context: bound.value.context)
        }
    }

    private func deadline() -> NIODeadline? {
        switch phase {
        case .awaitingHead(headStarted: let started?): started + TimeAmount(limits.requestReadTimeout)
        case .awaitingHead(headStarted: nil): limits.idleTimeout.map { lastRead + TimeAmount($0) }
        case .readingBody: lastRead + TimeAmount(limits.requestReadTimeout)
        case .handling, .closing: nil
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer = nil
        guard let deadline = deadline() else { return }
        guard deadline <= .now() else {
            arm(context: context)
            return
        }
        switch phase {
        case .awaitingHead(headStarted: nil):
            counters.increment("connections_closed", "idle_timeout")
            logger.debug("closing an idle connection")
            phase = .closing
            context.close(promise: nil)
        case .awaitingHead:
            counters.increment("rejected_requests", "request_read_timeout")
            logger.info("request head not received in time; answered 408", metadata: ["timeout": "\(limits.requestReadTimeout)"])
            answerAndClose(
                context: context, status: .requestTimeout, code: "BAD_REQUEST",
                message: "The request did not arrive within \(limits.requestReadTimeout).")
        case .readingBody:
            counters.increment("connections_closed", "body_read_timeout")
            logger.info("request body stalled; connection closed", metadata: ["timeout": "\(limits.requestReadTimeout)"])
            phase = .closing
            context.close(promise: nil)
        case .handling, .closing:
            break
        }
    }

    /// Writes a complete MLflow-format error answer, then closes the connection.
    private func answerAndClose(
        context: ChannelHandlerContext, status: HTTPResponse.Status, code: String, message: String, extraHeaders: HTTPFields = [:]
    ) {
        phase = .closing
        timer?.cancel()
        timer = nil
        let object = ["error_code": code, "message": message]
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
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
