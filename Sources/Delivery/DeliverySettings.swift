import Foundation
import OTLPExport
import SharedSettings

/// How every destination's spans are batched, queued and retried: one bounded queue per destination, batches
/// by span count, bytes and time, retries by the OTLP rules within a time budget, optionally a disk spool.
/// Batching is named after the OpenTelemetry batch span processor's variables, the queue and retries after the
/// OpenTelemetry Collector's `sending_queue` and `retry_on_failure`.
public struct DeliverySettings: Sendable, Equatable {
    /// `OTEL_BSP_SCHEDULE_DELAY` (ms): the longest a span waits for a batch to fill; default 1 s
    /// (shorter than the SDK's 5 s because the client's own batching already delayed it).
    public var scheduleDelay: Duration
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: spans per export request; default 512.
    public var maxExportBatchSize: Int
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: spans held in memory waiting for export (with the spool off); default 8192.
    public var maxQueueSize: Int
    /// `batch.max_export_batch_bytes`: serialized bytes per export request (a single larger trace still goes
    /// alone); default 4 MiB, the smallest common vendor limit.
    public var maxExportBatchBytes: Int = 4 * 1024 * 1024
    /// `sending_queue.max_bytes` (`MLFLOW_OTEL_PROXY_QUEUE_MAX_BYTES`): serialized bytes held in memory per
    /// destination; default 64 MiB.
    public var maxQueueBytes: Int = 64 * 1024 * 1024
    /// `sending_queue.full_policy` (`MLFLOW_OTEL_PROXY_QUEUE_FULL_POLICY`): what happens when a queue is full.
    public var fullPolicy: QueueFullPolicy = .dropOldest
    /// `sending_queue.spool` (`MLFLOW_OTEL_PROXY_SPOOL_DIR`, `…_SPOOL_MAX_BYTES`, `…_SPOOL_FSYNC`): batches kept
    /// on disk until delivered, so they survive a crash or restart; `nil`: memory only.
    public var spool: SpoolSettings?
    /// `retry_on_failure`: how failed exports are retried.
    public var retry = RetryPolicy()
    /// `on_auth_failure` (per destination): what a rejection of the destination's credentials does to the batch.
    public var onAuthFailure: AuthFailurePolicy = .hold
    /// `auth_retry_interval` (per destination): while credentials are rejected, how often the oldest batch is
    /// tried again; default 30 s.
    public var authRetryInterval: Duration = .seconds(30)
    /// Creates settings.
    public init(scheduleDelay: Duration = .seconds(1), maxExportBatchSize: Int = 512, maxQueueSize: Int = 8192) {
        self.scheduleDelay = scheduleDelay
        self.maxExportBatchSize = maxExportBatchSize
        self.maxQueueSize = maxQueueSize
    }
}

/// What a destination does when it rejects the proxy's credentials (HTTP `401`/`403`, gRPC `UNAUTHENTICATED`/
/// `PERMISSION_DENIED`). The OTLP specification calls these permanent and the OpenTelemetry Collector drops the
/// batch; a rotated or revoked key is an operator's problem that will be fixed, so the proxy holds by default.
public enum AuthFailurePolicy: String, Sendable, Equatable, CaseIterable {
    /// The destination enters the `credentials_rejected` state: its batches stay queued (under the queue's bounds
    /// and full policy), the oldest is tried again every `auth_retry_interval`, and a reload that changes the
    /// destination retries at once.
    case hold
    /// The batch is dropped and counted, as the Collector does.
    case drop
}

/// What a destination's full queue does with more spans.
public enum QueueFullPolicy: String, Sendable, Equatable, CaseIterable {
    /// The oldest queued batches make room (the default, as Fluent Bit and the Collector's persistent queue do);
    /// each dropped span is counted with reason `queue_full`.
    case dropOldest = "drop_oldest"
    /// Uploads the proxy answers itself get `503` with `Retry-After` until the queue has room, so the
    /// client's own retries hold the data; nothing queued is dropped.
    case refuse
}

/// The disk spool of every destination's queue: `<directory>/<destination>/`, one file per batch.
public struct SpoolSettings: Sendable, Equatable {
    /// The spool's root directory; created when missing.
    public var directory: String
    /// The most bytes spooled per destination; default 1 GiB.
    public var maxBytes: Int
    /// Whether every batch file (and its directory entry) is fsynced before it counts as stored: survives power
    /// loss, not just a crash of the proxy, at the cost measured in BENCHMARKS.md. Default off.
    public var fsync: Bool
    /// Creates settings.
    public init(directory: String, maxBytes: Int = 1024 * 1024 * 1024, fsync: Bool = false) {
        self.directory = directory
        self.maxBytes = maxBytes
        self.fsync = fsync
    }
}

/// The `retry_on_failure` keys a file sets (the others keep their values).
public struct PartialRetryPolicy: Sendable, Equatable {
    /// `enabled`.
    public var enabled: Bool?
    /// `initial_interval`.
    public var initialInterval: Duration?
    /// `max_interval`.
    public var maxInterval: Duration?
    /// `max_elapsed_time` (0: no budget).
    public var maxElapsedTime: Duration?
    /// `multiplier`.
    public var multiplier: Double?
    /// `randomization_factor`.
    public var randomizationFactor: Double?

    /// Nothing set.
    public init() {}

    /// Sets the keys given over `policy`.
    public func apply(to policy: inout RetryPolicy) {
        if let enabled { policy.enabled = enabled }
        if let initialInterval { policy.initialInterval = initialInterval }
        if let maxInterval { policy.maxInterval = maxInterval }
        if let maxElapsedTime { policy.maxElapsedTime = maxElapsedTime == .zero ? nil : maxElapsedTime }
        if let multiplier { policy.multiplier = multiplier }
        if let randomizationFactor { policy.randomizationFactor = randomizationFactor }
    }
}

/// A destination's own delivery settings over the proxy-wide ones (`retry_on_failure` and `sending_queue` under
/// the destination, as the Collector has them per exporter).
public struct DeliveryOverrides: Sendable, Equatable {
    /// Retry keys the destination sets.
    public var retry = PartialRetryPolicy()
    /// `sending_queue.max_bytes`.
    public var maxQueueBytes: Int?
    /// `sending_queue.full_policy`.
    public var fullPolicy: QueueFullPolicy?
    /// `on_auth_failure`.
    public var onAuthFailure: AuthFailurePolicy?
    /// `auth_retry_interval`.
    public var authRetryInterval: Duration?

    /// None.
    public init() {}

    /// The proxy-wide `delivery` with this destination's keys over it.
    public func applied(to delivery: DeliverySettings) -> DeliverySettings {
        var result = delivery
        retry.apply(to: &result.retry)
        if let maxQueueBytes { result.maxQueueBytes = maxQueueBytes }
        if let fullPolicy { result.fullPolicy = fullPolicy }
        if let onAuthFailure { result.onAuthFailure = onAuthFailure }
        if let authRetryInterval { result.authRetryInterval = authRetryInterval }
        return result
    }
}
