import CoreMetrics
import NIOConcurrencyHelpers

/// Named counters and histograms with labels, shared by every stage.
///
/// Every drop, rejection and export result is counted here with its reason. Each value goes to swift-metrics
/// (`mlflow_otel_proxy_<name>_total{<label>=…}`, served in Prometheus format on the admin listener) and to an
/// in-memory snapshot that the shutdown log prints and tests read (`name{value}`).
public final class ProxyCounters: Sendable {
    /// A counter name and its label values.
    public struct Key: Hashable, Sendable, CustomStringConvertible {
        /// The counter, e.g. `rejected_requests`.
        public var name: String
        /// The label values, e.g. `["malformed_body"]`.
        public var labels: [String]
        /// Creates a key.
        public init(_ name: String, _ labels: [String]) {
            self.name = name
            self.labels = labels
        }
        /// `name{label,label}`.
        public var description: String { labels.isEmpty ? name : "\(name){\(labels.joined(separator: ","))}" }
    }

    /// The label names of each counter, in the order its values are passed.
    static let labelNames: [String: [String]] = [
        "requests": ["route", "status"], "export_retries": ["destination"], "rejected_requests": ["reason"], "spans_received": ["source"],
        "spans_exported": ["destination"], "spans_rejected": ["destination"], "spool_errors": ["destination"],
        "spans_dropped": ["destination", "reason"], "export_requests": ["destination", "result"], "upstream_responses": ["class"],
        "upstream_errors": ["reason"], "traces_assembled": ["completion"], "trace_infos_received": ["kind"],
        "attachments_discarded": ["reason"], "attachments_stored": [], "metrics_exports": ["result"],
        "export_duration_seconds": ["destination"], "upstream_duration_seconds": ["method"],
        "connections_closed": ["reason"], "spans_filtered": ["destination", "reason"], "values_masked": ["destination"],
        "attributes_redacted": ["destination"], "values_trimmed": ["destination"],
    ]

    private let values = NIOLockedValueBox<[Key: Int]>([:])
    private let handles = NIOLockedValueBox<[Key: CoreMetrics.Counter]>([:])

    /// Creates an empty set of counters.
    public init() {}

    /// Adds `amount` to a counter with one label value.
    public func increment(_ name: String, _ label: String = "", by amount: Int = 1) {
        increment(name, labels: label.isEmpty ? [] : [label], by: amount)
    }

    /// Adds `amount` to a counter with several label values (in the order of `labelNames`).
    public func increment(_ name: String, labels: [String], by amount: Int = 1) {
        let key = Key(name, labels)
        values.withLockedValue { $0[key, default: 0] += amount }
        let counter = handles.withLockedValue { handles in
            if let existing = handles[key] { return existing }
            let names = Self.labelNames[name] ?? ["label"]
            let counter = CoreMetrics.Counter(label: "mlflow_otel_proxy_\(name)_total", dimensions: Array(zip(names, labels)))
            handles[key] = counter
            return counter
        }
        counter.increment(by: amount)
    }

    /// Records a duration into a histogram (`mlflow_otel_proxy_<name>`).
    public func observe(_ name: String, _ label: String, seconds: Double) {
        let names = Self.labelNames[name] ?? ["label"]
        CoreMetrics.Timer(label: "mlflow_otel_proxy_\(name)", dimensions: Array(zip(names, [label]))).recordNanoseconds(Int64(seconds * 1e9))
    }

    /// The current value of a counter.
    public func value(_ name: String, _ label: String = "") -> Int {
        values.withLockedValue { $0[Key(name, label.isEmpty ? [] : [label])] ?? 0 }
    }

    /// All counters, sorted by name and labels.
    public func snapshot() -> [(key: Key, value: Int)] {
        values.withLockedValue { $0.map { (key: $0.key, value: $0.value) } }.sorted { $0.key.description < $1.key.description }
    }
}

extension Duration {
    /// The duration in seconds.
    public var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}
