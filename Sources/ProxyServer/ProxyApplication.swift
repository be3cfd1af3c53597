import AdminSite
import AsyncHTTPClient
import CoreMetrics
import Delivery
import ExportQueue
import Foundation
import HTTPListener
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Intake
import Logging
import MLflowWire
import NIOCore
import NIOHTTP1
import NIOSSL
import OTLPExport
import OTLPJSON
import OTLPProto
import OTLPTranslation
import Passthrough
import ProxyObservability
import ProxySettings
import ServiceLifecycle
import SharedSettings
import SpanMetrics
import Synchronization
import TraceAssembly
import TranslationStage
import UpstreamAccess

/// Builds the proxy's services from a configuration.
///
/// The services, in start order (they stop in reverse): the shared HTTP client, the export pipeline,
/// the trace assembler, and the HTTP server. So on shutdown the server stops accepting first, the
/// assembler releases what it holds, the pipeline flushes it, and the HTTP client closes last.
public enum ProxyApplication {
    /// Makes the services.
    /// - Parameters:
    ///   - onServerRunning: called with the bound address once the server listens (port 0 picks a free one).
    /// - Throws: ``ExportFailure`` when the local trace file cannot be opened; ``ConfigurationError`` when a
    ///   destination's TLS files cannot be loaded.
    ///   - metricsText: renders the process's swift-metrics registry as Prometheus text (for `/metrics`).
    ///   - onAdminRunning: called with the admin listener's bound address.
    public static func makeServices(
        configuration: ProxyConfiguration,
        counters: ProxyCounters,
        logger: Logger,
        metricsText: @escaping @Sendable () -> String = { "" },
        onServerRunning: @escaping @Sendable (SocketAddress?) async -> Void = { _ in },
        onAdminRunning: @escaping @Sendable (SocketAddress?) async -> Void = { _ in }
    ) async throws -> ProxyRuntime {
        let listenerTLS = try configuration.tls.map { settings throws(ConfigurationError) in try ListenerTLSContext(settings, setting: "tls") }
        let adminTLS = try configuration.adminTLS.map { settings throws(ConfigurationError) in
            try ListenerTLSContext(settings, setting: "admin_tls")
        }
        let status = StatusBoard(destinations: configuration.destinations.map { (name: $0.name, endpoint: $0.endpoint.description) })
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.redirectConfiguration = .disallow  // a proxy returns 3xx to its caller
        clientConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        clientConfiguration.decompression = .disabled  // bodies pass through as encoded
        if configuration.upstreamTLS.insecureSkipVerify {
            logger.warning("TLS certificate verification is off for the upstream (MLFLOW_TRACKING_INSECURE_TLS or upstream.tls)")
        }
        do {
            clientConfiguration.tlsConfiguration = try OTLPHTTPExporter.tlsConfiguration(configuration.upstreamTLS)
        } catch {
            throw ConfigurationError(setting: "upstream.tls", reason: "cannot load the TLS files: \(error)")
        }
        let upstreamPool = try configuration.upstream.map { upstream throws(ConfigurationError) in
            try ServiceWiring.upstreamPool(upstream, tls: clientConfiguration.tlsConfiguration, timeout: configuration.upstreamTimeout)
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        // Exports get their own client: their connections never compete with the upstream's, and a failed
        // connection is reported at once (the exporter retries transient failures itself, per OTLP's rules).
        var exportConfiguration = HTTPClient.Configuration()
        exportConfiguration.redirectConfiguration = .disallow
        exportConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 8)
        exportConfiguration.connectionPool.retryConnectionEstablishment = false
        let exportClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: exportConfiguration)
        do {
            return try makeServices(
                configuration: configuration, counters: counters, logger: logger, metricsText: metricsText, onServerRunning: onServerRunning,
                onAdminRunning: onAdminRunning, status: status, client: client, exportClient: exportClient, upstreamPool: upstreamPool,
                listenerTLS: listenerTLS, adminTLS: adminTLS)
        } catch {
            // The clients must be shut down before they go away, even when start-up fails (asynchronously: a
            // blocking shutdown would hold a Swift Concurrency thread, and is refused on an event loop).
            try? await client.shutdown()
            try? await exportClient.shutdown()
            throw error
        }
    }

    // swift-format-ignore: FunctionParameters
    private static func makeServices(
        configuration: ProxyConfiguration, counters: ProxyCounters, logger: Logger, metricsText: @escaping @Sendable () -> String,
        onServerRunning: @escaping @Sendable (SocketAddress?) async -> Void, onAdminRunning: @escaping @Sendable (SocketAddress?) async -> Void,
        status: StatusBoard, client: HTTPClient, exportClient: HTTPClient, upstreamPool: UpstreamConnectionPool?, listenerTLS: ListenerTLSContext?,
        adminTLS: ListenerTLSContext?
    ) throws -> ProxyRuntime {
        let wiring = ServiceWiring(configuration: configuration, counters: counters, logger: logger, status: status)
        // Delivery: one unit (queue, delivery, exporter) per destination; every trace goes to each of them.
        let unitFactory = ExportUnitFactory(counters: counters, logger: logger, status: status, exportClient: exportClient)
        try unitFactory.checkSpools(for: DeliveryPlan(configuration))
        let fanOut = ExportFanOut(units: try unitFactory.units(for: DeliveryPlan(configuration)))
        // Span metrics, recorded from every translated trace and exported by services of their own.
        let metrics = try wiring.spanMetrics(exportClient: exportClient)
        // Assembly and translation, which hands each translated trace to delivery, the metrics and the status page.
        let tracePath = wiring.tracePath(fanOut: fanOut, metricsRecorders: metrics.recorders)
        // The listener's routes: the passthrough, the intake (with its journal when the spool is on) and the router.
        let live = LiveSettings(LiveSettings.Snapshot(configuration))
        let forwarder = wiring.forwarder(client: client, live: live)
        let intake = try wiring.intake(tracePath: tracePath, fanOut: fanOut)
        let copies = DualCopies()
        let bodyBudget = BodyMemoryBudget(capacity: configuration.limits.maxBodyBytesInMemory)
        let localAnswers = intake.intake.flatMap { intake in
            configuration.mode.answersTraceCallsLocally
                ? LocalTraceAnswers(
                    // Push back on clients (503) only for a destination whose full policy is `refuse`; with drop_oldest a
                    // dead destination never changes the answers clients get (its own queue drops and counts instead).
                    intake: intake, budget: bodyBudget, exportIsSaturated: { fanOut.isSaturated }, spoolProblem: { fanOut.spoolProblems.first })
                : nil
        }
        let responder = ProxyResponder(
            mode: configuration.mode, forwarder: forwarder, intake: intake.intake, localAnswers: localAnswers, live: live,
            experiments: StandaloneExperiments(), counters: counters, bodyBudget: bodyBudget, copies: copies
        )
        let adminState = AdminState(
            settings: AdminSettings(configuration), status: status, fanOut: fanOut, assembler: tracePath.assembler, client: exportClient)
        let proxyConnections = ConnectionGauge(listener: "proxy")
        // The passthrough and the local trace answers run in each connection's pipeline; the application (`responder`)
        // gets the other requests.
        let passthrough = wiring.listenerPassthrough(
            forwarder: forwarder, pool: upstreamPool, live: live, interceptsTraceUploads: intake.intake != nil, localAnswers: localAnswers)
        var requestHandlers: RequestHandlers?
        if let passthrough {
            requestHandlers = { channel, logger, answers in try passthrough.addHandler(to: channel, logger: logger, answers: answers) }
        }
        let server = Application(
            responder: responder,
            server: .guarded(
                limits: configuration.limits, tls: listenerTLS, connections: proxyConnections, counters: counters, requestHandlers: requestHandlers),
            configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: nil),
            onServerRunning: { channel in
                adminState.listening.store(true, ordering: .relaxed)
                await onServerRunning(channel.localAddress)
            },
            logger: logger
        )
        let admin = wiring.adminSite(
            state: adminState, tls: adminTLS, metricsText: metricsText, onRunning: onAdminRunning,
            gauges: RuntimeGauges(
                fanOut: fanOut, status: status, assembler: tracePath.assembler, connections: proxyConnections, bodyBudget: bodyBudget))
        let reloader = ProxyReloader(
            running: configuration, fanOut: fanOut, unitFactory: unitFactory, live: live, listenerTLS: listenerTLS, adminTLS: adminTLS,
            status: status, logger: logger)

        // The start order; services stop in reverse. So the server stops accepting first; the dual-mode copies finish;
        // the assembler releases what it holds; translation hands on what is buffered; the fan-out seals and delivers
        // (a spool keeps the rest); the journal's checkpoint, after the fan-out, can then empty the journal; the
        // metrics exports send once more; the HTTP clients close last.
        let startOrder: [[any Service]] = [
            [HTTPClientService(client: client), HTTPClientService(client: exportClient)],
            upstreamPool.map { [UpstreamPoolService(pool: $0)] } ?? [],
            metrics.services,
            intake.journalServices,
            [fanOut, tracePath.translation, tracePath.assembler, copies],
            admin,
            [server],
        ]
        return ProxyRuntime(services: startOrder.flatMap { $0 }, reloader: reloader)
    }

    static func nowUnixNano() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1_000_000_000) }
}

/// Owns the shared HTTP client's lifetime: shuts it down when the service group stops.
struct HTTPClientService: Service {
    let client: HTTPClient

    func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}

/// Closes the passthrough's idle upstream connections when the service group stops.
struct UpstreamPoolService: Service {
    let pool: UpstreamConnectionPool

    func run() async throws {
        try? await gracefulShutdown()
        await pool.closeIdleConnections()
    }
}

/// What the intake journal's checkpoint waits on (through the ``SpooledDelivery`` seam, so intake imports nothing
/// downstream of it): every trace the assembler released has left translation, and every destination sealed it
/// into its spool.
struct DownstreamOfAssembly: SpooledDelivery {
    let translation: TranslationStage
    let fanOut: ExportFanOut

    func sealSubmitted() async {
        await translation.processedSubmitted()
        await fanOut.sealSubmitted()
    }

    var hasSpooledEverything: Bool { fanOut.hasSpooledEverything }
}

/// Where a translated trace goes: every destination's pipeline, the span metrics, the status page, the counters
/// and the trace's log line; then the journal checkpoint is told.
struct TranslatedTraceDispatch: Sendable {
    let fanOut: ExportFanOut
    let metricsRecorders: [SpanMetricsRecorder]
    let status: StatusBoard
    let counters: ProxyCounters
    let logger: Logger
    /// The standalone demo logs one line per trace; otherwise that line is debug detail.
    let summaryLevel: Logger.Level
    let journalChanges: JournalChanges

    func handle(_ trace: AssembledTrace, _ translated: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) {
        fanOut.submit(translated)
        for recorder in metricsRecorders { recorder.record(translated) }
        let name = trace.info?.tags["mlflow.traceName"] ?? trace.spans.first(where: \.isRoot)?.span.name ?? "?"
        status.traceExported(id: trace.mlflowTraceID, otelTraceID: HexID.string(trace.traceID), name: name, spans: trace.spans.count)
        counters.increment(.tracesAssembled, trace.completion.rawValue)
        switch trace.completion {
        case .traceLimit, .spanLimit, .memoryLimit:
            logger.warning(
                "assembly limit reached; trace exported with what had arrived",
                metadata: ["trace_id": "\(trace.mlflowTraceID)", "reason": "\(trace.completion.rawValue)", "spans": "\(trace.spans.count)"]
            )
        default:
            break
        }
        logger.log(
            level: summaryLevel, "trace",
            metadata: [
                "trace_id": "\(trace.mlflowTraceID)", "name": "\(name)", "spans": "\(trace.spans.count)",
                "state": "\(trace.info?.state ?? "unknown")", "completion": "\(trace.completion.rawValue)",
            ])
        journalChanges.notify()
    }
}

/// The named builders `ProxyApplication` composes: each makes one part of the service graph from the configuration.
struct ServiceWiring {
    let configuration: ProxyConfiguration
    let counters: ProxyCounters
    let logger: Logger
    let status: StatusBoard

    /// How assembled traces are translated: the resource and scope every exported span gets.
    var translationSettings: TranslationSettings {
        TranslationSettings(
            serviceName: configuration.resource.serviceName,
            resourceAttributes: configuration.resource.attributes.map { (key: $0.key, value: $0.value) }, scopeVersion: ProxyVersion.current)
    }

    /// Span metrics, one recorder per configured metrics export (temporalities can differ: Datadog needs delta), each
    /// exported every interval by its own service (which stops after the assembler, so nothing recorded is lost).
    func spanMetrics(exportClient: HTTPClient) throws -> (recorders: [SpanMetricsRecorder], services: [any Service]) {
        var services: [any Service] = []
        var recorders: [SpanMetricsRecorder] = []
        for metrics in configuration.metricsExports {
            let recorder = SpanMetricsRecorder(
                cumulative: metrics.temporality == .cumulative, resource: OTLPTraceTranslator.proxyResourceAttributes(settings: translationSettings),
                scopeVersion: ProxyVersion.current, traceTagKeys: metrics.traceTagAttributes, traceMetadataKeys: metrics.traceMetadataAttributes,
                startTimeUnixNano: ProxyApplication.nowUnixNano()
            )
            recorders.append(recorder)
            let send: MetricsExportService.Send
            if metrics.destination.transportProtocol == .grpc {
                let grpc = try OTLPGRPCExporter(destination: metrics.destination, logger: logger, counters: counters)
                services.append(grpc)
                send = { request throws(ExportFailure) in try await grpc.exportMetrics(request) }
            } else {
                let http = try OTLPHTTPExporter(destination: metrics.destination, client: exportClient, logger: logger, counters: counters)
                send = { request throws(ExportFailure) in try await http.send(request) }
            }
            services.append(
                MetricsExportService(
                    interval: metrics.interval, counters: counters, logger: logger,
                    collect: { recorder.collect(nowUnixNano: ProxyApplication.nowUnixNano()) }, send: send))
        }
        return (recorders, services)
    }

    /// The stages between intake and delivery.
    struct TracePath {
        /// Told when traces leave translation for delivery (the intake journal's checkpoint listens).
        let journalChanges: JournalChanges
        let translation: TranslationStage
        let assembler: TraceAssembler
    }

    /// The assembler, releasing into the translation stage, which hands each translated trace to ``TranslatedTraceDispatch``.
    func tracePath(fanOut: ExportFanOut, metricsRecorders: [SpanMetricsRecorder]) -> TracePath {
        let limits = configuration.assemblyLimits
        let assemblySettings = AssemblySettings(
            maxWait: configuration.traceInfoWait, maxTracesInFlight: limits.maxTracesInFlight, maxSpansPerTrace: limits.maxSpansPerTrace,
            maxBytesHeld: limits.maxBytesHeld)
        let journalChanges = JournalChanges()
        let dispatch = TranslatedTraceDispatch(
            fanOut: fanOut, metricsRecorders: metricsRecorders, status: status, counters: counters, logger: logger,
            summaryLevel: configuration.mode == .standalone ? .info : .debug, journalChanges: journalChanges)
        let translation = TranslationStage(settings: translationSettings, output: dispatch.handle)
        let assembler = TraceAssembler(settings: assemblySettings, logger: logger, offer: { translation.trySubmit($0) }) { traces in
            await translation.submit(traces)
        }
        return TracePath(journalChanges: journalChanges, translation: translation, assembler: assembler)
    }

    /// The passthrough to the upstream; `nil` without one (standalone).
    func forwarder(client: HTTPClient, live: LiveSettings) -> UpstreamForwarder? {
        let tokenSource = configuration.upstreamOAuth.map { UpstreamTokenSource(credentials: $0, client: client) }
        return configuration.upstream.map {
            UpstreamForwarder(
                rules: ForwardingRules(upstream: $0, trustedProxies: configuration.trustedProxies, listenerIsTLS: configuration.tls != nil),
                client: client, timeout: configuration.upstreamTimeout, counters: counters, live: live,
                maxBodyBytes: configuration.limits.maxPassthroughBodyBytes, tokenSource: tokenSource)
        }
    }

    /// The kept-alive connections of the listener's passthrough (an `https` upstream with the same TLS settings as
    /// the application's client).
    static func upstreamPool(_ upstream: UpstreamURL, tls: TLSConfiguration?, timeout: Duration) throws(ConfigurationError) -> UpstreamConnectionPool
    {
        var context: NIOSSLContext?
        if upstream.scheme == "https" {
            var configuration = tls ?? .makeClientConfiguration()
            configuration.applicationProtocols = ["http/1.1"]
            do {
                context = try NIOSSLContext(configuration: configuration)
            } catch {
                throw ConfigurationError(setting: "upstream.tls", reason: "cannot use the TLS settings: \(error)")
            }
        }
        return UpstreamConnectionPool(
            host: upstream.host, port: upstream.port ?? (upstream.scheme == "https" ? 443 : 80), tls: context,
            connectTimeout: TimeAmount(min(timeout, .seconds(10))))
    }

    /// The listener's own handling, before the application (requests admitted as ``ProxyResponder`` admits them):
    /// with an upstream, every request the application would forward unread; the trace uploads the proxy answers
    /// itself (`localAnswers`, whole-body routes). `nil` when there is neither.
    func listenerPassthrough(
        forwarder: UpstreamForwarder?, pool: UpstreamConnectionPool?, live: LiveSettings, interceptsTraceUploads: Bool,
        localAnswers: LocalTraceAnswers?
    ) -> ListenerPassthrough? {
        let forwards = forwarder != nil && pool != nil
        guard forwards || localAnswers != nil else { return nil }
        return ListenerPassthrough(forwarder: forwarder, pool: pool, counters: counters) { head in
            guard case .admitted(let admitted, let route, _) = RequestAdmission.admit(head, authentication: live.current.authentication) else {
                return .application  // the application answers the rejection
            }
            if route.isTraceUpload && interceptsTraceUploads {
                if let answering = localAnswers?.answering(route, headers: HTTPFields(requestHeaders: admitted.headers)) {
                    return .answer(admitted, route: route.name, answering)
                }
                return .application  // dual mode's copies and attachments
            }
            return forwards ? .forward(admitted, route: route.name) : .application
        }
    }

    /// The trace intake: uploads are decoded when traces are exported, and in MLflow-only mode when span metrics are
    /// (the copy then feeds the metrics alone). With the spool on, uploads the proxy acknowledges itself are journaled
    /// until their spans are spooled, and the journal's checkpoint runs as a service.
    func intake(tracePath: TracePath, fanOut: ExportFanOut) throws -> (intake: TraceIntake?, journalServices: [any Service]) {
        guard configuration.mode.exportsTraces || !configuration.metricsExports.isEmpty else { return (nil, []) }
        let attachments = try AttachmentStore(
            directory: configuration.attachmentsDirectory, maxBytes: configuration.attachmentsMaxBytes, counters: counters)
        var intake = TraceIntake(
            assembler: tracePath.assembler, counters: counters, maxBodyBytes: configuration.maxTraceBodyBytes, attachments: attachments,
            status: status)
        guard let spool = configuration.delivery.spool, configuration.mode.answersTraceCallsLocally, !configuration.destinations.isEmpty else {
            return (intake, [])
        }
        let journal: IntakeJournal
        do {
            journal = try IntakeJournal(
                path: (spool.directory.hasSuffix("/") ? spool.directory : spool.directory + "/") + ".intake", fsync: spool.fsync,
                changes: tracePath.journalChanges)
        } catch {
            throw ConfigurationError(setting: "sending_queue.spool.directory", reason: error.description)
        }
        var replayIntake = intake
        replayIntake.isReplay = true  // no journal of its own: a replayed upload is already in the journal
        intake.journal = journal
        let checkpoint = IntakeCheckpoint(
            journal: journal, intake: replayIntake, delivery: DownstreamOfAssembly(translation: tracePath.translation, fanOut: fanOut),
            assembler: tracePath.assembler, hold: configuration.traceInfoWait * 2 + .seconds(2), counters: counters, logger: logger)
        return (intake, [checkpoint])
    }

    /// The admin listener, when one is configured.
    func adminSite(
        state: AdminState, tls: ListenerTLSContext?, metricsText: @escaping @Sendable () -> String,
        onRunning: @escaping @Sendable (SocketAddress?) async -> Void, gauges: RuntimeGauges
    ) -> [any Service] {
        guard let address = configuration.adminListen else { return [] }
        let render: @Sendable () async -> String = {
            await gauges.record()
            return metricsText()
        }
        return [
            AdminApplication.make(
                address: address, state: state, renderMetrics: render,
                server: .guarded(limits: ConnectionLimits(), tls: tls, connections: ConnectionGauge(listener: "admin"), counters: counters),
                logger: logger, onRunning: onRunning)
        ]
    }
}

/// The gauges `/metrics` reads at scrape time: queues, destination states, traces waiting, connections, bodies held.
struct RuntimeGauges: Sendable {
    let fanOut: ExportFanOut
    let status: StatusBoard
    let assembler: TraceAssembler
    let connections: ConnectionGauge
    let bodyBudget: BodyMemoryBudget

    func record() async {
        for pipeline in fanOut.pipelines {
            let dimensions = [("destination", pipeline.name)]
            Gauge(label: "mlflow_otel_proxy_export_queue_spans", dimensions: dimensions).record(pipeline.queuedSpanCount)
            Gauge(label: "mlflow_otel_proxy_export_queue_bytes", dimensions: dimensions).record(pipeline.queuedByteCount)
        }
        // One series per destination and state, 1 for the state it is in (`credentials_rejected` to alert on).
        for destination in status.snapshot().destinations {
            for state in StatusBoard.DeliveryState.allCases {
                let dimensions = [("destination", destination.name), ("state", state.rawValue)]
                Gauge(label: "mlflow_otel_proxy_destination_state", dimensions: dimensions).record(destination.state == state ? 1 : 0)
            }
        }
        let statistics = assembler.statistics
        Gauge(label: "mlflow_otel_proxy_traces_waiting").record(statistics.tracesInFlight)
        Gauge(label: "mlflow_otel_proxy_connections_open", dimensions: [("listener", "proxy")]).record(connections.open)
        Gauge(label: "mlflow_otel_proxy_request_body_bytes_in_memory").record(bodyBudget.bytesHeld)
    }
}
