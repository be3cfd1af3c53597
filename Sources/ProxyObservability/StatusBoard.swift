import Foundation
import NIOConcurrencyHelpers

/// What the `/status` page shows: each destination's state and last error, recent traces and where each was
/// delivered, and spans per second over the last minute. Updated by the export pipelines and the trace path;
/// holds no secrets (endpoints are shown without headers).
public final class StatusBoard: Sendable {
    /// A destination's delivery state.
    public enum DeliveryState: String, Sendable, CaseIterable {
        /// Nothing sent yet.
        case idle
        /// The last delivery succeeded.
        case healthy
        /// A delivery failed and is being retried.
        case retrying
        /// The last delivery failed for good (its spans were dropped).
        case failing
        /// The destination rejects the proxy's credentials; batches are held and retried slowly.
        case credentialsRejected = "credentials_rejected"
    }

    /// One destination's row.
    public struct Destination: Sendable {
        /// The configured name.
        public var name: String
        /// The endpoint URL (no credentials: headers are never shown).
        public var endpoint: String
        /// The delivery state.
        public var state: DeliveryState = .idle
        /// The last error, when the state is retrying or failing.
        public var lastError: String?
        /// When the last delivery succeeded.
        public var lastSuccess: Date?
        /// Spans delivered so far.
        public var spansDelivered = 0
    }

    /// One recent trace.
    public struct RecentTrace: Sendable {
        /// The MLflow trace id.
        public var id: String
        /// The trace name (root span or `mlflow.traceName`).
        public var name: String
        /// Spans exported.
        public var spans: Int
        /// Destinations that accepted it.
        public var deliveredTo: [String] = []
        /// When it was handed to export.
        public var time: Date
        /// The OTel trace id (hex), to match deliveries.
        public var otelTraceID: String
    }

    struct State {
        var destinations: [Destination] = []
        var recent: [RecentTrace] = []
        var spansPerSecond: [Int64: Int] = [:]
    }

    private let state: NIOLockedValueBox<State>
    private let recentLimit = 50
    /// When the proxy started.
    public let startedAt = Date()

    /// Creates a board for the configured destinations (name, endpoint).
    public init(destinations: [(name: String, endpoint: String)]) {
        state = NIOLockedValueBox(State(destinations: destinations.map { Destination(name: $0.name, endpoint: $0.endpoint) }))
    }

    /// Sets the destinations after a reload; the ones that stay keep their state and counts.
    public func setDestinations(_ destinations: [(name: String, endpoint: String)]) {
        state.withLockedValue { state in
            state.destinations = destinations.map { new in
                if let kept = state.destinations.first(where: { $0.name == new.name && $0.endpoint == new.endpoint }) { return kept }
                return Destination(name: new.name, endpoint: new.endpoint)
            }
        }
    }

    /// A trace was handed to export.
    public func traceExported(id: String, otelTraceID: String, name: String, spans: Int) {
        let now = Date()
        state.withLockedValue { state in
            state.recent.insert(RecentTrace(id: id, name: name, spans: spans, time: now, otelTraceID: otelTraceID), at: 0)
            if state.recent.count > recentLimit { state.recent.removeLast(state.recent.count - recentLimit) }
        }
    }

    /// Spans arrived (for the spans-per-second figure).
    public func spansReceived(_ count: Int) {
        let second = Int64(Date().timeIntervalSince1970)
        state.withLockedValue { state in
            state.spansPerSecond[second, default: 0] += count
            if state.spansPerSecond.count > 120 { state.spansPerSecond = state.spansPerSecond.filter { $0.key > second - 60 } }
        }
    }

    /// A batch reached a destination.
    public func delivered(to destination: String, spans: Int, otelTraceIDs: Set<String>) {
        state.withLockedValue { state in
            if let index = state.destinations.firstIndex(where: { $0.name == destination }) {
                state.destinations[index].state = .healthy
                state.destinations[index].lastError = nil
                state.destinations[index].lastSuccess = Date()
                state.destinations[index].spansDelivered += spans
            }
            for index in state.recent.indices where otelTraceIDs.contains(state.recent[index].otelTraceID) {
                if !state.recent[index].deliveredTo.contains(destination) { state.recent[index].deliveredTo.append(destination) }
            }
        }
    }

    /// A delivery attempt failed; `final` when the batch was dropped.
    public func failed(destination: String, error: String, final: Bool) {
        state.withLockedValue { state in
            guard let index = state.destinations.firstIndex(where: { $0.name == destination }) else { return }
            state.destinations[index].state = final ? .failing : .retrying
            state.destinations[index].lastError = error
        }
    }

    /// The destination rejects the proxy's credentials (its batches are held).
    public func credentialsRejected(destination: String, error: String) {
        state.withLockedValue { state in
            guard let index = state.destinations.firstIndex(where: { $0.name == destination }) else { return }
            state.destinations[index].state = .credentialsRejected
            state.destinations[index].lastError = error
        }
    }

    /// The destinations, the recent traces (newest first) and spans per second averaged over the last minute.
    public func snapshot() -> (destinations: [Destination], recent: [RecentTrace], spansPerSecond: Double) {
        let now = Int64(Date().timeIntervalSince1970)
        return state.withLockedValue { state in
            let lastMinute = state.spansPerSecond.filter { $0.key > now - 60 && $0.key <= now }.values.reduce(0, +)
            return (state.destinations, state.recent, Double(lastMinute) / 60)
        }
    }
}
