import AsyncHTTPClient
import Hummingbird
import Logging
import MLflowWire
import NIOCore
import OTLPExport
import OTLPProto
import OTLPTranslation
import ProxyConfig
import ProxyObservability
import ServiceLifecycle
import TraceAssembly

/// Builds the proxy's services from a configuration.
///
/// The services, in start order (they stop in reverse): the shared HTTP client, the export pipeline,
/// the trace assembler, and the HTTP server. So on shutdown the server stops accepting first, the
/// assembler releases what it holds, the pipeline flushes it, and the HTTP client closes last.
public enum ProxyApplication {
    /// Makes the services.
    /// - Parameters:
    ///   - onServerRunning: called with the bound address once the server listens (port 0 picks a free one).
    /// - Throws: ``ExportFailure`` when the local trace file cannot be opened.
    public static func makeServices(
        configuration: ProxyConfiguration,
        counters: ProxyCounters,
        logger: Logger,
        onServerRunning: @escaping @Sendable (SocketAddress?) async -> Void = { _ in }
    ) throws -> [any Service] {
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.redirectConfiguration = .disallow  // a proxy returns 3xx to its caller
        clientConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        clientConfiguration.decompression = .disabled  // bodies pass through as encoded
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)

        let exporters: [any SpanExporter]
        switch configuration.sink {
        case .otlp(let destination):
            exporters = [OTLPHTTPExporter(name: "otlp", destination: destination, client: client, logger: logger)]
        case .localFile(let path):
            exporters = [try JSONLinesFileExporter(path: path)]
        case nil:
            exporters = []
        }
        // The standalone demo logs one line per trace; otherwise that line is debug detail.
        let traceSummaryLevel: Logger.Level = configuration.mode == .standalone ? .info : .debug
        let pipeline = ExportPipeline(settings: configuration.batching, exporters: exporters, counters: counters, logger: logger)

        let translation = TranslationSettings(
            serviceName: configuration.resource.serviceName,
            resourceAttributes: configuration.resource.attributes.map { (key: $0.key, value: $0.value) },
            scopeVersion: ProxyVersion.current
        )
        let limits = configuration.assemblyLimits
        let assemblySettings = AssemblySettings(
            maxWait: configuration.traceInfoWait, maxTracesInFlight: limits.maxTracesInFlight, maxSpansPerTrace: limits.maxSpansPerTrace,
            maxBytesHeld: limits.maxBytesHeld
        )
        let assembler = TraceAssembler(settings: assemblySettings, logger: logger) { traces in
            for trace in traces {
                pipeline.submit(OTLPTraceTranslator.translate(trace, settings: translation))
                counters.increment("traces_assembled", trace.completion.rawValue)
                switch trace.completion {
                case .traceLimit, .spanLimit, .memoryLimit:
                    logger.warning(
                        "assembly limit reached; trace exported with what had arrived",
                        metadata: ["trace_id": "\(trace.mlflowTraceID)", "reason": "\(trace.completion.rawValue)", "spans": "\(trace.spans.count)"]
                    )
                default:
                    break
                }
                let summary: Logger.Metadata = [
                    "trace_id": "\(trace.mlflowTraceID)",
                    "name": "\(trace.info?.tags["mlflow.traceName"] ?? trace.spans.first(where: \.isRoot)?.span.name ?? "?")",
                    "spans": "\(trace.spans.count)",
                    "state": "\(trace.info?.state ?? "unknown")",
                    "completion": "\(trace.completion.rawValue)",
                ]
                logger.log(level: traceSummaryLevel, "trace", metadata: summary)
            }
        }

        let forwarder = configuration.upstream.map {
            UpstreamForwarder(upstream: $0, client: client, timeout: configuration.upstreamTimeout, counters: counters)
        }
        let attachments = try AttachmentStore(
            directory: configuration.attachmentsDirectory, maxBytes: configuration.attachmentsMaxBytes, counters: counters
        )
        let intake =
            configuration.mode.exportsTraces
            ? TraceIntake(assembler: assembler, counters: counters, maxBodyBytes: configuration.maxTraceBodyBytes, attachments: attachments) : nil
        let responder = ProxyResponder(
            mode: configuration.mode, forwarder: forwarder, intake: intake, exportIsSaturated: { pipeline.isSaturated },
            experiments: StandaloneExperiments(), counters: counters
        )
        let application = Application(
            responder: responder,
            configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: nil),
            onServerRunning: { channel in await onServerRunning(channel.localAddress) },
            logger: logger
        )
        return [HTTPClientService(client: client), pipeline, assembler, application]
    }
}

/// Owns the shared HTTP client's lifetime: shuts it down when the service group stops.
struct HTTPClientService: Service {
    let client: HTTPClient

    func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}
