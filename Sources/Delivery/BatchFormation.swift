import DequeModule
import OTLPExport
import OTLPProto

/// One destination's batching as plain state, like the assembler's `TraceAssemblyState`: the request being formed,
/// the sealed requests not yet in the queue (the spool failed to take them), and the deadline that moves them on.
/// It never reads a clock and does no I/O: ``ExportPipeline`` passes the time and appends to its queue itself.
///
/// Input: one trace's translated (and shaped) spans at a time. Output: sealed requests, oldest first
/// (``oldestSealed`` / ``removeOldestSealed()``), and ``nextDeadline()`` for the pipeline's timer.
struct BatchFormation {
    /// A sealed request waiting for the queue.
    struct SealedRequest: Equatable {
        /// The request's bytes (framed `ResourceSpans` fields).
        var bytes: [UInt8]
        /// Spans in it.
        var spans: Int
        /// Hex ids of the traces whose last spans are in it (for the status page), empty when not tracked.
        var traceIDs: Set<String>
    }

    /// How often sealed requests the spool could not take are tried again.
    static let spoolRetryInterval: Duration = .seconds(1)

    /// How long the oldest span of the forming request may wait before it is sealed.
    let scheduleDelay: Duration
    private var packer: ExportRequestPacker
    /// When the forming request got its first span (`nil`: nothing forming).
    private(set) var formingSince: ContinuousClock.Instant?
    private var sealed: Deque<SealedRequest> = []
    /// Bytes of the sealed requests not yet in the queue.
    private(set) var sealedBytes = 0
    /// When sealed requests were last handed to the queue (the retry deadline of a failed spool write counts from it).
    private var lastFlush: ContinuousClock.Instant

    /// Empty state.
    /// - Parameters:
    ///   - maxSpans / maxBytes: a request's bounds (`max_export_batch_size`, the smaller of `max_export_batch_bytes`
    ///     and the destination's request limit).
    ///   - now: the time of creation (a first failed flush is retried a second after it at the earliest).
    init(maxSpans: Int, maxBytes: Int, scheduleDelay: Duration, now: ContinuousClock.Instant) {
        packer = ExportRequestPacker(maxSpans: maxSpans, maxBytes: maxBytes)
        self.scheduleDelay = scheduleDelay
        lastFlush = now
    }

    /// Spans in the forming request.
    var formingSpans: Int { packer.pendingSpanCount }
    /// Bytes of the forming request.
    var formingBytes: Int { packer.pendingByteCount }
    /// Spans in sealed requests not yet in the queue.
    var sealedSpans: Int { sealed.reduce(0) { $0 + $1.spans } }
    /// Whether sealed requests wait for the queue (the spool could not take them).
    var hasSealed: Bool { !sealed.isEmpty }
    /// Whether nothing is forming or waiting.
    var isEmpty: Bool { sealed.isEmpty && formingSpans == 0 }

    /// What adding one trace's spans did.
    struct Addition: Equatable {
        /// Attribute values shortened to fit a request.
        var trimmed = 0
        /// Requests the spans filled (sealed now; the caller flushes them).
        var sealedRequests = 0
        /// Whether a new forming request started (the caller's timer has a new deadline).
        var startedForming = false
    }

    /// Adds one trace's spans. A request that fills up is sealed at once; what the trace leaves over starts the
    /// next one, whose wait counts from `now`.
    /// - Parameter tag: the trace's hex id when the status page tracks deliveries, else empty.
    mutating func add(_ resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans], tag: String, now: ContinuousClock.Instant) -> Addition {
        let packed = packer.add(resourceSpans, tag: tag)
        var addition = Addition(trimmed: packed.trimmed, sealedRequests: packed.full.count)
        for request in packed.full { keep(request) }
        if !packed.full.isEmpty { formingSince = nil }
        if formingSpans > 0 && formingSince == nil {
            formingSince = now
            addition.startedForming = true
        }
        return addition
    }

    /// Seals the forming request (if any) behind the ones already sealed.
    mutating func sealForming() {
        if let request = packer.takeRequest() { keep(request) }
        formingSince = nil
    }

    /// The oldest sealed request, next for the queue.
    var oldestSealed: SealedRequest? { sealed.first }

    /// Notes that the queue is being given the sealed requests now (whether or not it takes them).
    mutating func flushing(now: ContinuousClock.Instant) { lastFlush = now }

    /// Removes the oldest sealed request (the queue took it).
    mutating func removeOldestSealed() {
        guard let first = sealed.popFirst() else { return }
        sealedBytes -= first.bytes.count
    }

    /// Drops the oldest sealed requests until the rest fit `maxBytes` (the spool stayed unwritable past the memory
    /// bound). - Returns: the dropped requests, oldest first.
    mutating func dropOldestSealed(beyond maxBytes: Int) -> [SealedRequest] {
        var dropped: [SealedRequest] = []
        while sealedBytes > maxBytes, let oldest = sealed.popFirst() {
            sealedBytes -= oldest.bytes.count
            dropped.append(oldest)
        }
        return dropped
    }

    /// When something is next due: the forming request's seal, or (with sealed requests the spool refused) the next
    /// try a second after the last; `nil` when nothing waits.
    func nextDeadline() -> ContinuousClock.Instant? {
        if let formingSince { return formingSince + scheduleDelay }
        if !sealed.isEmpty { return lastFlush + Self.spoolRetryInterval }
        return nil
    }

    private mutating func keep(_ request: ExportRequestPacker.Request) {
        sealed.append(SealedRequest(bytes: request.bytes, spans: request.spans, traceIDs: Set(request.completedTags.filter { !$0.isEmpty })))
        sealedBytes += request.bytes.count
    }
}
