import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Logging
import OTLPProto
import ProxyObservability
import ServiceLifecycle
import SharedSettings

/// Exports OTLP over gRPC (`TraceService/Export`) to one destination.
///
/// Headers become gRPC metadata (lower-case keys); the timeout is the call's deadline; `gzip` compresses
/// messages. Retries follow the OTLP specification's gRPC table: CANCELLED, DEADLINE_EXCEEDED, ABORTED,
/// OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are retried, RESOURCE_EXHAUSTED only with `RetryInfo` (whose delay
/// is honoured); every other code fails at once. The exporter is a
/// `Service`: it runs the client's connections, and stops them after the pipeline has flushed.
public final class OTLPGRPCExporter: SpanExporter, Service {
    /// Logs and counters name the destination by this.
    public let name: String
    private let destination: OTLPDestination
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let traceService: Opentelemetry_Proto_Collector_Trace_V1_TraceService.Client<HTTP2ClientTransport.Posix>
    private let metricsService: Opentelemetry_Proto_Collector_Metrics_V1_MetricsService.Client<HTTP2ClientTransport.Posix>
    private let retry: OTLPExport.RetryPolicy
    private let logger: Logger
    private let status: StatusBoard?
    private let counters: ProxyCounters?

    /// Creates an exporter; connections start when ``run()`` runs.
    /// - Throws: when the TLS files cannot be used or the endpoint cannot be resolved.
    public init(
        destination: OTLPDestination, retry: OTLPExport.RetryPolicy = OTLPExport.RetryPolicy(), logger: Logger, status: StatusBoard? = nil,
        counters: ProxyCounters? = nil
    ) throws {
        name = destination.name
        self.destination = destination
        self.retry = retry
        self.logger = logger
        self.status = status
        self.counters = counters
        let endpoint = destination.endpoint
        let plaintext = endpoint.scheme == "http"
        let security: HTTP2ClientTransport.Posix.TransportSecurity
        if plaintext {
            security = .plaintext
        } else {
            let settings = destination.tls
            security = .tls(
                .defaults { tls in
                    if let caFile = settings.caFile { tls.trustRoots = .certificates([.file(path: caFile, format: .pem)]) }
                    if let certFile = settings.certFile, let keyFile = settings.keyFile {
                        tls.certificateChain = [.file(path: certFile, format: .pem)]
                        tls.privateKey = .file(path: keyFile, format: .pem)
                    }
                    if settings.insecureSkipVerify { tls.serverCertificateVerification = .noVerification }
                }
            )
        }
        var config = HTTP2ClientTransport.Posix.Config.defaults
        if let serverName = destination.tls.serverName { config.http2.authority = serverName }
        let transport = try HTTP2ClientTransport.Posix(
            target: .dns(host: endpoint.host, port: endpoint.port ?? (plaintext ? 80 : 443)), transportSecurity: security, config: config
        )
        client = GRPCClient(transport: transport)
        traceService = Opentelemetry_Proto_Collector_Trace_V1_TraceService.Client(wrapping: client)
        metricsService = Opentelemetry_Proto_Collector_Metrics_V1_MetricsService.Client(wrapping: client)
    }

    /// Runs the client's connections until graceful shutdown.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await client.runConnections()
        } onGracefulShutdown: {
            self.client.beginGracefulShutdown()
        }
    }

    /// Closes the connections (for a caller that runs ``run()`` outside a service group); ``run()`` then returns.
    public func stop() { client.beginGracefulShutdown() }

    /// Sends the batch, retrying as described on the type.
    public func export(_ batch: ExportBatch) async throws(ExportFailure) -> Int {
        let request = try batch.request()
        return try await deliver { metadata, options in
            let response = try await traceService.export(request, metadata: metadata, options: options)
            guard response.hasPartialSuccess, response.partialSuccess.rejectedSpans > 0 || !response.partialSuccess.errorMessage.isEmpty else {
                return 0
            }
            logger.warning(
                "destination accepted the export only in part",
                metadata: [
                    "destination": "\(name)", "rejected_spans": "\(response.partialSuccess.rejectedSpans)",
                    "message": "\(destination.maskingCredentials(in: response.partialSuccess.errorMessage))",
                ]
            )
            return Int(clamping: max(0, response.partialSuccess.rejectedSpans))
        }
    }

    /// Sends metrics (`MetricsService/Export`) with the same metadata, compression and retries.
    public func exportMetrics(_ request: Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest) async throws(ExportFailure) {
        _ = try await deliver { metadata, options in
            _ = try await metricsService.export(request, metadata: metadata, options: options)
            return 0
        }
    }

    /// One call with the destination's metadata (lower-case header names), deadline and compression, retried
    /// by the OTLP gRPC table.
    private func deliver(_ call: (Metadata, CallOptions) async throws -> Int) async throws(ExportFailure) -> Int {
        var metadata = Metadata()
        metadata.addString("mlflow-otel-proxy/\(ProxyVersion.current)", forKey: "user-agent")
        for header in destination.headers { metadata.addString(header.value, forKey: header.key.lowercased()) }
        var options = CallOptions.defaults
        options.timeout = destination.timeout
        options.compression = destination.compression == .gzip ? .gzip : CompressionAlgorithm.none
        return try await OTLPRetry.run(policy: retry, destination: name, logger: logger, status: status, counters: counters) {
            do {
                return .delivered(rejectedSpans: try await call(metadata, options))
            } catch let error as RPCError {
                let failure = ExportFailure(
                    reason: .grpc("\(error.code)"),
                    message: "\(destination.endpoint) answered \(error.code): \(destination.maskingCredentials(in: error.message))",
                    credentialsRejected: error.code == .unauthenticated || error.code == .permissionDenied)
                let retryDelay = Self.retryDelay(error)
                if Self.retryableCodes.contains(error.code) || (error.code == .resourceExhausted && retryDelay != nil) {
                    return .retryable(failure, retryAfter: retryDelay)
                }
                return .permanent(failure)
            } catch {
                return .retryable(ExportFailure(reason: .connection, message: "\(destination.endpoint): \(error)"), retryAfter: nil)
            }
        }
    }

    /// The codes the OTLP specification lists as retryable; RESOURCE_EXHAUSTED is retried only when the
    /// server sent `google.rpc.RetryInfo`.
    static let retryableCodes: Set<RPCError.Code> = [.cancelled, .deadlineExceeded, .aborted, .outOfRange, .unavailable, .dataLoss]

    /// The delay a `google.rpc.RetryInfo` detail in the error's `grpc-status-details-bin` asks for.
    static func retryDelay(_ error: RPCError) -> Duration? {
        guard let status = try? error.unpackGoogleRPCStatus() else { return nil }
        return status.details.lazy.compactMap { $0.retryInfo?.delay }.first
    }

    /// Nothing to release here: connections close when ``run()`` ends.
    public func shutdown() async {}
}
