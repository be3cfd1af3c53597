import HTTPListener
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import ProxyObservability
import UpstreamAccess

/// What the listener's passthrough does with a request head (NIO's, as the listener's decoder made it, its target in
/// origin form).
public enum PassthroughDecision: Sendable {
    /// Forward this head (admitted: path normalized, the proxy's token removed); `route` names it in the counters.
    case forward(HTTPRequestHead, route: String)
    /// Answer it in the listener from its body read whole (the trace uploads the proxy answers itself); `route`
    /// names it in the counters.
    case answer(HTTPRequestHead, route: String, LocalAnswering)
    /// Hand the request to the application: every other route the proxy answers itself, and every rejection.
    case application
}

/// How the listener answers a request itself (``PassthroughDecision/answer(_:route:_:)``): its body is read whole
/// under the memory budget, then `answer` makes the answer off the event loop, and the listener writes it. No
/// task or request object of the application per request.
public struct LocalAnswering: Sendable {
    /// The bodies held in memory over all connections.
    public var budget: BodyMemoryBudget
    /// The longest body read.
    public var maxBodyBytes: Int
    /// An answer given before the body is read (the proxy cannot take the request now), or `nil`; the body is then
    /// read and dropped, as the application's server does after an answer.
    public var beforeBody: @Sendable (Logger) -> ListenerAnswer?
    /// The answer when the body cannot be taken (over the limit or the budget, broken off); sent with
    /// `Connection: close`, after the rest of a declared body up to ``BodyMemoryBudget`` 's lingering limit was read
    /// and dropped (clients that write their whole body before they read then get it instead of a reset).
    public var refused: @Sendable (BodyMemoryBudget.Refusal, Logger) -> ListenerAnswer
    /// The answer to the body, made on the caller's thread (the event loop) when that is cheap and nothing has to
    /// wait; `nil` (or no closure): ``answer`` makes it.
    public var answerNow: (@Sendable (ByteBuffer, Logger) -> Immediate?)?
    /// The answer to the body, made off the event loop.
    public var answer: @Sendable (ByteBuffer, Logger) async -> ListenerAnswer

    /// An answer made at once, what has to finish before it is sent, and what runs once it is written (`nil`:
    /// nothing).
    public struct Immediate: Sendable {
        /// The answer.
        public var answer: ListenerAnswer
        /// Waited for (off the event loop) before the answer is written.
        public var before: (@Sendable () async -> Void)?
        /// Run on the event loop right after the answer is written and flushed, when there is nothing to wait for
        /// first (waking the translation stage's task for the traces the upload completed: the answer goes out
        /// before the event loop pays for waking another thread).
        public var after: (@Sendable () -> Void)?

        /// An answer, what it waits for, and what follows it.
        public init(answer: ListenerAnswer, before: (@Sendable () async -> Void)?, after: (@Sendable () -> Void)? = nil) {
            self.answer = answer
            self.before = before
            self.after = after
        }
    }

    /// The parts of a local answer.
    public init(
        budget: BodyMemoryBudget, maxBodyBytes: Int, beforeBody: @escaping @Sendable (Logger) -> ListenerAnswer?,
        refused: @escaping @Sendable (BodyMemoryBudget.Refusal, Logger) -> ListenerAnswer,
        answerNow: (@Sendable (ByteBuffer, Logger) -> Immediate?)? = nil,
        answer: @escaping @Sendable (ByteBuffer, Logger) async -> ListenerAnswer
    ) {
        self.budget = budget
        self.maxBodyBytes = maxBodyBytes
        self.beforeBody = beforeBody
        self.refused = refused
        self.answerNow = answerNow
        self.answer = answer
    }
}

/// Where the passthrough forwards to: the application's ``UpstreamForwarder``'s rules, limits and token source, and
/// the kept-alive connections on the listener's event loops.
struct PassthroughUpstream: Sendable {
    let rules: ForwardingRules
    let pool: UpstreamConnectionPool
    /// How long the upstream may take to answer (its head).
    let timeout: TimeAmount
    let timeoutText: String
    let live: LiveSettings
    let maxBodyBytes: Int?
    let tokenSource: UpstreamTokenSource?
}

/// The listener's own request handling, on its event loops, before the application (Hummingbird): MLflow calls the
/// proxy does not read are forwarded by ``PassthroughHandler`` in the connection's own pipeline, to a pooled upstream
/// connection on the same event loop, with no task and no thread change per request; the trace uploads the proxy
/// answers itself are read there and answered through ``LocalAnswering``. Everything else goes on to the application.
public final class ListenerPassthrough: Sendable {
    /// `nil` without an upstream (standalone): nothing is forwarded.
    let upstream: PassthroughUpstream?
    let counters: ProxyCounters
    let decide: @Sendable (HTTPRequestHead) -> PassthroughDecision

    /// A passthrough with the same rules, limits and token source as the application's ``UpstreamForwarder``
    /// (`nil` with `pool`: no upstream); `decide` says which requests it forwards or answers.
    public init(
        forwarder: UpstreamForwarder?, pool: UpstreamConnectionPool?, counters: ProxyCounters,
        decide: @escaping @Sendable (HTTPRequestHead) -> PassthroughDecision
    ) {
        if let forwarder, let pool {
            upstream = PassthroughUpstream(
                rules: forwarder.rules, pool: pool, timeout: TimeAmount(forwarder.timeout), timeoutText: "\(forwarder.timeout)",
                live: forwarder.live, maxBodyBytes: forwarder.maxBodyBytes, tokenSource: forwarder.tokenSource)
        } else {
            upstream = nil
        }
        self.counters = counters
        self.decide = decide
    }

    /// Adds the handler to a new connection's pipeline (after the HTTP codec and the connection guard); `answers`
    /// writes the upstream's answers to the client.
    public func addHandler(to channel: any Channel, logger: Logger, answers: RelayedAnswerWriter) throws {
        try channel.pipeline.syncOperations.addHandler(PassthroughHandler(passthrough: self, logger: logger, answers: answers))
    }
}

/// Forwards the requests ``ListenerPassthrough`` takes and passes the others to the application, one request at a
/// time per connection (parts of a pipelined request wait until the one before is answered).
///
/// Same behaviour as ``UpstreamForwarder``: bodies stream both ways with back-pressure (the client is not read
/// while the upstream cannot take more, the upstream is not read while the client does not take the answer); an
/// answer that arrives before the whole body was passed on goes to the client with `Connection: close` and the rest
/// of the body is not read; the passthrough body limit answers 413 while the upstream has not answered; an
/// unreachable upstream is a 502, one that does not answer within the timeout a 504, in MLflow's error format.
/// A kept-alive upstream connection that turns out to be closed before answering is replaced once, when the
/// request can be sent again whole (its body up to 64 KiB).
final class PassthroughHandler: ChannelDuplexHandler, UpstreamReceiver {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum Mode {
        case idle
        /// A request the application handles, until its request and its answer both ended.
        case application(requestEnded: Bool, answerEnded: Bool)
        case forwarding(Exchange)
        /// A request the listener answers itself, until its answer is written.
        case answering(LocalExchange)
        /// The answer is out (the connection closes after it); the rest of the request body is dropped.
        case discarding
    }

    /// Request bodies kept for a resend up to this size.
    static let replayLimit = 64 * 1024
    /// Request body buffered while the upstream connection is opened, before the client is no longer read.
    static let pendingLimit = 256 * 1024

    private let passthrough: ListenerPassthrough
    private let logger: Logger
    /// Writes the upstream's answers to the client as bytes, without passing them through the pipeline as parts.
    private let answers: RelayedAnswerWriter
    private var counting: AnswerCounting
    private var mode = Mode.idle
    /// Parts of a later request that arrived while this one is in flight.
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    /// A read asked for by the pipeline that this handler has not passed on yet.
    private var readHeld = false
    /// Parts went to the application since the last end of a read passed on to it.
    private var passedToApplication = false
    private var context: ChannelHandlerContext?
    private var peer: String?
    private var loopPool: LoopPool?
    /// The one timer for the upstream answer deadlines of this connection's exchanges.
    private var answerTimer = EarliestDeadlineTimer()

    init(passthrough: ListenerPassthrough, logger: Logger, answers: RelayedAnswerWriter) {
        self.passthrough = passthrough
        self.logger = logger
        self.answers = answers
        counting = AnswerCounting(counters: passthrough.counters)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        peer = context.channel.remoteAddress?.ipAddress
        loopPool = passthrough.upstream?.pool.pool(on: context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // The client's connection is gone (the handler is removed when its channel closes, whether or not
        // `channelInactive` reached it): its upstream connection cannot be reused.
        if case .forwarding(let exchange) = mode { end(exchange, reuse: false) }
        answerTimer.cancel()
        mode = .idle
        queued.removeAll()
        self.context = nil
    }

    // MARK: Inbound (the client's request)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if !queued.isEmpty || (isHead(part) && !isIdle) {
            queued.append(part)
            return
        }
        handle(part, context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushUpstream()
        // The application's channel delivers what it was given at the end of a read; a read that gave it nothing
        // (a passthrough request, an upload answered here) has nothing for it to deliver.
        if passedToApplication {
            passedToApplication = false
            context.fireChannelReadComplete()
        }
    }

    /// Sends what was written to the upstream (once per read from the client, not per part).
    private func flushUpstream() {
        guard case .forwarding(let exchange) = mode, exchange.unflushed, let connection = exchange.connection else { return }
        exchange.unflushed = false
        connection.flush()
    }

    private var isIdle: Bool {
        if case .idle = mode { return true }
        return false
    }

    private func isHead(_ part: HTTPServerRequestPart) -> Bool {
        if case .head = part { return true }
        return false
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch (mode, part) {
        case (.idle, .head(let head)):
            guard let head = head.inOriginForm else {
                toApplication(part, context: context)  // its conversion fails there too, as an error the pipeline closes on
                return
            }
            switch passthrough.decide(head) {
            case .forward(let admitted, let route):
                if let upstream = passthrough.upstream, withinLimit(admitted, upstream: upstream) {
                    start(admitted, route: route, upstream: upstream, context: context)
                } else {
                    toApplication(part, context: context)
                }
            case .answer(let admitted, let route, let answering):
                startAnswering(admitted, route: route, answering: answering, context: context)
            case .application:
                toApplication(part, context: context)
            }
        case (.idle, _):
            // Parts of a request whose answer is already out and whose rest was dropped; nothing to do.
            break
        case (.application(_, let answerEnded), _):
            passedToApplication = true
            context.fireChannelRead(wrapInboundOut(part))
            if case .end = part {
                mode = answerEnded ? .idle : .application(requestEnded: true, answerEnded: false)
                if answerEnded { nextRequest(context: context) }
            }
        case (.forwarding(let exchange), .body(let buffer)):
            forwardBody(buffer, exchange: exchange)
        case (.forwarding(let exchange), .end):
            exchange.requestEnded = true
            if exchange.discardingBody { return }
            if exchange.send(.end(nil)) { exchange.unflushed = true }
        case (.answering(let local), .body(let buffer)):
            guard let collection = local.collection else { return }  // refused: the rest is dropped
            do throws(BodyMemoryBudget.Refusal) {
                try collection.append(buffer)
            } catch {
                local.collection = nil
                refuse(local, refusal: error, context: context)
            }
        case (.answering(let local), .end):
            local.requestEnded = true
            if let deferred = local.deferred {
                respond(deferred, to: local, context: context)
            } else if let collection = local.collection {
                local.collection = nil
                let (body, reservation) = collection.finish()
                let answering = local.answering
                let logger = self.logger
                if let immediate = answering.answerNow?(body, logger) {
                    if let before = immediate.before {
                        complete(local, reservation: reservation, context: context) {
                            await before()
                            immediate.after?()
                            return immediate.answer
                        }
                    } else {
                        reservation.release()
                        respond(immediate.answer, to: local, context: context, then: immediate.after)
                    }
                } else {
                    complete(local, reservation: reservation, context: context) { await answering.answer(body, logger) }
                }
            }
        case (.forwarding, .head), (.answering, .head), (.discarding, .head):
            queued.append(part)  // not reached: channelRead and nextRequest queue a head unless idle
        case (.discarding, .end):
            mode = .idle
            nextRequest(context: context)
        case (.discarding, .body):
            break
        }
    }

    private func toApplication(_ head: HTTPServerRequestPart, context: ChannelHandlerContext) {
        mode = .application(requestEnded: false, answerEnded: false)
        passedToApplication = true
        context.fireChannelRead(wrapInboundOut(head))
    }

    /// A declared body over the passthrough limit goes to the application, which answers 413 without forwarding.
    private func withinLimit(_ head: HTTPRequestHead, upstream: PassthroughUpstream) -> Bool {
        guard let max = upstream.maxBodyBytes, let length = head.headers.value(of: .contentLength).flatMap({ Int($0) }) else { return true }
        return length <= max
    }

    /// Passes on the queued parts of the next request, then any read held for them.
    private func nextRequest(context: ChannelHandlerContext) {
        while let next = queued.first {
            if isHead(next) && !isIdle { break }
            queued.removeFirst()
            handle(next, context: context)
        }
        // The application's channel delivers what it was given at the end of a read (this may run outside one).
        if passedToApplication {
            passedToApplication = false
            context.fireChannelReadComplete()
        }
        flushUpstream()
        resumeReadsIfHeld(context: context)
    }

    // MARK: Outbound (the application's answers)

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .application(let requestEnded, _) = mode, case .end = unwrapOutboundIn(data) {
            mode = requestEnded ? .idle : .application(requestEnded: false, answerEnded: true)
            context.write(data, promise: promise)
            if requestEnded { nextRequest(context: context) }
            return
        }
        context.write(data, promise: promise)
    }

    func read(context: ChannelHandlerContext) {
        if holdsReads {
            readHeld = true
        } else {
            context.read()
        }
    }

    private var holdsReads: Bool {
        if !queued.isEmpty { return true }
        if case .forwarding(let exchange) = mode { return exchange.holdsClientReads }
        return false
    }

    private func resumeReadsIfHeld(context: ChannelHandlerContext) {
        guard readHeld, !holdsReads else { return }
        readHeld = false
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .forwarding(let exchange) = mode, let connection = exchange.connection, exchange.upstreamAnswered {
            connection.setReading(context.channel.isWritable)
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: The exchange

    private func start(_ head: HTTPRequestHead, route: String, upstream: PassthroughUpstream, context: ChannelHandlerContext) {
        let target = head.uri
        let method = head.method.rawValue
        logger.debug("request", metadata: ["method": "\(method)", "path": "\(target)", "route": "\(route)"])
        let settings = upstream.live.current
        var hostAndFraming = [("Host", upstream.rules.upstreamHost)]
        if let length = head.headers.value(of: .contentLength) {
            hostAndFraming.append(("Content-Length", length))
        } else if head.headers.contains(name: "transfer-encoding") {
            hostAndFraming.append(("Transfer-Encoding", "chunked"))
        } else if head.method == .POST || head.method == .PUT || head.method == .PATCH {
            hostAndFraming.append(("Content-Length", "0"))
        }
        let headers = upstream.rules.requestHeaders(
            head.headers, authority: head.headers.first(name: "host"), peer: peer, settings: settings, appending: hostAndFraming)
        let upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: upstream.rules.upstreamTarget(target), headers: headers)
        let exchange = Exchange(
            upstream: upstream, head: upstreamHead, method: method, route: route, target: target,
            clientCloses: head.headers.value(of: .connection)?.lowercased() == "close")
        mode = .forwarding(exchange)
        armAnswerTimer(for: exchange.answerDeadline, context: context)
        if let tokenSource = upstream.tokenSource, ForwardingRules.takesToken(headers, settings: settings) {
            context.eventLoop.makeFutureWithTask { try await tokenSource.accessToken() }.assumeIsolated().whenComplete { [weak self] result in
                guard let self, case .forwarding(let current) = mode, current === exchange else { return }
                switch result {
                case .success(let token):
                    exchange.token = token
                    exchange.head.headers.replaceOrAdd(name: "Authorization", value: "Bearer \(token)")
                    connect(exchange, reuse: true)
                case .failure(let error):
                    passthrough.counters.increment(.upstreamErrors, "oauth_token")
                    logger.error("no access token for the upstream", metadata: ["reason": "\(error)"])
                    answer(
                        exchange, status: .badGateway, code: "TEMPORARILY_UNAVAILABLE",
                        message: "mlflow-otel-proxy could not get an access token for the upstream: \(error)")
                }
            }
        } else {
            connect(exchange, reuse: true)
        }
    }

    /// Arms the answer timer for `deadline` (kept when armed for an earlier instant: it finds the current exchange's
    /// deadline when it fires; an exchange that ends leaves it to fire and find nothing due), so a kept-alive
    /// connection's requests schedule no timer each.
    private func armAnswerTimer(for deadline: NIODeadline, context: ChannelHandlerContext) {
        if answerTimer.covers(deadline) { return }
        answerTimer.arm(for: deadline, on: context.eventLoop) { [weak self] in self?.answerTimerFired() }
    }

    /// The upstream has not answered the current exchange in time: a 504; or its deadline is still ahead.
    private func answerTimerFired() {
        answerTimer.fired()
        guard case .forwarding(let exchange) = mode, !exchange.upstreamAnswered, let context else { return }
        if exchange.answerDeadline <= .now() {
            timedOut(exchange)
        } else {
            armAnswerTimer(for: exchange.answerDeadline, context: context)
        }
    }

    /// Gives the exchange a connection: a kept-alive one when `reuse` allows and one is idle, otherwise a new one.
    private func connect(_ exchange: Exchange, reuse: Bool) {
        guard let loopPool else { return }
        if reuse, let connection = loopPool.take() {
            attach(connection, to: exchange, reused: true)
            return
        }
        loopPool.connect().assumeIsolated().whenComplete { [weak self] result in
            guard let self, case .forwarding(let current) = mode, current === exchange else {
                if case .success(let connection) = result { loopPool.give(connection) }  // the client went away meanwhile
                return
            }
            switch result {
            case .success(let connection):
                attach(connection, to: exchange, reused: false)
            case .failure(let error):
                unreachable(exchange, error: error)
            }
        }
    }

    private func attach(_ connection: UpstreamConnection, to exchange: Exchange, reused: Bool) {
        exchange.connection = connection
        exchange.reused = reused
        connection.relay.receiver = self
        connection.write(.head(exchange.head))
        for part in exchange.sent { connection.write(part) }  // a resend: what the closed connection was given
        let pending = exchange.pending
        exchange.pending = []
        exchange.pendingBytes = 0
        for part in pending { exchange.send(part) }
        connection.flush()
        exchange.unflushed = false
        if let context { resumeReadsIfHeld(context: context) }
    }

    private func forwardBody(_ buffer: ByteBuffer, exchange: Exchange) {
        exchange.bodyBytes += buffer.readableBytes
        if let max = exchange.upstream.maxBodyBytes, exchange.bodyBytes > max, !exchange.discardingBody {
            bodyOverLimit(exchange, limit: max)
            return
        }
        if exchange.discardingBody { return }
        if exchange.send(.body(.byteBuffer(buffer))) { exchange.unflushed = true }
    }

    // MARK: The upstream's answer

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard case .forwarding(let exchange) = mode, let context else { return }
        exchange.heardFromUpstream = true
        switch part {
        case .head(let head) where head.status.code < 200 && head.status.code != 101:
            // `100 Continue` and other interim answers go to the client as they come.
            answers.writeHead(status: .init(code: Int(head.status.code), reasonPhrase: head.status.reasonPhrase), fields: [], closes: false)
            answers.flush()
        case .head(let head):
            exchange.upstreamAnswered = true  // the answer timer no longer applies
            exchange.upstreamCloses = !head.isKeepAlive
            let code = Int(head.status.code)
            let counters = passthrough.counters
            counting.upstreamAnswered(code: code, method: exchange.method, seconds: Double((NIODeadline.now() - exchange.started).nanoseconds) / 1e9)
            if code == 401, let tokenSource = exchange.upstream.tokenSource, let token = exchange.token {
                // A revoked or rotated token: fetch a new one for the next request instead of using it until its refresh point.
                Task { await tokenSource.invalidate(token) }
            }
            var fields = ForwardingRules.relayedResponseFields(head.headers)
            var closes = false
            if !exchange.requestEnded {
                // The upstream answered before the whole body was passed on (an early 401, or a server that does not
                // read the body): the answer goes to the client as is, the rest of the body is not read, so the
                // connection closes after this answer (what nginx does).
                closes = true
                exchange.discardingBody = true
                counters.increment(.connectionsClosed, "upstream_answered_before_body")
            } else if exchange.clientCloses {
                closes = true
            }
            // `Connection` is hop-by-hop, so none of the upstream's is left: this one goes last.
            if closes { fields.append(RelayedField.connectionClose) }
            let answer = RelayedHead(status: .init(code: code, reasonPhrase: head.status.reasonPhrase), fields: fields, closes: closes)
            if exchange.method != "HEAD", let length = head.headers.first(name: "content-length").flatMap({ Int($0) }),
                length <= UpstreamForwarder.wholeAnswerBytes
            {
                // A small answer of known length (most MLflow API calls) is read whole and goes to the client in one
                // write with its head; one that breaks off becomes a 502 instead of a truncated answer.
                exchange.heldAnswer = answer
                exchange.heldBody = context.channel.allocator.buffer(capacity: length)
            } else {
                writeHead(answer, exchange: exchange)
                if !context.channel.isWritable { exchange.connection?.setReading(false) }
            }
        case .body(var buffer):
            if exchange.heldAnswer != nil {
                exchange.heldBody.writeBuffer(&buffer)
            } else {
                answers.writeBody(buffer)
            }
        case .end:
            if let held = exchange.heldAnswer {
                exchange.heldAnswer = nil
                writeHead(held, exchange: exchange, wholeBody: exchange.heldBody)
            }
            exchange.answerEnded = true
            answers.writeEnd()
            end(exchange, reuse: exchange.requestEnded && !exchange.discardingBody && !exchange.upstreamCloses)
            afterAnswer(requestEnded: exchange.requestEnded, context: context)
        }
    }

    /// Writes the upstream's answer head to the client (counted under the request's route).
    /// `wholeBody`: the whole body of a small answer, written with the head.
    private func writeHead(_ answer: RelayedHead, exchange: Exchange, wholeBody: ByteBuffer? = nil) {
        exchange.answerStarted = true
        counting.answered(route: exchange.route, code: answer.status.code)
        if let wholeBody {
            answers.writeHead(status: answer.status, fields: answer.fields, closes: answer.closes, wholeBody: wholeBody)
        } else {
            answers.writeHead(status: answer.status, fields: answer.fields, closes: answer.closes)
        }
    }

    func upstreamReadComplete() {
        guard case .forwarding(let exchange) = mode, exchange.answerStarted else { return }
        answers.flush()
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        guard case .forwarding = mode, writable, let context else { return }
        resumeReadsIfHeld(context: context)
    }

    func upstreamClosed(error: (any Error)?) {
        guard case .forwarding(let exchange) = mode, let context else { return }
        exchange.connection = nil
        if exchange.heldAnswer != nil {
            // A small answer that broke off: the client gets a clear 502 instead of a truncated answer.
            exchange.heldAnswer = nil
            passthrough.counters.increment(.upstreamErrors, "answer_unreadable")
            answer(
                exchange, status: .badGateway, code: "TEMPORARILY_UNAVAILABLE",
                message: "The upstream MLflow server's answer to \(exchange.method) \(TargetPath.path(of: exchange.target)) could not be read.")
            return
        }
        if exchange.answerStarted {
            // The answer broke off: the client cannot get it whole, so its connection closes.
            passthrough.counters.increment(.upstreamErrors, "answer_unreadable")
            logger.warning("the upstream's answer broke off", metadata: ["path": "\(exchange.target)"])
            end(exchange, reuse: false)
            mode = .discarding
            context.close(promise: nil)
            return
        }
        if exchange.reused && !exchange.heardFromUpstream && exchange.canResend {
            // A kept-alive connection the upstream had closed: send the request again on a new one.
            exchange.resent = true
            connect(exchange, reuse: false)
            return
        }
        unreachable(exchange, error: error ?? ChannelError.eof)
    }

    // MARK: Answered here

    private func startAnswering(_ head: HTTPRequestHead, route: String, answering: LocalAnswering, context: ChannelHandlerContext) {
        logger.debug("request", metadata: ["method": "\(head.method.rawValue)", "path": "\(head.uri)", "route": "\(route)"])
        let declaredLength = head.headers.value(of: .contentLength).flatMap { Int($0) }
        let local = LocalExchange(
            route: route, answering: answering, declaredLength: declaredLength,
            clientCloses: head.headers.value(of: .connection)?.lowercased() == "close")
        mode = .answering(local)
        if let answer = answering.beforeBody(logger) {
            respond(answer, to: local, context: context)
            return
        }
        do throws(BodyMemoryBudget.Refusal) {
            local.collection = try BodyCollection(budget: answering.budget, limit: answering.maxBodyBytes, declaredLength: declaredLength)
        } catch {
            refuse(local, refusal: error, context: context)
        }
    }

    /// A body that cannot be taken: the refusal goes out after the rest of a declared body was read and dropped (up to
    /// the lingering limit), otherwise at once; with `Connection: close` either way.
    private func refuse(_ local: LocalExchange, refusal: BodyMemoryBudget.Refusal, context: ChannelHandlerContext) {
        var answer = local.answering.refused(refusal, logger)
        answer.headers[.connection] = "close"
        if refusal != .unreadable, !local.requestEnded, let declared = local.declaredLength, declared <= BodyMemoryBudget.lingeringLimit {
            local.deferred = answer
        } else {
            respond(answer, to: local, context: context)
        }
    }

    /// Makes the answer off the event loop (decoding, the assembler, the journal, or waiting for the next stage), then
    /// writes it, unless the client went away meanwhile. The body's share of the memory budget is held until then.
    private func complete(
        _ local: LocalExchange, reservation: BodyMemoryBudget.Reservation, context: ChannelHandlerContext,
        making: @escaping @Sendable () async -> ListenerAnswer
    ) {
        let promise = context.eventLoop.makePromise(of: ListenerAnswer.self)
        promise.completeWithTask(making)
        promise.futureResult.assumeIsolated().whenComplete { [weak self] result in
            reservation.release()
            guard let self, let context = self.context, case .answering(let current) = mode, current === local,
                case .success(let answer) = result
            else { return }
            respond(answer, to: local, context: context)
        }
    }

    /// Writes the listener's own answer, counted under the request's route; runs `written` once it is flushed; then
    /// the next request, or the rest of this one's body dropped.
    private func respond(
        _ answer: ListenerAnswer, to local: LocalExchange, context: ChannelHandlerContext, then written: (@Sendable () -> Void)? = nil
    ) {
        var fields = answer.headers
        fields[.contentLength] = "\(answer.body.readableBytes)"
        if local.clientCloses { fields[.connection] = "close" }
        counting.answered(route: local.route, code: answer.status.code)
        context.write(wrapOutboundOut(.head(HTTPResponse(status: answer.status, headerFields: fields))), promise: nil)
        if answer.body.readableBytes > 0 { context.write(wrapOutboundOut(.body(answer.body)), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        written?()
        afterAnswer(requestEnded: local.requestEnded, context: context)
    }

    // MARK: Endings

    private func unreachable(_ exchange: Exchange, error: any Error) {
        passthrough.counters.increment(.upstreamErrors, "unreachable")
        let upstream = exchange.upstream.rules.upstream
        let request = "\(exchange.method) \(TargetPath.path(of: exchange.target))"
        logger.warning("upstream unreachable", metadata: ["request": "\(request)", "upstream": "\(upstream)", "error": "\(error)"])
        answer(
            exchange, status: .badGateway, code: "TEMPORARILY_UNAVAILABLE",
            message: "The upstream MLflow server at \(upstream) could not be reached for \(request): \(error)")
    }

    private func timedOut(_ exchange: Exchange) {
        passthrough.counters.increment(.upstreamErrors, "timeout")
        let upstream = exchange.upstream.rules.upstream
        let request = "\(exchange.method) \(TargetPath.path(of: exchange.target))"
        logger.warning("upstream timed out", metadata: ["request": "\(request)", "upstream": "\(upstream)"])
        answer(
            exchange, status: .gatewayTimeout, code: "DEADLINE_EXCEEDED",
            message: "The upstream MLflow server at \(upstream) did not answer \(request) within \(exchange.upstream.timeoutText).")
    }

    private func bodyOverLimit(_ exchange: Exchange, limit: Int) {
        passthrough.counters.increment(.rejectedRequests, "passthrough_body_too_large")
        logger.info(
            "request body over the passthrough limit; answered 413",
            metadata: ["method": "\(exchange.method)", "path": "\(TargetPath.path(of: exchange.target))", "limit": "\(limit)"])
        exchange.discardingBody = true
        guard !exchange.upstreamAnswered else {
            // The upstream has answered: its answer is not cut off; the copy stops quietly (the connection closes
            // after the answer, which already says so).
            return
        }
        answer(
            exchange, status: .contentTooLarge, code: "MAX_READ_SIZE_EXCEEDED",
            message: "The request body exceeds the proxy's limit of \(limit) bytes for requests passed to the MLflow server.")
    }

    /// Answers the client instead of the upstream (an error before the upstream's answer began).
    private func answer(_ exchange: Exchange, status: HTTPResponse.Status, code: String, message: String) {
        guard let context, !exchange.answerStarted else { return }
        exchange.answerStarted = true
        exchange.answerEnded = true
        counting.answered(route: exchange.route, code: status.code)
        let body = ByteBuffer(string: ErrorResponses.mlflowBody(code: code, message: message))
        var fields: HTTPFields = [.contentType: "application/json", .contentLength: "\(body.readableBytes)"]
        if !exchange.requestEnded || exchange.clientCloses || status == .contentTooLarge {
            fields[.connection] = "close"  // the rest of the body is not read
            exchange.discardingBody = true
        }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        end(exchange, reuse: false)
        afterAnswer(requestEnded: exchange.requestEnded, context: context)
    }

    /// Lets go of the exchange's upstream connection: back to the pool, or closed.
    private func end(_ exchange: Exchange, reuse: Bool) {
        guard let connection = exchange.connection else { return }
        exchange.connection = nil
        connection.relay.receiver = nil
        if reuse {
            connection.setReading(true)
            loopPool?.give(connection)
        } else {
            connection.channel.close(promise: nil)
        }
    }

    /// After an answer (forwarded or the listener's own): the next request if this one's body was read whole,
    /// otherwise the rest of its body is dropped.
    private func afterAnswer(requestEnded: Bool, context: ChannelHandlerContext) {
        if requestEnded {
            mode = .idle
            nextRequest(context: context)
        } else {
            mode = .discarding
            resumeReadsIfHeld(context: context)
        }
    }
}

/// One forwarded request, from its head to the end of its answer.
final class Exchange {
    let upstream: PassthroughUpstream
    var head: HTTPRequestHead
    let method: String
    let route: String
    /// The client's target, for messages.
    let target: String
    let clientCloses: Bool
    let started = NIODeadline.now()
    var connection: UpstreamConnection?
    var reused = false
    var resent = false
    var token: String?
    /// When the upstream must have answered (its head) by: the upstream timeout after the request's head arrived.
    let answerDeadline: NIODeadline
    /// Body parts waiting for the connection.
    var pending: [HTTPClientRequestPart] = []
    var pendingBytes = 0
    /// Body parts written so far, kept for one resend while they fit ``PassthroughHandler/replayLimit``.
    var sent: [HTTPClientRequestPart] = []
    var sentBytes = 0
    var replayable = true
    var unflushed = false
    var bodyBytes = 0
    var requestEnded = false
    var discardingBody = false
    var heardFromUpstream = false
    /// The upstream's answer head arrived (the timeout no longer applies).
    var upstreamAnswered = false
    /// The client got an answer head.
    var answerStarted = false
    /// A small answer read whole before it is passed on: its head and body so far.
    var heldAnswer: RelayedHead?
    var heldBody = ByteBuffer()
    var answerEnded = false
    var upstreamCloses = false

    init(upstream: PassthroughUpstream, head: HTTPRequestHead, method: String, route: String, target: String, clientCloses: Bool) {
        self.upstream = upstream
        self.head = head
        self.method = method
        self.route = route
        self.target = target
        self.clientCloses = clientCloses
        answerDeadline = started + upstream.timeout
    }

    /// Whether the request can be sent again whole (once).
    var canResend: Bool { replayable && !resent }

    /// Whether the client should not be read for now: the upstream cannot take more, or too much waits for it.
    var holdsClientReads: Bool {
        if discardingBody { return false }
        guard let connection else { return pendingBytes >= PassthroughHandler.pendingLimit }
        return !connection.channel.isWritable
    }

    /// Writes a body part or the end to the upstream, or keeps it until there is a connection; returns whether
    /// anything was written that needs a flush.
    @discardableResult
    func send(_ part: HTTPClientRequestPart) -> Bool {
        guard let connection else {
            if case .body(.byteBuffer(let buffer)) = part { pendingBytes += buffer.readableBytes }
            pending.append(part)
            return false
        }
        if replayable {
            if case .body(.byteBuffer(let buffer)) = part { sentBytes += buffer.readableBytes }
            if sentBytes <= PassthroughHandler.replayLimit {
                sent.append(part)
            } else {
                replayable = false
                sent = []
            }
        }
        return connection.write(part)
    }
}

/// The head of an upstream's answer as it goes to the client.
struct RelayedHead {
    let status: HTTPResponse.Status
    let fields: [RelayedField]
    /// It says `Connection: close` (the connection closes after it).
    let closes: Bool
}

/// The path of a request target, without its query (what messages name).
enum TargetPath {
    static func path(of target: String) -> Substring { RequestPathNormalizer.pathPart(of: target) }
}

/// One request the listener answers itself, from its head to its answer.
final class LocalExchange {
    let route: String
    let answering: LocalAnswering
    let declaredLength: Int?
    let clientCloses: Bool
    /// The body read so far; `nil` once refused or read whole.
    var collection: BodyCollection?
    /// A refusal waiting for the end of the body it drops.
    var deferred: ListenerAnswer?
    var requestEnded = false

    init(route: String, answering: LocalAnswering, declaredLength: Int?, clientCloses: Bool) {
        self.route = route
        self.answering = answering
        self.declaredLength = declaredLength
        self.clientCloses = clientCloses
    }
}
