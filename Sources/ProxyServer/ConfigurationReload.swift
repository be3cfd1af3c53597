import AdminSite
import AsyncHTTPClient
import Delivery
import ExportQueue
import HTTPListener
import Intake
import Logging
import NIOConcurrencyHelpers
import OTLPExport
import Passthrough
import ProxyObservability
import ProxySettings
import ServiceLifecycle
import SharedSettings
import SpanShaping
import UnixSignals
import UpstreamAccess

/// The proxy's services and the handle that reloads its configuration.
public struct ProxyRuntime: Sendable {
    /// The services, in start order (they stop in reverse).
    public let services: [any Service]
    /// Applies a new configuration to the running proxy.
    public let reloader: ProxyReloader
}

/// Applies a new configuration to the running proxy (on SIGHUP).
///
/// What a reload changes: the destinations (added ones start, removed or changed ones flush their queues and
/// stop, unchanged ones keep running with their queues), delivery, inbound tokens, upstream headers and the
/// listeners' certificates (re-read from their files, for rotation). Settings that shape the listeners or
/// the trace path (listen addresses, upstream, limits, assembly, metrics, the traces file's use) need a
/// restart: a reload keeps their running values and logs a warning for each. A new configuration that would
/// change the export mode, or that cannot be applied (bad TLS files), is rejected whole, with its reasons,
/// and the running one stays.
public final class ProxyReloader: Sendable {
    /// The configuration the proxy started with: restart-only settings are compared with it.
    private let initial: ProxyConfiguration
    private let fanOut: ExportFanOut
    private let unitFactory: ExportUnitFactory
    private let live: LiveSettings
    private let listenerTLS: ListenerTLSContext?
    private let adminTLS: ListenerTLSContext?
    private let status: StatusBoard
    private let logger: Logger
    /// Reloads one at a time.
    private let inProgress = NIOLockedValueBox(false)

    init(
        running: ProxyConfiguration, fanOut: ExportFanOut, unitFactory: ExportUnitFactory, live: LiveSettings, listenerTLS: ListenerTLSContext?,
        adminTLS: ListenerTLSContext?, status: StatusBoard, logger: Logger
    ) {
        self.initial = running
        self.fanOut = fanOut
        self.unitFactory = unitFactory
        self.live = live
        self.listenerTLS = listenerTLS
        self.adminTLS = adminTLS
        self.status = status
        self.logger = logger
    }

    /// The settings a reload does not change, by name, with how to read them.
    static let restartOnly: [(name: String, value: @Sendable (ProxyConfiguration) -> String)] = [
        ("listen", { "\($0.listen)" }), ("admin_listen", { "\($0.adminListen?.description ?? "off")" }),
        ("upstream", { "\($0.upstream?.description ?? "none")" }), ("upstream.timeout", { "\($0.upstreamTimeout)" }),
        ("upstream.tls", { "\($0.upstreamTLS)" }), ("trusted_proxies", { "\($0.trustedProxies)" }),
        ("admin.tokens", { "\($0.adminTokens.map(\.hashValue))" }),
        ("upstream OAuth credentials", { "\($0.upstreamOAuth.map { "\($0)\($0.clientSecret.hashValue)" } ?? "")" }),
        ("limits", { "\($0.limits)\($0.maxTraceBodyBytes)" }), ("tls (on or off)", { "\($0.tls != nil)" }),
        ("admin_tls (on or off)", { "\($0.adminTLS != nil)" }), ("assembly", { "\($0.assemblyLimits)" }),
        ("trace_info_wait", { "\($0.traceInfoWait)" }), ("metrics", { "\($0.metricsExports)" }), ("service", { "\($0.resource)" }),
        ("attachments", { "\($0.attachmentsDirectory ?? "")\($0.attachmentsMaxBytes)" }), ("shutdown_timeout", { "\($0.shutdownTimeout)" }),
        ("sending_queue.spool", { "\(String(describing: $0.delivery.spool))" }),
    ]

    /// Applies `new`.
    /// - Returns: warnings for settings that changed but need a restart.
    /// - Throws: ``ConfigurationError`` when `new` cannot be applied; nothing was changed then.
    @discardableResult
    public func reload(to requested: ProxyConfiguration) async throws(ConfigurationError) -> [String] {
        var new = requested
        new.delivery.spool = initial.delivery.spool  // restart-only: batches on disk stay where the running pipelines look
        let claimed = inProgress.withLockedValue { busy in
            defer { busy = true }
            return !busy
        }
        guard claimed else {
            throw ConfigurationError(setting: "reload", reason: "a reload is already in progress")
        }
        defer { inProgress.withLockedValue { $0 = false } }
        let old = initial
        guard new.mode == old.mode else {
            throw ConfigurationError(
                setting: "mode", reason: "the export mode would change from \(old.mode.rawValue) to \(new.mode.rawValue); that needs a restart")
        }
        var warnings: [String] = []
        for setting in Self.restartOnly where setting.value(old) != setting.value(requested) {
            warnings.append("\(setting.name) changed; it needs a restart, the running value stays")
        }
        // Everything that can fail first, so a failure changes nothing.
        let units = try unitFactory.units(for: DeliveryPlan(new), reusing: fanOut.keys)
        if let listenerTLS, let settings = new.tls { try listenerTLS.replace(with: settings, setting: "tls") }
        if let adminTLS, let settings = new.adminTLS { try adminTLS.replace(with: settings, setting: "admin_tls") }

        live.update(to: LiveSettings.Snapshot(new))
        status.setDestinations(new.destinations.map { (name: $0.name, endpoint: $0.endpoint.description) })
        let (started, retired) = await fanOut.replace(with: units)
        logger.info(
            "configuration reloaded",
            metadata: [
                "destinations": "\(new.destinations.map(\.name).joined(separator: ","))", "started": "\(started)", "retired": "\(retired)",
                "inbound_tokens": "\(new.inboundTokens.count)",
            ])
        for warning in warnings { logger.warning("\(warning)") }
        return warnings
    }
}

/// Reloads the configuration on SIGHUP, the way nginx and most daemons do: `load` reads it again (file,
/// environment, flags); a bad one is logged with every reason and the running one stays.
public struct ReloadOnSignal: Service {
    let reloader: ProxyReloader
    let load: @Sendable () throws(ConfigurationError) -> ProxyConfiguration
    let logger: Logger

    /// A service that reloads on every SIGHUP until shutdown.
    public init(reloader: ProxyReloader, logger: Logger, load: @escaping @Sendable () throws(ConfigurationError) -> ProxyConfiguration) {
        self.reloader = reloader
        self.load = load
        self.logger = logger
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: [.sighup])
        for await _ in signals.cancelOnGracefulShutdown() {
            logger.info("SIGHUP: reloading the configuration")
            do {
                try await reloader.reload(to: try load())
            } catch {
                for problem in error.problems {
                    logger.error(
                        "configuration reload rejected; the running configuration stays",
                        metadata: ["setting": "\(problem.setting)", "error": "\(problem.reason)"])
                }
            }
        }
    }
}
