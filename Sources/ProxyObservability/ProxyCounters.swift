import Synchronization

/// Named counters with one label (a reason, a route, a destination), shared by every stage.
///
/// Every drop, rejection and export result is counted here with its reason; the start-up and shutdown
/// logs print a snapshot, tests read it, and the metrics endpoint of a later issue exposes it.
public final class ProxyCounters: Sendable {
    /// A counter name and its label value.
    public struct Key: Hashable, Sendable, CustomStringConvertible {
        /// The counter, e.g. `rejected_requests`.
        public var name: String
        /// The label value, e.g. `malformed_body`.
        public var label: String
        /// Creates a key.
        public init(_ name: String, _ label: String = "") {
            self.name = name
            self.label = label
        }
        /// `name{label}`.
        public var description: String { label.isEmpty ? name : "\(name){\(label)}" }
    }

    private let values = Mutex<[Key: Int]>([:])

    /// Creates an empty set of counters.
    public init() {}

    /// Adds `amount` to a counter.
    public func increment(_ name: String, _ label: String = "", by amount: Int = 1) {
        values.withLock { $0[Key(name, label), default: 0] += amount }
    }

    /// The current value of a counter.
    public func value(_ name: String, _ label: String = "") -> Int {
        values.withLock { $0[Key(name, label)] ?? 0 }
    }

    /// All counters, sorted by name and label.
    public func snapshot() -> [(key: Key, value: Int)] {
        values.withLock { $0.map { (key: $0.key, value: $0.value) } }.sorted { $0.key.description < $1.key.description }
    }
}
