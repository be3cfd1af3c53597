import DequeModule
import Logging
import OTLPJSON
import OTLPProto
import ProxyConfig
import ProxyObservability
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

/// Batches translated spans off the request path and hands the batches to its exporter(s). The proxy runs
/// one pipeline per destination, so each has its own bounded queue and a slow one cannot hold up another.
///
/// `submit` never blocks: it queues the spans (dropping and counting them when the queue of
/// `maxQueueSize` spans is full). A batch leaves when it holds `maxExportBatchSize` spans or its oldest
/// span has waited `scheduleDelay`. Batches are exported one at a time, to every exporter in turn.
/// On graceful shutdown the queue is flushed, then the exporters are shut down.
public actor ExportPipeline: Service {
    private let settings: BatchSettings
    private let exporters: [any SpanExporter]
    private let counters: ProxyCounters
    private let logger: Logger
    private let status: StatusBoard?
    /// The destination name (its exporter's), for counters.
    public nonisolated let name: String
    private let input: AsyncStream<[Opentelemetry_Proto_Trace_V1_ResourceSpans]>
    private let inputContinuation: AsyncStream<[Opentelemetry_Proto_Trace_V1_ResourceSpans]>.Continuation

    private var queue: Deque<Opentelemetry_Proto_Trace_V1_ResourceSpans> = []
    private var queuedSpans = 0 {
        didSet { queuedSpansGauge.store(queuedSpans, ordering: .relaxed) }
    }
    private nonisolated let queuedSpansGauge = Atomic<Int>(0)
    private var queuedBytes = 0 {
        didSet { queuedBytesGauge.store(queuedBytes, ordering: .relaxed) }
    }
    private nonisolated let queuedBytesGauge = Atomic<Int>(0)
    private var queueItemBytes: Deque<Int> = []
    /// Whether the last delivery succeeded (`nil` before the first), for one log line per state change.
    private var lastDeliveryOK: Bool?
    /// Drop causes already logged since the destination last delivered (each is logged once, then counted).
    private var loggedDropCauses: Set<String> = []
    private var oldestQueuedAt: ContinuousClock.Instant?
    private var exporting = false

    /// Creates a pipeline.
    public init(settings: BatchSettings, exporters: [any SpanExporter], counters: ProxyCounters, logger: Logger, status: StatusBoard? = nil) {
        self.status = status
        self.name = exporters.map(\.name).joined(separator: "+")
        self.settings = settings
        self.exporters = exporters
        self.counters = counters
        self.logger = logger
        (input, inputContinuation) = AsyncStream.makeStream()
    }

    /// Spans waiting in the queue.
    public nonisolated var queuedSpanCount: Int { queuedSpansGauge.load(ordering: .relaxed) }
    /// Serialized bytes waiting in the queue.
    public nonisolated var queuedByteCount: Int { queuedBytesGauge.load(ordering: .relaxed) }

    /// Whether the queue is (nearly) full: callers that can push back (uploads the proxy answers itself) should
    /// answer 503 with `Retry-After` instead of accepting more spans that would be dropped.
    public nonisolated var isSaturated: Bool {
        queuedSpansGauge.load(ordering: .relaxed) >= settings.maxQueueSize - settings.maxExportBatchSize
    }

    /// Queues translated spans for export; returns at once.
    public nonisolated func submit(_ resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) {
        guard !resourceSpans.isEmpty else { return }
        if case .terminated = inputContinuation.yield(resourceSpans) {
            let count = resourceSpans.reduce(0) { $0 + $1.scopeSpans.reduce(0) { $0 + $1.spans.count } }
            counters.increment("spans_dropped", labels: [self.name, "shutting_down"], by: count)
            logger.warning("spans arrived after shutdown began and were dropped", metadata: ["spans": "\(count)"])
        }
    }

    /// Runs until graceful shutdown, then flushes what is queued.
    ///
    /// Two loops: one moves submitted spans into the bounded queue (never waiting for an export, so a slow
    /// destination can only fill the queue, not stall intake), the other exports due batches.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await resourceSpans in self.input { await self.enqueue(resourceSpans) }
                }
                group.addTask {
                    while !Task.isCancelled {
                        await self.exportDueBatches(force: false)
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
                await group.next()  // the input ended (shutdown): stop the export loop
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.inputContinuation.finish()
        }
        await exportDueBatches(force: true)
        for exporter in exporters { await exporter.shutdown() }
    }

    private func enqueue(_ resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) {
        for item in resourceSpans {
            let count = item.scopeSpans.reduce(0) { $0 + $1.spans.count }
            if queuedSpans + count > settings.maxQueueSize {
                counters.increment("spans_dropped", labels: [name, "queue_full"], by: count)
                logDrop(
                    cause: "queue_full", "export queue is full; spans dropped",
                    metadata: ["spans": "\(count)", "queue_size": "\(settings.maxQueueSize)"])
                continue
            }
            let bytes = (try? item.serializedBytes() as [UInt8])?.count ?? 0
            queue.append(item)
            queueItemBytes.append(bytes)
            queuedBytes += bytes
            queuedSpans += count
            if oldestQueuedAt == nil { oldestQueuedAt = .now }
        }
    }

    /// Exports full batches, and a partial one when its delay has passed (or `force`).
    private func exportDueBatches(force: Bool) async {
        guard !exporting else { return }
        exporting = true
        defer { exporting = false }
        while !queue.isEmpty {
            let due = oldestQueuedAt.map { ContinuousClock.now - $0 >= settings.scheduleDelay } ?? false
            guard force || due || queuedSpans >= settings.maxExportBatchSize else { return }
            var request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
            var batchSpans = 0
            while let next = queue.first {
                let count = next.scopeSpans.reduce(0) { $0 + $1.spans.count }
                if batchSpans > 0 && batchSpans + count > settings.maxExportBatchSize { break }
                queue.removeFirst()
                queuedBytes -= queueItemBytes.popFirst() ?? 0
                request.resourceSpans.append(next)
                batchSpans += count
            }
            queuedSpans -= batchSpans
            oldestQueuedAt = queue.isEmpty ? nil : .now
            await deliver(request, spans: batchSpans)
        }
    }

    /// Logs the first drop of each cause as an error (with the destination's answer); later ones of the same
    /// cause only count, until the destination delivers again.
    private func logDrop(cause: String, _ message: Logger.Message, metadata: Logger.Metadata) {
        if loggedDropCauses.insert(cause).inserted {
            logger.error(message, metadata: metadata.merging(["cause": "\(cause)", "further drops of this cause": "counted, not logged"]) { $1 })
        } else {
            logger.debug(message, metadata: metadata)
        }
    }

    private func deliver(_ request: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest, spans: Int) async {
        for exporter in exporters {
            do {
                let started = ContinuousClock.now
                try await exporter.export(request)
                counters.observe("export_duration_seconds", exporter.name, seconds: (ContinuousClock.now - started).seconds)
                counters.increment("spans_exported", exporter.name, by: spans)
                if let status {
                    let traceIDs = Set(request.resourceSpans.flatMap { $0.scopeSpans.flatMap { $0.spans.map { HexID.string($0.traceID) } } })
                    status.delivered(to: exporter.name, spans: spans, otelTraceIDs: traceIDs)
                }
                if lastDeliveryOK == false { logger.info("destination is delivering again", metadata: ["destination": "\(exporter.name)"]) }
                lastDeliveryOK = true
                loggedDropCauses.removeAll()
                counters.increment("export_requests", labels: [exporter.name, "ok"])
            } catch {
                counters.increment("spans_dropped", labels: [exporter.name, error.reason], by: spans)
                counters.increment("export_requests", labels: [exporter.name, error.reason])
                status?.failed(destination: exporter.name, error: error.message, final: true)
                logger.error(
                    "export failed; spans dropped", metadata: ["destination": "\(exporter.name)", "spans": "\(spans)", "error": "\(error.message)"])
            }
        }
    }
}
