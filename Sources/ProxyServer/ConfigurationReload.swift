import AsyncHTTPClient
import ExportQueue
import Logging
import NIOConcurrencyHelpers
import OTLPExport
import ProxyConfig
import ProxyObservability
import ServiceLifecycle
import SpanShaping
import UnixSignals

/// The proxy's services and the handle that reloads its configuration.
public struct ProxyRuntime: Sendable {
    /// The services, in start order (they stop in reverse).
    public let services: [any Service]
    /// Applies a new configuration to the running proxy.
    public let reloader: ProxyReloader
}

/// Builds the export unit of each destination (or of the local traces file).
struct ExportUnitFactory: Sendable {
    let counters: ProxyCounters
    let logger: Logger
    let status: StatusBoard
    let exportClient: HTTPClient

    /// The units `configuration` asks for, in its order.
    /// - Throws: ``ConfigurationError`` when a destination's TLS files cannot be used or the traces file opened.
    func units(for configuration: ProxyConfiguration, reusing existing: [ExportFanOut.Key] = []) throws(ConfigurationError) -> [ExportFanOut.Unit] {
        var units: [ExportFanOut.Unit] = []
        for destination in configuration.destinations {
            let delivery = destination.delivery(over: configuration.delivery)
            let key = ExportFanOut.Key(destination: destination, delivery: delivery, localFile: nil)
            units.append(existing.contains(key) ? placeholder(key) : try unit(for: destination, delivery: delivery))
        }
        if configuration.destinations.isEmpty, let path = configuration.localTracesFile {
            let key = ExportFanOut.Key(destination: nil, delivery: configuration.delivery, localFile: path)
            if existing.contains(key) {
                units.append(placeholder(key))
            } else {
                let exporter: JSONLinesFileExporter
                do {
                    exporter = try JSONLinesFileExporter(path: path)
                } catch {
                    throw ConfigurationError(setting: "traces_file", reason: "cannot open \(path): \(error)")
                }
                // With the status board, so /status shows a trace written there as delivered (to `file:<path>`).
                let pipeline = ExportPipeline(
                    settings: configuration.delivery, exporters: [exporter], counters: counters, logger: logger, status: status)
                units.append(ExportFanOut.Unit(key: key, pipeline: pipeline, group: group([pipeline])))
            }
        }
        return units
    }

    private func unit(for destination: OTLPDestination, delivery: DeliverySettings) throws(ConfigurationError) -> ExportFanOut.Unit {
        if destination.tls.insecureSkipVerify {
            logger.warning("TLS certificate verification is off for a destination", metadata: ["destination": "\(destination.name)"])
        }
        let exporter: any SpanExporter
        var services: [any Service] = []
        do {
            if destination.transportProtocol == .grpc {
                let grpc = try OTLPGRPCExporter(
                    destination: destination, retry: delivery.retry, logger: logger, status: status, counters: counters)
                services.append(grpc)  // its connection runs before the pipeline starts and stops after it flushed
                exporter = grpc
            } else {
                exporter = try OTLPHTTPExporter(
                    destination: destination, client: exportClient, retry: delivery.retry, logger: logger, status: status, counters: counters)
            }
        } catch {
            throw ConfigurationError(setting: "destinations.\(destination.name).tls", reason: "cannot load the TLS files: \(error)")
        }
        let pipeline = ExportPipeline(
            settings: delivery, exporters: [exporter], counters: counters, logger: logger, status: status,
            spoolPath: delivery.spool.map { Self.spoolPath(root: $0.directory, destination: destination.name) },
            shaper: DestinationShaper(policy: destination.policy), maxRequestBytes: destination.maxRequestBytes)
        return ExportFanOut.Unit(
            key: ExportFanOut.Key(destination: destination, delivery: delivery, localFile: nil), pipeline: pipeline,
            group: group(services + [pipeline]))
    }

    /// A destination's spool directory: `<root>/<name>`, the name reduced to letters, digits, `.`, `_` and `-`.
    static func spoolPath(root: String, destination: String) -> String {
        let safe = String(destination.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
        return (root.hasSuffix("/") ? String(root.dropLast()) : root) + "/" + (safe.hasPrefix(".") ? "_" + safe : safe)
    }

    /// Checks at start-up that every destination's spool directory can be created, written and locked (so a
    /// second proxy on the same directory stops with the reason instead of delivering the same batches).
    func checkSpools(for configuration: ProxyConfiguration) throws(ConfigurationError) {
        guard let spool = configuration.delivery.spool else { return }
        for destination in configuration.destinations {
            do {
                _ = try SpoolDirectory(path: Self.spoolPath(root: spool.directory, destination: destination.name), fsync: false)
            } catch {
                throw ConfigurationError(setting: "sending_queue.spool.directory", reason: error.description)
            }
        }
    }

    /// A stand-in for a unit that is already running (the fan-out keeps the running one).
    private func placeholder(_ key: ExportFanOut.Key) -> ExportFanOut.Unit {
        let pipeline = ExportPipeline(settings: key.delivery, exporters: [], counters: counters, logger: logger)
        return ExportFanOut.Unit(key: key, pipeline: pipeline, group: group([]))
    }

    private func group(_ services: [any Service]) -> ServiceGroup {
        ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [], cancellationSignals: [], logger: logger))
    }
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
        let units = try unitFactory.units(for: new, reusing: fanOut.keys)
        if let listenerTLS, let settings = new.tls { try listenerTLS.replace(with: settings, setting: "tls") }
        if let adminTLS, let settings = new.adminTLS { try adminTLS.replace(with: settings, setting: "admin_tls") }

        live.update(from: new)
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
