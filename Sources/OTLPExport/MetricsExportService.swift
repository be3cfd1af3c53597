import Logging
import OTLPProto
import ProxyObservability
import ServiceLifecycle

/// Exports metrics every interval and once more at shutdown (`OTEL_METRIC_EXPORT_INTERVAL`).
public struct MetricsExportService: Service {
    /// Collects the metrics of the period just ended, or `nil` when there are none.
    public typealias Collect = @Sendable () -> Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest?
    /// Delivers a metrics request.
    public typealias Send = @Sendable (Opentelemetry_Proto_Collector_Metrics_V1_ExportMetricsServiceRequest) async throws(ExportFailure) -> Void

    private let interval: Duration
    private let collect: Collect
    private let send: Send
    private let counters: ProxyCounters
    private let logger: Logger

    /// Creates the service.
    public init(interval: Duration, counters: ProxyCounters, logger: Logger, collect: @escaping Collect, send: @escaping Send) {
        self.interval = interval
        self.collect = collect
        self.send = send
        self.counters = counters
        self.logger = logger
    }

    /// Exports on every tick until graceful shutdown, then flushes.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { break }
                await exportOnce()
            }
        }
        await exportOnce()
    }

    private func exportOnce() async {
        guard let request = collect() else { return }
        do {
            try await send(request)
            counters.increment(.metricsExports, "ok")
        } catch {
            counters.increment(.metricsExports, error.reason.label)
            logger.error("metrics export failed", metadata: ["error": "\(error.message)"])
        }
    }
}
