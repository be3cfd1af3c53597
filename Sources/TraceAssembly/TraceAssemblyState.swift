import DequeModule
import Foundation
import MLflowWire
import OTLPProto

/// Limits and waits of trace assembly.
public struct AssemblySettings: Sendable, Equatable {
    /// How long a trace waits for its missing parts (trace info or spans) after its first part arrived.
    public var maxWait: Duration
    /// How long span ids of exported traces are remembered, so repeated uploads are not exported twice.
    public var rememberExportedFor: Duration
    /// How many exported traces are remembered at most (oldest forgotten first).
    public var maxRememberedTraces: Int
    /// Traces held at once; beyond it the oldest is exported as it is.
    public var maxTracesInFlight: Int

    /// Creates settings with the defaults.
    public init(
        maxWait: Duration = .seconds(10), rememberExportedFor: Duration = .seconds(600),
        maxRememberedTraces: Int = 100_000, maxTracesInFlight: Int = 10_000
    ) {
        self.maxWait = maxWait
        self.rememberExportedFor = rememberExportedFor
        self.maxRememberedTraces = maxRememberedTraces
        self.maxTracesInFlight = maxTracesInFlight
    }
}

/// The assembler's pure state: no clock, no I/O. Callers pass the current instant and receive the
/// traces that became ready.
///
/// A trace is ready when its trace info and its root span have arrived and either the number of spans the
/// client reported (`mlflow.trace.sizeStats.num_spans`) is reached or, without that number, no span
/// names a parent that is missing. Traces whose spans carry no MLflow trace id (pure OpenTelemetry
/// senders) never get trace info, so they are ready on the same span rule alone. Otherwise a trace
/// leaves when its wait runs out.
public struct TraceAssemblyState: Sendable {
    struct Pending: Sendable {
        var spans: [AssembledSpan] = []
        var spanIDs: Set<Data> = []
        var info: TraceInfo?
        var deadline: ContinuousClock.Instant
        var expectsTraceInfo = false
    }

    struct Exported: Sendable {
        var spanIDs: Set<Data>
        var forgetAt: ContinuousClock.Instant
    }

    /// The settings in force.
    public let settings: AssemblySettings
    private var pending: [Data: Pending] = [:]
    private var pendingOrder: Deque<Data> = []
    private var exported: [Data: Exported] = [:]
    private var exportedOrder: Deque<Data> = []

    /// Duplicate spans dropped so far (already held, or already exported).
    public private(set) var duplicateSpans = 0
    /// Trace infos that arrived after their trace had been exported.
    public private(set) var lateTraceInfos = 0

    /// Creates an empty state.
    public init(settings: AssemblySettings) { self.settings = settings }

    /// Traces currently waiting.
    public var tracesInFlight: Int { pending.count }

    /// Whether any span of the trace has arrived (held or already exported).
    public func hasSpans(traceID: Data) -> Bool {
        (pending[traceID].map { !$0.spans.isEmpty } ?? false) || exported[traceID] != nil
    }

    /// Adds the spans of one upload; returns the traces that became ready.
    public mutating func add(_ batch: SpanBatch, now: ContinuousClock.Instant) -> [AssembledTrace] {
        var touched: [Data] = []
        var late: [Data: [AssembledSpan]] = [:]
        for span in batch.spans {
            let traceID = span.traceID
            let assembled = AssembledSpan(
                span: span, encoding: batch.encoding, resourceAttributes: batch.resourceAttributes, experimentID: batch.experimentID
            )
            if var record = exported[traceID] {
                if record.spanIDs.insert(span.spanID).inserted {
                    exported[traceID] = record
                    late[traceID, default: []].append(assembled)
                } else {
                    duplicateSpans += 1
                }
                continue
            }
            var trace = pending[traceID] ?? startPending(traceID, now: now)
            guard trace.spanIDs.insert(span.spanID).inserted else {
                duplicateSpans += 1
                continue
            }
            trace.spans.append(assembled)
            if span.attributes.contains(where: { $0.key == "mlflow.traceRequestId" }) { trace.expectsTraceInfo = true }
            pending[traceID] = trace
            touched.append(traceID)
        }
        var ready = late.map { AssembledTrace(traceID: $0.key, spans: $0.value, info: nil, completion: .lateSpans) }
        for traceID in Set(touched) where isReady(traceID) {
            ready.append(finish(traceID, completion: .complete, now: now))
        }
        ready.append(contentsOf: evictOverflow(now: now))
        return ready
    }

    /// Adds a trace's info; returns the traces that became ready.
    /// - Returns: `nil` trace list entry when the info's id is not a `tr-<hex>` id (nothing to correlate).
    public mutating func add(info: TraceInfo, now: ContinuousClock.Instant) -> [AssembledTrace] {
        guard let otel = info.otelTraceID else { return [] }
        let traceID = Data(otel)
        if exported[traceID] != nil {
            lateTraceInfos += 1
            return []
        }
        var trace = pending[traceID] ?? startPending(traceID, now: now)
        trace.info = info
        trace.expectsTraceInfo = true
        pending[traceID] = trace
        var ready: [AssembledTrace] = []
        if isReady(traceID) { ready.append(finish(traceID, completion: .complete, now: now)) }
        ready.append(contentsOf: evictOverflow(now: now))
        return ready
    }

    /// Releases traces whose wait has run out and forgets old exported ids.
    public mutating func expire(now: ContinuousClock.Instant) -> [AssembledTrace] {
        var ready: [AssembledTrace] = []
        while let oldest = pendingOrder.first {
            guard let trace = pending[oldest] else {
                pendingOrder.removeFirst()
                continue
            }
            // Deadlines are first-arrival + maxWait, so the order of arrival is the order of deadlines.
            guard trace.deadline <= now else { break }
            ready.append(finish(oldest, completion: .timedOut, now: now))
        }
        while let oldest = exportedOrder.first, let record = exported[oldest], record.forgetAt <= now {
            exportedOrder.removeFirst()
            exported[oldest] = nil
        }
        return ready
    }

    /// Releases every held trace (shutdown).
    public mutating func drain(now: ContinuousClock.Instant) -> [AssembledTrace] {
        var ready: [AssembledTrace] = []
        while let oldest = pendingOrder.first {
            if pending[oldest] != nil {
                ready.append(finish(oldest, completion: .shutdown, now: now))
            } else {
                pendingOrder.removeFirst()
            }
        }
        return ready
    }

    private mutating func startPending(_ traceID: Data, now: ContinuousClock.Instant) -> Pending {
        pendingOrder.append(traceID)
        return Pending(deadline: now.advanced(by: settings.maxWait))
    }

    private func isReady(_ traceID: Data) -> Bool {
        guard let trace = pending[traceID], trace.spans.contains(where: \.isRoot) else { return false }
        if trace.expectsTraceInfo && trace.info == nil { return false }
        if let expected = trace.info?.expectedSpanCount { return trace.spans.count >= expected }
        return trace.spans.allSatisfy { $0.isRoot || trace.spanIDs.contains($0.span.parentSpanID) }
    }

    private mutating func finish(_ traceID: Data, completion: TraceCompletion, now: ContinuousClock.Instant) -> AssembledTrace {
        let trace = pending.removeValue(forKey: traceID)!  // callers pass ids they just read from `pending`
        // `pendingOrder` keeps the id; `expire` and `evictOverflow` skip ids that are no longer pending.
        exported[traceID] = Exported(spanIDs: trace.spanIDs, forgetAt: now.advanced(by: settings.rememberExportedFor))
        exportedOrder.append(traceID)
        while exportedOrder.count > settings.maxRememberedTraces, let oldest = exportedOrder.popFirst() {
            exported[oldest] = nil
        }
        return AssembledTrace(traceID: traceID, spans: trace.spans, info: trace.info, completion: completion)
    }

    private mutating func evictOverflow(now: ContinuousClock.Instant) -> [AssembledTrace] {
        var ready: [AssembledTrace] = []
        while pending.count > settings.maxTracesInFlight, let oldest = pendingOrder.first {
            if pending[oldest] != nil {
                ready.append(finish(oldest, completion: .evicted, now: now))
            } else {
                pendingOrder.removeFirst()
            }
        }
        return ready
    }
}
