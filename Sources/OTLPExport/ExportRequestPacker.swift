import ExportQueue
import OTLPBinary
import OTLPProto
import SpanShaping
import SwiftProtobuf

/// Packs translated (and shaped) traces into export requests by a span count and a byte bound, as a pipeline
/// batches them: each `ResourceSpans` serialized once and framed into the request being formed; a trace bigger
/// than a request is split by spans (a span that alone is too big is trimmed). Pure: the caller decides when a
/// partial request is due and what to do with a full one.
public struct ExportRequestPacker: Sendable {
    /// A request ready to send.
    public struct Request: Sendable, Equatable {
        /// The request's protobuf bytes.
        public var bytes: [UInt8]
        /// Spans in it.
        public var spans: Int
        /// The tags of the traces whose last part is in this request (``add(_:tag:)``).
        public var completedTags: [String]
    }

    /// What one ``add(_:tag:)`` produced.
    public struct Addition: Sendable {
        /// Requests that became full, oldest first.
        public var full: [Request] = []
        /// Values trimmed so that a span fits a request.
        public var trimmed = 0
        /// Nothing of the trace is to be sent (shaping left no span): it is done at once.
        public var nothingToSend = false
    }

    private let maxSpans: Int
    private let maxBytes: Int
    private var pending: [UInt8] = []
    private var pendingSpans = 0
    private var pendingTags: [String] = []
    /// The size of the last request taken (at most `maxBytes`): the room a new request starts with.
    private var lastRequestBytes = 0

    /// Creates a packer. - Parameters: `maxSpans`: spans per request; `maxBytes`: bytes per request.
    public init(maxSpans: Int, maxBytes: Int) {
        self.maxSpans = max(1, maxSpans)
        self.maxBytes = max(1024, maxBytes)
    }

    /// Spans in the request being formed.
    public var pendingSpanCount: Int { pendingSpans }
    /// Bytes of the request being formed.
    public var pendingByteCount: Int { pending.count }

    /// Adds one trace's `ResourceSpans`; `tag` (a trace id) is reported with the request holding its last part.
    public mutating func add(_ trace: [Opentelemetry_Proto_Trace_V1_ResourceSpans], tag: String) -> Addition {
        var addition = Addition()
        // A new request starts with room for as many bytes as the last one had (the request would otherwise grow
        // from empty by doubling, copying its bytes about twice over).
        if pending.isEmpty && pending.capacity < lastRequestBytes { pending.reserveCapacity(lastRequestBytes) }
        var items = trace
        var index = 0
        while index < items.count {
            let item = items[index]
            index += 1
            let spans = item.scopeSpans.reduce(0) { $0 + $1.spans.count }
            // Encoded straight into the request being formed; taken back out when it does not belong there.
            let mark = pending.count
            let framed = ResourceSpansEncoder.append(item, asRequestFieldTo: &pending)
            if framed > maxBytes {
                let (pieces, trimmed) = DestinationShaper.split(item, budget: maxBytes - ExportRequestEncoding.fieldOverhead(length: maxBytes))
                addition.trimmed += trimmed
                if pieces.count > 1 || trimmed > 0 {
                    pending.removeSubrange(mark...)
                    items.replaceSubrange((index - 1)..<index, with: pieces)
                    index -= 1
                    continue
                }
            }
            if pendingSpans > 0 && pending.count > maxBytes {
                // It does not fit the request being formed: that one is full, this item starts the next.
                let item = Array(pending[mark...])
                pending.removeSubrange(mark...)
                if let request = takeRequest() { addition.full.append(request) }
                pending = item
            }
            pendingSpans += spans
            if pendingSpans >= maxSpans || pending.count >= maxBytes, let request = takeRequest() { addition.full.append(request) }
        }
        // The trace is done when the request holding its last part is: the one being formed, or the last full one.
        if pendingSpans > 0 {
            pendingTags.append(tag)
        } else if !addition.full.isEmpty {
            addition.full[addition.full.count - 1].completedTags.append(tag)
        } else {
            addition.nothingToSend = true
        }
        return addition
    }

    /// The request being formed, if it holds anything.
    public mutating func takeRequest() -> Request? {
        guard pendingSpans > 0 else { return nil }
        lastRequestBytes = min(pending.count, maxBytes)
        defer {
            pending = []
            pendingSpans = 0
            pendingTags = []
        }
        return Request(bytes: pending, spans: pendingSpans, completedTags: pendingTags)
    }
}
