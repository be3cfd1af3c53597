import AsyncHTTPClient
import Delivery
import Foundation
import HTTPListener
import HTTPTypes
import Hummingbird
import HummingbirdCore
import JSONText
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import OTLPExport
import ProxyObservability
import SharedSettings
import Synchronization
import TraceAssembly

/// The admin site's settings: what the status page shows and `/readyz` checks, and the admin tokens. The wiring
/// builds them from the configuration.
public struct AdminSettings: Sendable {
    /// The export mode (shown; in a mode that forwards trace calls, `/readyz` needs the upstream).
    public var mode: ExportMode
    /// The upstream MLflow server, `nil` when standalone.
    public var upstream: UpstreamURL?
    /// Tokens `/status` and `/metrics` require; empty: open.
    public var tokens: [String]
    /// The local traces file, shown when there are no destinations.
    public var localTracesFile: String?

    /// The settings.
    public init(mode: ExportMode, upstream: UpstreamURL?, tokens: [String], localTracesFile: String?) {
        self.mode = mode
        self.upstream = upstream
        self.tokens = tokens
        self.localTracesFile = localTracesFile
    }
}

/// What the admin endpoints read: their settings, the status board, the pipelines and assembler (for gauges), and
/// whether the proxy listener is up.
public final class AdminState: Sendable {
    let settings: AdminSettings
    let status: StatusBoard
    let fanOut: ExportFanOut
    let assembler: TraceAssembler
    let client: HTTPClient
    /// Whether the proxy listener is up (`/readyz`).
    public let listening = Atomic<Bool>(false)
    private let upstreamCheck = NIOLockedValueBox<(checkedAt: ContinuousClock.Instant, reachable: Bool, detail: String)?>(nil)

    /// The state of one running proxy; `client` checks the upstream's health.
    public init(settings: AdminSettings, status: StatusBoard, fanOut: ExportFanOut, assembler: TraceAssembler, client: HTTPClient) {
        self.settings = settings
        self.status = status
        self.fanOut = fanOut
        self.assembler = assembler
        self.client = client
    }

    /// Whether the upstream answers `GET /health` (cached for 5 s so probes do not load it).
    public func upstreamReachable() async -> (Bool, String) {
        guard let upstream = settings.upstream else { return (true, "no upstream (standalone)") }
        if let cached = upstreamCheck.withLockedValue({ $0 }), ContinuousClock.now - cached.checkedAt < .seconds(5) {
            return (cached.reachable, cached.detail)
        }
        var request = HTTPClientRequest(url: upstream.with(path: upstream.basePath + "/health").description)
        request.method = .GET
        var result = (false, "")
        do {
            let response = try await client.execute(request, timeout: .seconds(2))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            result = (response.status.code < 500, "GET /health answered \(response.status.code)")
        } catch {
            // The error's text can name hosts and addresses; /readyz is open to probes, so it says only that.
            result = (false, "GET /health failed")
        }
        upstreamCheck.withLockedValue { $0 = (ContinuousClock.now, result.0, result.1) }
        return result
    }
}

/// The admin listener (`--admin-listen`, default `127.0.0.1:9464`), apart from the proxy port so that port
/// stays pure passthrough (the MLflow server has its own `/metrics`):
/// `/healthz` (alive), `/readyz` (listening, configuration valid, upstream reachable), `/metrics` (Prometheus
/// text), `/status` (an HTML page that refreshes itself).
public enum AdminApplication {
    /// The admin application on `address`, its metrics rendered by `renderMetrics`.
    public static func make(
        address: ListenAddress, state: AdminState, renderMetrics: @escaping @Sendable () async -> String, server: HTTPServerBuilder,
        logger: Logger, onRunning: @escaping @Sendable (SocketAddress?) async -> Void
    ) -> some ApplicationProtocol {
        let router = Router()
        router.add(middleware: AdminSecurityHeaders())
        router.add(middleware: AdminAuthentication(tokens: state.settings.tokens))
        router.get("/healthz") { _, _ in "ok\n" }
        router.get("/readyz") { _, _ -> Response in
            let listening = state.listening.load(ordering: .relaxed)
            let (upstreamOK, upstreamDetail) = await state.upstreamReachable()
            // Trace intake needs the upstream only where uploads go to it (MLflow-only and dual); in
            // OpenTelemetry-only mode the proxy answers them itself, so an MLflow outage does not take it out of
            // rotation. The check is still shown.
            let upstreamRequired = !state.settings.mode.answersTraceCallsLocally
            // A spool that cannot be written (full or read-only disk) refuses uploads: out of rotation until it can.
            let spoolProblems = state.fanOut.spoolProblems
            let ready = listening && (upstreamOK || !upstreamRequired) && spoolProblems.isEmpty
            let body = JSONValue.object([
                (
                    "checks",
                    .object([
                        ("configuration", .object([("ok", .bool(true))])),
                        ("listening", .object([("ok", .bool(listening))])),
                        (
                            "spool",
                            .object([
                                ("detail", .string(spoolProblems.isEmpty ? "writable" : spoolProblems.joined(separator: "; "))),
                                ("ok", .bool(spoolProblems.isEmpty)),
                            ])
                        ),
                        (
                            "upstream",
                            .object([("detail", .string(upstreamDetail)), ("ok", .bool(upstreamOK)), ("required", .bool(upstreamRequired))])
                        ),
                    ])
                ),
                ("ready", .bool(ready)),
            ])
            return Response(
                status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: body.text))
            )
        }
        router.get("/metrics") { _, _ -> Response in
            let text = await renderMetrics()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text))
            )
        }
        router.get("/status") { _, _ -> Response in
            let statistics = state.assembler.statistics
            let html = StatusPage.render(state: state, tracesWaiting: statistics.tracesInFlight)
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
        }
        return Application(
            router: router, server: server, configuration: .init(address: .hostname(address.host, port: address.port), serverName: nil),
            onServerRunning: { channel in await onRunning(channel.localAddress) }, logger: logger
        )
    }
}

/// Adds to every admin answer, errors included: a `Content-Security-Policy` under which a page loads nothing and
/// runs no script (inline styles only, for the status page), and `X-Content-Type-Options: nosniff`, so that
/// nothing a client or a destination managed to put into a page can run in an operator's browser.
struct AdminSecurityHeaders<Context: RequestContext>: RouterMiddleware {
    static var contentSecurityPolicy: String { "default-src 'none'; style-src 'unsafe-inline'" }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        response.headers[.xContentTypeOptions] = "nosniff"
        return response
    }
}

/// With admin tokens configured, `/status` and `/metrics` (trace names, endpoints, destinations' errors) need
/// `Authorization: Bearer <token>`; anything else gets `401` with `Connection: close`. `/healthz` and `/readyz`
/// stay open for probes: they reveal nothing but up or ready.
struct AdminAuthentication<Context: RequestContext>: RouterMiddleware {
    let tokens: [String]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard !tokens.isEmpty, path != "/healthz", path != "/readyz" else { return try await next(request, context) }
        if let authorization = request.headers.value(of: .authorization), authorization.lowercased().hasPrefix("bearer ") {
            let presented = Array(authorization.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces).utf8)
            // Every token is compared, each in time independent of where it differs.
            if tokens.reduce(false, { found, token in Self.constantTimeEqual(presented, Array(token.utf8)) || found }) {
                return try await next(request, context)
            }
        }
        return Response(
            status: .unauthorized,
            headers: [.wwwAuthenticate: "Bearer realm=\"mlflow-otel-proxy admin\"", .contentType: "text/plain; charset=utf-8", .connection: "close"],
            body: .init(byteBuffer: ByteBuffer(string: "the admin listener needs a token: Authorization: Bearer <admin token>\n")))
    }

    static func constantTimeEqual(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }
}
