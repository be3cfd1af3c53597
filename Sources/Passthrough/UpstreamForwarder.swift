import AsyncHTTPClient
import Foundation
import HTTPListener
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ProxyObservability
import SharedSettings
import UpstreamAccess

/// Forwards a request to the upstream MLflow server and streams its answer back unchanged.
///
/// Method, path, query, end-to-end headers and body are kept; hop-by-hop headers (RFC 9110 §7.6.1,
/// plus any named in `Connection`) are dropped both ways; `X-Forwarded-For`, `-Proto` and `-Host` are
/// added, and `Via` with this proxy's `LoopGuard` token. Bodies stream in both directions. An unreachable
/// upstream answers 502, a timeout 504, each in MLflow's JSON error format.
public struct UpstreamForwarder: Sendable {
    /// How requests and answers are rewritten (shared with ``PassthroughHandler``).
    public let rules: ForwardingRules
    var upstream: UpstreamURL { rules.upstream }
    let client: HTTPClient
    let timeout: Duration
    let counters: ProxyCounters
    /// Operator-configured headers for every upstream request (never a destination's) and whether a client's
    /// own `Authorization` survives an injected one; a reload can change them.
    public let live: LiveSettings
    /// The largest body passed through (`limits.max_passthrough_body_bytes`); `nil`: streamed without a cap.
    public var maxBodyBytes: Int?
    /// Access tokens for an upstream reached with OAuth client credentials (a Databricks service principal).
    public var tokenSource: UpstreamTokenSource?

    /// A forwarder following `rules` through `client`, each call bounded by `timeout`.
    public init(
        rules: ForwardingRules, client: HTTPClient, timeout: Duration, counters: ProxyCounters, live: LiveSettings, maxBodyBytes: Int?,
        tokenSource: UpstreamTokenSource?
    ) {
        self.rules = rules
        self.client = client
        self.timeout = timeout
        self.counters = counters
        self.live = live
        self.maxBodyBytes = maxBodyBytes
        self.tokenSource = tokenSource
    }

    /// Answers up to this size with a `Content-Length` are read whole before they are passed on (one write).
    public static let wholeAnswerBytes = 64 * 1024

    /// Forwards the request and streams the upstream's answer back.
    /// - Parameter bufferedBody: the body when the caller already read it (trace uploads); otherwise the
    ///   request's own body is streamed through.
    public func forward(_ request: Request, context: ProxyRequestContext, bufferedBody: ByteBuffer? = nil) async -> Response {
        let (upstreamResponse, pump): (HTTPClientResponse, RequestBodyPump?)
        switch await send(request, context: context, bufferedBody: bufferedBody) {
        case .failure(let failure): return failure.response
        case .success(let sent): (upstreamResponse, pump) = sent
        }
        if let pump, !pump.markAnswered() {
            // The body passed the limit just as the upstream answered: the request failed, its answer cannot be
            // read whole, so the client gets the 413 (and the connection closes).
            await pump.stop()
            return bodyTooLarge(request, limit: maxBodyBytes ?? 0, context: context)
        }
        var headers = ForwardingRules.responseFields(upstreamResponse.headers)
        if let pump, !pump.hasReadWholeBody {
            // The upstream answered before the whole request body was passed to it (an early 401, or a server
            // that does not read the body). Its answer goes to the client as is, but the rest of the body is
            // never read, so the connection cannot carry another request: it closes after this answer (what
            // nginx does), and a body over the passthrough limit can never keep it busy.
            headers[.connection] = "close"
            counters.increment(.connectionsClosed, "upstream_answered_before_body")
        }
        if request.method != .head, let length = upstreamResponse.headers.first(name: "content-length").flatMap(Int.init),
            length <= Self.wholeAnswerBytes
        {
            // A small answer of known length (most MLflow API calls) is read whole and goes to the client in one
            // write with its head, as nginx's proxy buffer does; a streamed body costs a write per part.
            do {
                let answer = try await upstreamResponse.body.collect(upTo: length)
                await pump?.stop()
                return Response(status: status(of: upstreamResponse), headers: headers, body: .init(byteBuffer: answer))
            } catch {
                await pump?.stop()
                return answerUnreadable(request)
            }
        }
        let upstreamBody = upstreamResponse.body
        let body = ResponseBody { writer in
            do {
                for try await chunk in upstreamBody { try await writer.write(chunk) }
                await pump?.stop()
                try await writer.finish(nil)
            } catch {
                await pump?.stop()
                throw error
            }
        }
        return Response(status: status(of: upstreamResponse), headers: headers, body: body)
    }

    /// Forwards an already-read request and reads the upstream's answer too (small JSON answers the proxy
    /// needs to look into, such as the request id of a v2 `StartTrace`). The client gets the same answer.
    /// - Returns: the response for the client and the answer's body, or `nil` when it was not read.
    public func forwardReadingAnswer(
        _ request: Request, context: ProxyRequestContext, bufferedBody: ByteBuffer, limit: Int
    ) async -> (response: Response, answer: ByteBuffer?) {
        let upstreamResponse: HTTPClientResponse
        switch await send(request, context: context, bufferedBody: bufferedBody) {
        case .failure(let failure): return (failure.response, nil)
        case .success(let sent): upstreamResponse = sent.0
        }
        guard let answer = try? await upstreamResponse.body.collect(upTo: limit) else {
            return (answerUnreadable(request), nil)
        }
        return (
            Response(
                status: status(of: upstreamResponse), headers: ForwardingRules.responseFields(upstreamResponse.headers),
                body: .init(byteBuffer: answer)), answer
        )
    }

    struct Failure: Error {
        var response: Response
    }

    /// Sends the request upstream; on failure, the 502/504 answer for the client.
    private func send(
        _ request: Request, context: ProxyRequestContext, bufferedBody: ByteBuffer?
    ) async -> Result<(HTTPClientResponse, RequestBodyPump?), Failure> {
        let url = upstream.description.dropLast(upstream.path.count) + rules.upstreamTarget(request.uri.description)
        var outbound = HTTPClientRequest(url: String(url))
        outbound.method = HTTPMethod(rawValue: request.method.rawValue)
        let settings = live.current
        outbound.headers = rules.requestHeaders(
            request.headers, authority: request.head.authority, peer: context.remoteAddress?.ipAddress, settings: settings)
        var issuedToken: String?
        if let tokenSource, ForwardingRules.takesToken(outbound.headers, settings: settings) {
            do {
                let token = try await tokenSource.accessToken()
                issuedToken = token
                outbound.headers.replaceOrAdd(name: "Authorization", value: "Bearer \(token)")
            } catch {
                counters.increment(.upstreamErrors, "oauth_token")
                context.logger.error("no access token for the upstream", metadata: ["reason": "\(error)"])
                return .failure(
                    Failure(
                        response: ErrorResponses.mlflow(
                            status: .badGateway, code: "TEMPORARILY_UNAVAILABLE",
                            message: "mlflow-otel-proxy could not get an access token for the upstream: \(error)")))
            }
        }

        let contentLength = request.headers.value(of: .contentLength).flatMap(Int.init)
        if let maxBodyBytes, let contentLength, contentLength > maxBodyBytes {
            return .failure(Failure(response: bodyTooLarge(request, limit: maxBodyBytes, context: context)))
        }
        let pump: RequestBodyPump?
        if let bufferedBody {
            pump = nil
            outbound.body = .bytes(bufferedBody)
        } else if contentLength != 0 && (contentLength != nil || request.headers.contains(.transferEncoding)) {
            let bodyPump = RequestBodyPump(body: request.body, limit: maxBodyBytes)
            pump = bodyPump
            outbound.body = .stream(bodyPump.channel, length: contentLength.map { .known(Int64($0)) } ?? .unknown)
        } else {
            pump = nil
        }
        do {
            let started = ContinuousClock.now
            let response = try await client.execute(outbound, timeout: TimeAmount(timeout), logger: context.logger)
            counters.observe(.upstreamDurationSeconds, request.method.rawValue, seconds: (ContinuousClock.now - started).seconds)
            counters.increment(.upstreamResponses, ProxyMetric.statusClass(Int(response.status.code)))
            if response.status == .unauthorized, let tokenSource, let issuedToken {
                // A revoked or rotated token: fetch a new one for the next request instead of using it until its refresh point.
                await tokenSource.invalidate(issuedToken)
            }
            return .success((response, pump))
        } catch {
            await pump?.stop()
            if let pump, let maxBodyBytes, pump.exceededLimit {
                return .failure(Failure(response: bodyTooLarge(request, limit: maxBodyBytes, context: context)))
            }
            return .failure(Failure(response: errorResponse(for: error, request: request, context: context)))
        }
    }

    /// 502 for an upstream answer that broke off or could not be read whole (counted).
    private func answerUnreadable(_ request: Request) -> Response {
        counters.increment(.upstreamErrors, "answer_unreadable")
        return ErrorResponses.mlflow(
            status: .badGateway, code: "TEMPORARILY_UNAVAILABLE",
            message: "The upstream MLflow server's answer to \(request.method.rawValue) \(request.uri.path) could not be read."
        )
    }

    /// 413 for a body over the passthrough limit (counted, logged); the upstream never sees the request whole.
    private func bodyTooLarge(_ request: Request, limit: Int, context: ProxyRequestContext) -> Response {
        counters.increment(.rejectedRequests, "passthrough_body_too_large")
        context.logger.info(
            "request body over the passthrough limit; answered 413",
            metadata: ["method": "\(request.method.rawValue)", "path": "\(request.uri.path)", "limit": "\(limit)"])
        return ErrorResponses.mlflow(
            status: .contentTooLarge, code: "MAX_READ_SIZE_EXCEEDED",
            message: "The request body exceeds the proxy's limit of \(limit) bytes for requests passed to the MLflow server.",
            headers: [.connection: "close"])
    }

    private func status(of response: HTTPClientResponse) -> HTTPResponse.Status {
        .init(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase)
    }

    private func errorResponse(for error: any Error, request: Request, context: ProxyRequestContext) -> Response {
        let target = "\(request.method.rawValue) \(request.uri.path)"
        if let clientError = error as? HTTPClientError, clientError == .deadlineExceeded || clientError == .readTimeout {
            counters.increment(.upstreamErrors, "timeout")
            context.logger.warning("upstream timed out", metadata: ["request": "\(target)", "upstream": "\(upstream)"])
            return ErrorResponses.mlflow(
                status: .gatewayTimeout, code: "DEADLINE_EXCEEDED",
                message: "The upstream MLflow server at \(upstream) did not answer \(target) within \(timeout)."
            )
        }
        counters.increment(.upstreamErrors, "unreachable")
        context.logger.warning("upstream unreachable", metadata: ["request": "\(target)", "upstream": "\(upstream)", "error": "\(error)"])
        return ErrorResponses.mlflow(
            status: .badGateway, code: "TEMPORARILY_UNAVAILABLE",
            message: "The upstream MLflow server at \(upstream) could not be reached for \(target): \(error)"
        )
    }
}
