import CoreMetrics
import NIOConcurrencyHelpers
import Synchronization

/// Every counter and histogram the proxy keeps: its name (`mlflow_otel_proxy_<name>_total` for counters,
/// `mlflow_otel_proxy_<name>` for histograms) and the names of its labels, in the order their values are passed.
public enum ProxyMetric: String, Sendable, CaseIterable {
    /// Requests answered, by route and status class.
    case requests
    /// Requests refused before they were handled, by reason.
    case rejectedRequests = "rejected_requests"
    /// Spans taken from uploads, by source route.
    case spansReceived = "spans_received"
    /// Trace infos taken, by kind.
    case traceInfosReceived = "trace_infos_received"
    /// Traces released by the assembler, by completion.
    case tracesAssembled = "traces_assembled"
    /// Spans a destination acknowledged.
    case spansExported = "spans_exported"
    /// Spans a destination refused in a partial success.
    case spansRejected = "spans_rejected"
    /// Spans lost, by destination and reason.
    case spansDropped = "spans_dropped"
    /// Spans a destination's policy left out (routing, sampling).
    case spansFiltered = "spans_filtered"
    /// Export requests, by destination and result.
    case exportRequests = "export_requests"
    /// Export attempts retried, by destination.
    case exportRetries = "export_retries"
    /// Spool and journal errors, by destination (`intake` for the journal).
    case spoolErrors = "spool_errors"
    /// Upstream answers, by status class.
    case upstreamResponses = "upstream_responses"
    /// Upstream calls that failed, by reason.
    case upstreamErrors = "upstream_errors"
    /// Dual-mode copies not exported, by the upstream's answer.
    case copiesNotExported = "copies_not_exported"
    /// Attachments stored locally.
    case attachmentsStored = "attachments_stored"
    /// Attachments not stored, by reason.
    case attachmentsDiscarded = "attachments_discarded"
    /// Metrics exports, by result.
    case metricsExports = "metrics_exports"
    /// Connections the listener closed, by reason.
    case connectionsClosed = "connections_closed"
    /// Values a destination's policy masked.
    case valuesMasked = "values_masked"
    /// Attributes a destination's policy removed.
    case attributesRedacted = "attributes_redacted"
    /// Values cut to a destination's limits.
    case valuesTrimmed = "values_trimmed"
    /// Export request durations (a histogram), by destination.
    case exportDurationSeconds = "export_duration_seconds"
    /// Upstream call durations (a histogram), by method.
    case upstreamDurationSeconds = "upstream_duration_seconds"

    /// The label names, in the order their values are passed.
    public var labelNames: [String] {
        switch self {
        case .requests: ["route", "status"]
        case .rejectedRequests, .upstreamErrors, .attachmentsDiscarded, .connectionsClosed, .copiesNotExported: ["reason"]
        case .spansReceived: ["source"]
        case .traceInfosReceived: ["kind"]
        case .tracesAssembled: ["completion"]
        case .spansExported, .spansRejected, .exportRetries, .spoolErrors, .valuesMasked, .attributesRedacted, .valuesTrimmed,
            .exportDurationSeconds:
            ["destination"]
        case .spansDropped, .spansFiltered: ["destination", "reason"]
        case .exportRequests: ["destination", "result"]
        case .upstreamResponses: ["class"]
        case .attachmentsStored: []
        case .metricsExports: ["result"]
        case .upstreamDurationSeconds: ["method"]
        }
    }
}

/// Counters and histograms with labels, shared by every stage.
///
/// Every drop, rejection and export result is counted here with its reason. Each value goes to swift-metrics
/// (`mlflow_otel_proxy_<name>_total{<label>=…}`, served in Prometheus format on the admin listener) and to an
/// in-memory snapshot that the shutdown log prints and tests read (`name{value}`).
public final class ProxyCounters: Sendable {
    /// A counter and its label values.
    public struct Key: Hashable, Sendable, CustomStringConvertible {
        /// The counter.
        public var metric: ProxyMetric
        /// The label values, e.g. `["malformed_body"]`.
        public var labels: [String]
        /// Creates a key.
        public init(_ metric: ProxyMetric, _ labels: [String]) {
            self.metric = metric
            self.labels = labels
        }
        /// `name{label,label}`.
        public var description: String { labels.isEmpty ? metric.rawValue : "\(metric.rawValue){\(labels.joined(separator: ","))}" }
    }

    /// One counter with its label values: its value and its swift-metrics handle (made once: making one looks it up
    /// in the metrics registry). A caller that counts the same thing often keeps the cell (``cell(_:labels:)``), so
    /// that an increment takes no lock and no lookup.
    public final class Cell: Sendable {
        private let count = Atomic<Int>(0)
        private let handle: CoreMetrics.Counter

        init(handle: CoreMetrics.Counter) { self.handle = handle }

        /// Adds `amount`.
        public func increment(by amount: Int = 1) {
            count.add(amount, ordering: .relaxed)
            handle.increment(by: amount)
        }

        /// The current value.
        public var value: Int { count.load(ordering: .relaxed) }
    }

    /// One histogram with its label value, kept by a caller that records into it often (``histogram(_:_:)``).
    public struct Histogram: Sendable {
        let timer: CoreMetrics.Timer

        /// Records a duration.
        public func observe(seconds: Double) { timer.recordNanoseconds(Int64(seconds * 1e9)) }
    }

    private let entries = NIOLockedValueBox<[Key: Cell]>([:])
    /// Histogram handles, made once per metric and label (making one looks it up in the metrics registry).
    private let timers = NIOLockedValueBox<[Key: CoreMetrics.Timer]>([:])

    /// Creates an empty set of counters.
    public init() {}

    /// Adds `amount` to a counter with one label value.
    public func increment(_ metric: ProxyMetric, _ label: String = "", by amount: Int = 1) {
        increment(metric, labels: label.isEmpty ? [] : [label], by: amount)
    }

    /// Adds `amount` to a counter with several label values (in the order of its ``ProxyMetric/labelNames``).
    public func increment(_ metric: ProxyMetric, labels: [String], by amount: Int = 1) {
        cell(metric, labels: labels).increment(by: amount)
    }

    /// The cell of a counter with these label values (in the order of its ``ProxyMetric/labelNames``), made on first
    /// use; the same cell every time.
    public func cell(_ metric: ProxyMetric, labels: [String]) -> Cell {
        let key = Key(metric, labels)
        return entries.withLockedValue { entries in
            if let existing = entries[key] { return existing }
            let cell = Cell(
                handle: CoreMetrics.Counter(label: "mlflow_otel_proxy_\(metric.rawValue)_total", dimensions: Array(zip(metric.labelNames, labels))))
            entries[key] = cell
            return cell
        }
    }

    /// Records a duration into a histogram (`mlflow_otel_proxy_<name>`).
    public func observe(_ metric: ProxyMetric, _ label: String, seconds: Double) {
        histogram(metric, label).observe(seconds: seconds)
    }

    /// A histogram with this label value, made on first use.
    public func histogram(_ metric: ProxyMetric, _ label: String) -> Histogram {
        let key = Key(metric, [label])
        return timers.withLockedValue { timers in
            if let existing = timers[key] { return Histogram(timer: existing) }
            let timer = CoreMetrics.Timer(label: "mlflow_otel_proxy_\(metric.rawValue)", dimensions: Array(zip(metric.labelNames, [label])))
            timers[key] = timer
            return Histogram(timer: timer)
        }
    }

    /// The current value of a counter.
    public func value(_ metric: ProxyMetric, _ label: String = "") -> Int {
        entries.withLockedValue { $0[Key(metric, label.isEmpty ? [] : [label])] }?.value ?? 0
    }

    /// The current value of a counter with several label values.
    public func value(_ metric: ProxyMetric, labels: [String]) -> Int {
        entries.withLockedValue { $0[Key(metric, labels)] }?.value ?? 0
    }

    /// All counters, sorted by name and labels.
    public func snapshot() -> [(key: Key, value: Int)] {
        entries.withLockedValue { Array($0) }.map { (key: $0.key, value: $0.value.value) }.sorted { $0.key.description < $1.key.description }
    }
}

extension ProxyMetric {
    /// The class of an HTTP status for a counter's label: `2xx` for 200–299 and so on.
    public static func statusClass(_ code: Int) -> String {
        switch code / 100 {
        case 1: "1xx"
        case 2: "2xx"
        case 3: "3xx"
        case 4: "4xx"
        case 5: "5xx"
        default: "\(code / 100)xx"
        }
    }
}

extension Duration {
    /// The duration in seconds.
    public var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}
