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
    /// How many span ids of exported traces are remembered at most, over all of them (oldest traces forgotten
    /// first): a few large traces cannot hold more memory than many small ones.
    public var maxRememberedSpanIDs: Int
    /// Traces held at once; beyond it the oldest is exported as it is.
    public var maxTracesInFlight: Int
    /// Spans one trace may hold; a trace that reaches it is exported as it is (later spans follow as late spans).
    public var maxSpansPerTrace: Int
    /// Bytes held across all waiting traces (their spans' share of the upload, their trace info) and the v2
    /// trace info waiting for its spans; beyond it the oldest traces are exported as they are, and the oldest
    /// such v2 records forgotten.
    public var maxBytesHeld: Int

    /// Creates settings with the defaults.
    public init(
        maxWait: Duration = .seconds(10), rememberExportedFor: Duration = .seconds(600), maxRememberedTraces: Int = 100_000,
        maxTracesInFlight: Int = 10_000, maxSpansPerTrace: Int = 10_000, maxBytesHeld: Int = 256 * 1024 * 1024,
        maxRememberedSpanIDs: Int = 1_000_000
    ) {
        self.maxRememberedSpanIDs = maxRememberedSpanIDs
        self.maxWait = maxWait
        self.rememberExportedFor = rememberExportedFor
        self.maxRememberedTraces = maxRememberedTraces
        self.maxTracesInFlight = maxTracesInFlight
        self.maxSpansPerTrace = maxSpansPerTrace
        self.maxBytesHeld = maxBytesHeld
    }
}

/// The assembler's pure state: no clock, no I/O. Callers pass the current instant and receive the
/// traces that became ready.
///
/// Spans are filed under their OTel trace id. Trace info of 3.x clients names the same id (`tr-<hex>`); v2
/// trace info (2.x and 3.0–3.3 clients) names a server-assigned request id instead, and is matched to the
/// spans when the `traces.json` uploaded under that request id arrives. Partial records (v2 `StartTrace`,
/// then `EndTrace`) are merged.
///
/// A trace is ready when its root span has arrived, its final trace info has (for spans that carry an
/// MLflow trace id; pure OpenTelemetry senders never send trace info), and its spans are complete: a
/// `traces.json` arrived (it holds the whole trace), or the span count the client reported
/// (`mlflow.trace.sizeStats.num_spans`) is reached, or, without that count, no span names a missing parent.
/// Otherwise a trace leaves when its wait runs out or a limit is hit.
public struct TraceAssemblyState: Sendable {
    struct Pending: Sendable {
        var spans: [AssembledSpan] = []
        var spanIDs = SpanIDSet()
        var info: TraceInfo?
        var deadline: ContinuousClock.Instant
        var expectsTraceInfo = false
        var wholeTraceSeen = false
        /// Span bytes plus the trace info's ``TraceInfo/approximateBytes``.
        var bytes = 0
    }

    /// Whether an attribute key is `mlflow.traceRequestId` (lengths first: a span has a few dozen attributes).
    static func isTraceRequestIDKey(_ key: String) -> Bool {
        key.utf8.count == 21 && key == "mlflow.traceRequestId"
    }

    struct Exported: Sendable {
        var spanIDs: SpanIDSet
        var forgetAt: ContinuousClock.Instant
    }

    struct OrphanInfo: Sendable {
        var info: TraceInfo
        var deadline: ContinuousClock.Instant
        var bytes: Int
    }

    /// The settings in force.
    public let settings: AssemblySettings
    private var pending: [IDKey: Pending] = [:]
    private var pendingOrder: Deque<IDKey> = []
    private var exported: [IDKey: Exported] = [:]
    private var exportedOrder: Deque<IDKey> = []
    /// v2 trace info whose spans have not arrived yet, by MLflow request id.
    private var orphanInfos: [String: OrphanInfo] = [:]
    private var orphanOrder: Deque<String> = []
    /// MLflow request id → OTel trace id, learned from `traces.json` uploads of v2 clients.
    private var requestIndex: [String: IDKey] = [:]
    private var bytesHeld = 0
    /// Span ids held in `exported`.
    private var rememberedSpanIDs = 0

    /// Duplicate spans dropped so far (already held, or already exported).
    public private(set) var duplicateSpans = 0
    /// Trace infos that arrived after their trace had been exported.
    public private(set) var lateTraceInfos = 0
    /// v2 trace infos whose spans never arrived within the wait, or that were forgotten for the memory bound.
    public private(set) var traceInfosWithoutSpans = 0

    /// Creates an empty state.
    public init(settings: AssemblySettings) { self.settings = settings }

    /// Traces currently waiting.
    public var tracesInFlight: Int { pending.count }

    /// Upload bytes held by waiting traces.
    public var bytesInFlight: Int { bytesHeld }

    /// Whether any span of the trace has arrived (held or already exported).
    public func hasSpans(traceID: Data) -> Bool {
        let traceID = IDKey(traceID)
        return (pending[traceID].map { !$0.spans.isEmpty } ?? false) || exported[traceID] != nil
    }

    /// Whether data of the trace is still held (waiting for its other parts).
    public func isHolding(traceID: Data) -> Bool { pending[IDKey(traceID)] != nil }

    /// Whether trace info filed under a v2 request id is still held (on its own, or with its trace's spans).
    public func isHolding(requestID: String) -> Bool {
        orphanInfos[requestID] != nil || requestIndex[requestID].map { pending[$0] != nil } == true
    }

    /// Adds the spans of one upload; returns the traces that became ready.
    public mutating func add(_ batch: SpanBatch, now: ContinuousClock.Instant) -> [AssembledTrace] {
        var touched: [IDKey] = []
        var late: [IDKey: [AssembledSpan]] = [:]
        var ready: [AssembledTrace] = []
        for span in batch.spans {
            let traceID = IDKey(span.traceID)
            let assembled = AssembledSpan(
                span: span, encoding: batch.encoding, resourceAttributes: batch.resourceAttributes, experimentID: batch.experimentID,
                scope: batch.scope
            )
            if var record = exported[traceID] {
                if record.spanIDs.insert(span.spanID) {
                    exported[traceID] = record
                    rememberedSpanIDs += 1
                    late[traceID, default: []].append(assembled)
                } else {
                    duplicateSpans += 1
                }
                continue
            }
            // Taken out while it changes, so that its span list and id set are not copied on every append.
            var trace = pending.removeValue(forKey: traceID) ?? startPending(traceID, now: now)
            guard trace.spanIDs.insert(span.spanID) else {
                pending[traceID] = trace
                duplicateSpans += 1
                continue
            }
            trace.spans.append(assembled)
            trace.bytes += batch.bytesPerSpan
            bytesHeld += batch.bytesPerSpan
            if !trace.expectsTraceInfo, span.attributes.contains(where: { Self.isTraceRequestIDKey($0.key) }) { trace.expectsTraceInfo = true }
            if batch.containsWholeTrace { trace.wholeTraceSeen = true }
            pending[traceID] = trace
            touched.append(traceID)
            if trace.spans.count >= settings.maxSpansPerTrace {
                ready.append(finish(traceID, completion: .spanLimit, now: now))
            }
        }
        if let requestID = batch.mlflowTraceID, MLflowTraceID.otelTraceID(requestID) == nil,
            let traceID = batch.spans.first.map({ IDKey($0.traceID) })
        {
            requestIndex[requestID] = traceID
            if let orphan = orphanInfos.removeValue(forKey: requestID) {
                bytesHeld -= orphan.bytes
                if pending[traceID] != nil { attach(orphan.info, to: traceID) }
            }
        }
        ready += late.map { AssembledTrace(traceID: $0.value.first?.span.traceID ?? $0.key.data, spans: $0.value, info: nil, completion: .lateSpans) }
        for traceID in Set(touched) where isReady(traceID) {
            ready.append(finish(traceID, completion: .complete, now: now))
        }
        ready.append(contentsOf: enforceLimits(now: now))
        return ready
    }

    /// Adds (a part of) a trace's info; returns the traces that became ready.
    public mutating func add(info: TraceInfo, now: ContinuousClock.Instant) -> [AssembledTrace] {
        let traceID: IDKey
        if let otel = info.otelTraceID {
            traceID = IDKey(otel)
        } else if let mapped = requestIndex[info.traceID] {
            traceID = mapped
        } else {
            // A v2 record before its spans: held until the traces.json of this request id names the trace.
            if var orphan = orphanInfos[info.traceID] {
                orphan.info.merge(info)
                bytesHeld += orphan.info.approximateBytes - orphan.bytes
                orphan.bytes = orphan.info.approximateBytes
                orphanInfos[info.traceID] = orphan
            } else {
                let bytes = info.approximateBytes
                orphanInfos[info.traceID] = OrphanInfo(info: info, deadline: now.advanced(by: settings.maxWait), bytes: bytes)
                orphanOrder.append(info.traceID)
                bytesHeld += bytes
            }
            return enforceLimits(now: now)
        }
        if exported[traceID] != nil {
            lateTraceInfos += 1
            return []
        }
        if pending[traceID] == nil { pending[traceID] = startPending(traceID, now: now) }
        attach(info, to: traceID)
        var ready: [AssembledTrace] = []
        if isReady(traceID) { ready.append(finish(traceID, completion: .complete, now: now)) }
        ready.append(contentsOf: enforceLimits(now: now))
        return ready
    }

    /// The earliest instant at which ``expire(now:)`` has something to do: a held trace's wait runs out, an exported
    /// trace's ids are forgotten, or an orphaned trace info is dropped. `nil` when nothing is held or remembered.
    public mutating func nextDeadline() -> ContinuousClock.Instant? {
        // Finished traces leave their ids at the front of the order queues; drop them so the look is O(1) amortized.
        while let first = pendingOrder.first, pending[first] == nil { pendingOrder.removeFirst() }
        while let first = exportedOrder.first, exported[first] == nil { exportedOrder.removeFirst() }
        while let first = orphanOrder.first, orphanInfos[first] == nil { orphanOrder.removeFirst() }
        // Read after every upload: the earliest of three, without building a list of them.
        func earlier(_ a: ContinuousClock.Instant?, _ b: ContinuousClock.Instant?) -> ContinuousClock.Instant? {
            guard let a else { return b }
            guard let b else { return a }
            return min(a, b)
        }
        let pendingDeadline = pendingOrder.first.flatMap { pending[$0]?.deadline }
        let forgetDeadline = exportedOrder.first.flatMap { exported[$0]?.forgetAt }
        let orphanDeadline = orphanOrder.first.flatMap { orphanInfos[$0]?.deadline }
        return earlier(earlier(pendingDeadline, forgetDeadline), orphanDeadline)
    }

    /// Releases traces whose wait has run out and forgets old exported ids and orphaned infos.
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
            forgetExported(oldest)
        }
        while let oldest = orphanOrder.first {
            guard let orphan = orphanInfos[oldest] else {
                orphanOrder.removeFirst()
                continue
            }
            guard orphan.deadline <= now else { break }
            orphanOrder.removeFirst()
            forgetOrphan(oldest)
        }
        if requestIndex.count > settings.maxRememberedTraces { requestIndex.removeAll(keepingCapacity: true) }
        return ready
    }

    /// Releases every held trace (shutdown).
    public mutating func drain(now: ContinuousClock.Instant) -> [AssembledTrace] {
        var ready: [AssembledTrace] = []
        while let oldest = pendingOrder.popFirst() {
            if pending[oldest] != nil { ready.append(finish(oldest, completion: .shutdown, now: now)) }
        }
        return ready
    }

    private mutating func startPending(_ traceID: IDKey, now: ContinuousClock.Instant) -> Pending {
        pendingOrder.append(traceID)
        return Pending(deadline: now.advanced(by: settings.maxWait))
    }

    private mutating func attach(_ info: TraceInfo, to traceID: IDKey) {
        guard var trace = pending[traceID] else { return }
        let before = trace.info?.approximateBytes ?? 0
        if trace.info == nil {
            trace.info = info
        } else {
            trace.info?.merge(info)
        }
        let after = trace.info?.approximateBytes ?? 0
        trace.bytes += after - before
        bytesHeld += after - before
        trace.expectsTraceInfo = true
        pending[traceID] = trace
    }

    private func isReady(_ traceID: IDKey) -> Bool {
        guard let trace = pending[traceID], trace.spans.contains(where: \.isRoot) else { return false }
        if trace.expectsTraceInfo && !(trace.info?.isFinal ?? false) { return false }
        if trace.wholeTraceSeen { return true }
        if let expected = trace.info?.expectedSpanCount { return trace.spans.count >= expected }
        return trace.spans.allSatisfy { $0.isRoot || trace.spanIDs.contains($0.span.parentSpanID) }
    }

    private mutating func finish(_ traceID: IDKey, completion: TraceCompletion, now: ContinuousClock.Instant) -> AssembledTrace {
        let trace = pending.removeValue(forKey: traceID)!  // callers pass ids they just read from `pending`
        // `pendingOrder` keeps the id; `expire`, `drain` and `enforceLimits` skip ids that are no longer pending.
        bytesHeld -= trace.bytes
        exported[traceID] = Exported(spanIDs: trace.spanIDs, forgetAt: now.advanced(by: settings.rememberExportedFor))
        rememberedSpanIDs += trace.spanIDs.count
        exportedOrder.append(traceID)
        while exportedOrder.count > settings.maxRememberedTraces || rememberedSpanIDs > settings.maxRememberedSpanIDs,
            let oldest = exportedOrder.popFirst()
        {
            forgetExported(oldest)
        }
        // The spans' own id (no new bytes) when there are spans; the key's bytes for a trace of trace info only.
        return AssembledTrace(traceID: trace.spans.first?.span.traceID ?? traceID.data, spans: trace.spans, info: trace.info, completion: completion)
    }

    private mutating func forgetExported(_ traceID: IDKey) {
        if let record = exported.removeValue(forKey: traceID) { rememberedSpanIDs -= record.spanIDs.count }
    }

    private mutating func forgetOrphan(_ requestID: String) {
        guard let orphan = orphanInfos.removeValue(forKey: requestID) else { return }
        bytesHeld -= orphan.bytes
        traceInfosWithoutSpans += 1
    }

    /// Over a limit, the oldest held data goes first: a waiting trace is exported as it is, a v2 record still
    /// waiting for its spans is forgotten (both waits started at arrival, so the earlier deadline is the older).
    private mutating func enforceLimits(now: ContinuousClock.Instant) -> [AssembledTrace] {
        var ready: [AssembledTrace] = []
        while pending.count > settings.maxTracesInFlight || orphanInfos.count > settings.maxTracesInFlight
            || bytesHeld > settings.maxBytesHeld
        {
            while let first = pendingOrder.first, pending[first] == nil { pendingOrder.removeFirst() }
            while let first = orphanOrder.first, orphanInfos[first] == nil { orphanOrder.removeFirst() }
            let oldestTrace = pendingOrder.first.flatMap { id in pending[id].map { (id, $0.deadline) } }
            let oldestOrphan = orphanOrder.first.flatMap { id in orphanInfos[id].map { (id, $0.deadline) } }
            let orphanFirst: Bool
            switch (oldestTrace, oldestOrphan) {
            case (nil, nil): return ready
            case (nil, _?): orphanFirst = true
            case (_?, nil): orphanFirst = false
            case (let trace?, let orphan?):
                if pending.count > settings.maxTracesInFlight {
                    orphanFirst = false
                } else if orphanInfos.count > settings.maxTracesInFlight {
                    orphanFirst = true
                } else {
                    orphanFirst = orphan.1 < trace.1
                }
            }
            if orphanFirst, let orphan = oldestOrphan {
                orphanOrder.removeFirst()
                forgetOrphan(orphan.0)
            } else if let trace = oldestTrace {
                pendingOrder.removeFirst()
                let completion: TraceCompletion = pending.count > settings.maxTracesInFlight ? .traceLimit : .memoryLimit
                ready.append(finish(trace.0, completion: completion, now: now))
            }
        }
        return ready
    }
}
