import DequeModule

/// One destination's sealed batches waiting for delivery, oldest first, bounded in bytes (and, in memory, in
/// spans), held in memory or in a ``SpoolDirectory``.
///
/// Not thread-safe: its owner (the destination's export pipeline, an actor) serializes every call. The oldest
/// batch is delivered while newer ones wait; it is marked in flight so that making room never deletes it.
public struct BatchQueue {
    /// A batch in the queue.
    public struct Batch: Sendable {
        /// Arrival order (also the spool file's name).
        public let sequence: UInt64
        /// Spans in it.
        public let spans: Int
        /// Its serialized size.
        public let bytes: Int
        /// The request bytes, for a memory queue (`nil`: read them from the spool).
        let payload: [UInt8]?
        /// The trace ids in it (hex), for the status page; empty for batches recovered from the spool.
        public let traceIDs: Set<String>
    }

    /// What ``append(_:spans:traceIDs:refuseWhenFull:)`` did.
    public enum AppendOutcome: Sendable {
        /// Stored; `evictedSpans` spans of older batches were dropped to make room (0 for none).
        case stored(evictedSpans: Int)
        /// Not stored: the queue is full and the policy is to refuse (or the batch alone exceeds the bound).
        case full
        /// Not stored: the spool could not write it (the reason is in the error).
        case failed(SpoolDirectory.SpoolError)
    }

    private var batches: Deque<Batch> = []
    private var nextSequence: UInt64 = 1
    private var inFlight: UInt64?
    private let spool: SpoolDirectory?
    private let maxBytes: Int
    private let maxSpans: Int?

    /// Bytes held.
    public private(set) var storedBytes = 0
    /// Spans held.
    public private(set) var storedSpans = 0

    /// A memory queue of at most `maxBytes` and `maxSpans`.
    public init(maxBytes: Int, maxSpans: Int) {
        self.spool = nil
        self.maxBytes = maxBytes
        self.maxSpans = maxSpans
    }

    /// A queue kept in `spool`, at most `maxBytes`, holding what the spool already stores (oldest first).
    /// - Throws: when the spool cannot be listed.
    public init(spool: SpoolDirectory, maxBytes: Int) throws(SpoolDirectory.SpoolError) {
        self.spool = spool
        self.maxBytes = maxBytes
        self.maxSpans = nil
        for stored in try spool.storedBatches() {
            batches.append(Batch(sequence: stored.sequence, spans: stored.spans, bytes: stored.bytes, payload: nil, traceIDs: []))
            storedBytes += stored.bytes
            storedSpans += stored.spans
            nextSequence = stored.sequence + 1
        }
    }

    /// Whether the queue is on disk.
    public var isSpooled: Bool { spool != nil }
    /// Batches held.
    public var count: Int { batches.count }
    /// Whether nothing is held.
    public var isEmpty: Bool { batches.isEmpty }

    /// Whether a batch of `bytes` and `spans` would fit without dropping anything.
    public func hasRoom(bytes: Int, spans: Int) -> Bool {
        storedBytes + bytes <= maxBytes && (maxSpans.map { storedSpans + spans <= $0 } ?? true)
    }

    /// Adds a sealed batch. When it does not fit: with `refuseWhenFull` it is not stored (``AppendOutcome/full``);
    /// otherwise the oldest batches not in flight are dropped until it fits.
    public mutating func append(_ bytes: [UInt8], spans: Int, traceIDs: Set<String>, refuseWhenFull: Bool) -> AppendOutcome {
        guard bytes.count <= maxBytes, maxSpans.map({ spans <= $0 }) ?? true else { return .full }
        var evicted = 0
        if !hasRoom(bytes: bytes.count, spans: spans) {
            if refuseWhenFull { return .full }
            while !hasRoom(bytes: bytes.count, spans: spans), let index = batches.firstIndex(where: { $0.sequence != inFlight }) {
                let old = batches.remove(at: index)
                forget(old)
                evicted += old.spans
            }
            if !hasRoom(bytes: bytes.count, spans: spans) { return .full }  // only the in-flight batch is left and it is too big
        }
        let sequence = nextSequence
        nextSequence += 1
        if let spool {
            do {
                try spool.write(sequence: sequence, spans: spans, bytes: bytes)
            } catch {
                return .failed(error)
            }
        }
        batches.append(Batch(sequence: sequence, spans: spans, bytes: bytes.count, payload: spool == nil ? bytes : nil, traceIDs: traceIDs))
        storedBytes += bytes.count
        storedSpans += spans
        return .stored(evictedSpans: evicted)
    }

    /// The oldest batch, now marked in flight, with its bytes.
    /// - Returns: `nil` when empty; a spool read error together with the batch when its file is unreadable.
    public mutating func nextForDelivery() -> (batch: Batch, bytes: Result<[UInt8], SpoolDirectory.SpoolError>)? {
        guard let batch = batches.first else { return nil }
        inFlight = batch.sequence
        if let payload = batch.payload { return (batch, .success(payload)) }
        guard let spool else { return (batch, .success([])) }
        do {
            return (batch, .success(try spool.read(SpoolDirectory.StoredBatch(sequence: batch.sequence, spans: batch.spans, bytes: batch.bytes))))
        } catch {
            return (batch, .failure(error))
        }
    }

    /// Removes a batch that was delivered or given up on.
    public mutating func remove(_ batch: Batch) {
        if inFlight == batch.sequence { inFlight = nil }
        guard let index = batches.firstIndex(where: { $0.sequence == batch.sequence }) else { return }
        forget(batches.remove(at: index))
    }

    /// Ends a delivery without removing the batch (it stays for the next attempt or the next start).
    public mutating func release(_ batch: Batch) {
        if inFlight == batch.sequence { inFlight = nil }
    }

    /// Removes every batch of a memory queue and returns them, oldest first (a reload hands them to the queue that
    /// replaces this one). A spooled queue returns nothing: its batches stay on disk for the next user.
    public mutating func takeAll() -> [Batch] {
        guard spool == nil else { return [] }
        let taken = Array(batches)
        batches.removeAll()
        storedBytes = 0
        storedSpans = 0
        inFlight = nil
        return taken
    }

    /// Puts batches taken from another queue (``takeAll()``) in front of this one's, in their order, as the
    /// oldest; written to the spool when this queue has one. Beyond the bounds the oldest batches (not in flight)
    /// are dropped. - Returns: the spans dropped.
    public mutating func adopt(_ older: [Batch]) -> Int {
        var adopted: [Batch] = []
        var evicted = 0
        for batch in older {
            guard let payload = batch.payload else { continue }
            let sequence = nextSequence
            nextSequence += 1
            if let spool {
                do {
                    try spool.write(sequence: sequence, spans: batch.spans, bytes: payload)
                } catch {
                    evicted += batch.spans  // the spool cannot take it: counted with the others
                    continue
                }
            }
            adopted.append(
                Batch(sequence: sequence, spans: batch.spans, bytes: payload.count, payload: spool == nil ? payload : nil, traceIDs: batch.traceIDs))
            storedBytes += payload.count
            storedSpans += batch.spans
        }
        if spool == nil {
            batches.insert(contentsOf: adopted, at: 0)
        } else {
            batches.append(contentsOf: adopted)  // a spool's order is its file names; these are the newest there
        }
        while !hasRoom(bytes: 0, spans: 0), let index = batches.firstIndex(where: { $0.sequence != inFlight }) {
            let old = batches.remove(at: index)
            forget(old)
            evicted += old.spans
        }
        return evicted
    }

    /// Removes every batch (a memory queue at shutdown), returning the spans it held.
    public mutating func removeAll() -> Int {
        let spans = storedSpans
        while let batch = batches.popFirst() { forget(batch) }
        inFlight = nil
        return spans
    }

    private mutating func forget(_ batch: Batch) {
        storedBytes -= batch.bytes
        storedSpans -= batch.spans
        spool?.remove(SpoolDirectory.StoredBatch(sequence: batch.sequence, spans: batch.spans, bytes: batch.bytes))
    }
}

/// The size of `ExportTraceServiceRequest` framing: the request's only field is `repeated ResourceSpans
/// resource_spans = 1`, so its encoding is each item as a length-delimited field 1 (written by
/// `OTLPBinary.ResourceSpansEncoder.append(_:asRequestFieldTo:)`).
public enum ExportRequestEncoding {
    /// The bytes field 1 adds in front of an item of `length` bytes.
    public static func fieldOverhead(length: Int) -> Int {
        1 + varintSize(UInt64(length))
    }

    private static func varintSize(_ value: UInt64) -> Int {
        var size = 1
        var rest = value >> 7
        while rest > 0 {
            size += 1
            rest >>= 7
        }
        return size
    }
}
