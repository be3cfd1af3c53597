import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// The request bytes held in memory at once, over all connections (``ConnectionLimits/maxBodyBytesInMemory``).
///
/// Trace uploads are read whole before they are decoded, each up to `max_trace_body_bytes`; without a total,
/// a thousand connections could each hold one. ``collect(_:limit:)`` reads a body while taking its bytes from
/// the budget (the declared `Content-Length` at once, a chunked body chunk by chunk), and the returned
/// ``Reservation`` gives them back when the request is done.
public final class BodyMemoryBudget: Sendable {
    /// Bytes that may be held at once.
    public let capacity: Int
    private let held = Atomic<Int>(0)

    /// A budget of `capacity` bytes.
    public init(capacity: Int) { self.capacity = capacity }

    /// Bytes held now.
    public var bytesHeld: Int { held.load(ordering: .relaxed) }

    /// Takes `count` bytes if they fit. - Returns: whether they were taken.
    func take(_ count: Int) -> Bool {
        var current = held.load(ordering: .relaxed)
        while true {
            guard current + count <= capacity else { return false }
            let (exchanged, original) = held.compareExchange(expected: current, desired: current + count, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    func giveBack(_ count: Int) { held.subtract(count, ordering: .relaxed) }

    /// Bytes of the budget held for one request; given back once, by ``release()``.
    public final class Reservation: Sendable {
        private let budget: BodyMemoryBudget
        private let bytes: Atomic<Int>

        init(budget: BodyMemoryBudget, bytes: Int) {
            self.budget = budget
            self.bytes = Atomic(bytes)
        }

        /// Moves the bytes to a new reservation (for work that outlives the request, a dual-mode copy); this one
        /// then holds none.
        public func transfer() -> Reservation {
            Reservation(budget: budget, bytes: bytes.exchange(0, ordering: .relaxed))
        }

        /// Gives the bytes back (a second call does nothing).
        public func release() {
            let count = bytes.exchange(0, ordering: .relaxed)
            if count > 0 { budget.giveBack(count) }
        }

        deinit { release() }
    }

    /// Why a body was not collected.
    public enum Refusal: Error {
        /// The body is longer than the limit for its route.
        case tooLarge
        /// Holding it would take the budget over its capacity.
        case overBudget
        /// The client's connection failed while the body was read.
        case unreadable
    }

    /// The largest refused body whose rest is read and discarded before the answer (see ``discardDeclaredBody(of:)``).
    public static let lingeringLimit = 256 * 1024 * 1024

    /// Reads and discards the body of a request refused before its body was read (a declared length over the
    /// route's limit or the budget), when the declared length is at most ``lingeringLimit``: clients that write
    /// their whole body before they read (Python's `http.client`, `requests`, so MLflow's client) then get the 413
    /// or 503 instead of a reset, which they would retry (nginx's lingering close). Nothing is kept; the connection's
    /// body deadlines still apply. A longer body, or one without a declared length, is not read (the connection
    /// closes after the answer).
    public static func discardDeclaredBody(of request: inout Request) async {
        guard let declared = request.headers.value(of: .contentLength).flatMap({ Int($0) }), declared <= lingeringLimit else { return }
        do {
            for try await _ in request.body {}
        } catch {
            return  // the client went away: nothing to answer
        }
    }

    /// Reads the request's body whole (at most `limit` bytes) into memory taken from the budget, and puts it back
    /// into the request as a buffer, so the handlers that read it later get it at once.
    public func collect(_ request: inout Request, limit: Int) async throws(Refusal) -> Reservation {
        let collection = try BodyCollection(budget: self, limit: limit, declaredLength: request.headers.value(of: .contentLength).flatMap { Int($0) })
        do {
            for try await chunk in request.body { try collection.append(chunk) }
        } catch let refusal as Refusal {
            throw refusal
        } catch {
            collection.abandon()
            throw .unreadable
        }
        let (body, held) = collection.finish()
        request.body = RequestBody(buffer: body)
        return held
    }
}

/// One body being read whole under a ``BodyMemoryBudget``, part by part (the listener's pipeline feeds it as parts
/// arrive; ``BodyMemoryBudget/collect(_:limit:)`` from a request's body): the declared `Content-Length` is taken
/// from the budget at once, a chunked body as it grows. A refusal, or ``abandon()``, gives the bytes back;
/// ``finish()`` hands them to a ``BodyMemoryBudget/Reservation``. Used by one request's reader at a time (not `Sendable`).
public final class BodyCollection {
    private let budget: BodyMemoryBudget
    private let limit: Int
    private var reserved = 0
    private var buffer: ByteBuffer

    /// Starts a body of `declaredLength` bytes (`nil`: not declared) under `limit`.
    /// - Throws: ``BodyMemoryBudget/Refusal/tooLarge`` for a declared length over the limit,
    ///   ``BodyMemoryBudget/Refusal/overBudget`` when it does not fit the budget.
    public init(budget: BodyMemoryBudget, limit: Int, declaredLength: Int?) throws(BodyMemoryBudget.Refusal) {
        self.budget = budget
        self.limit = limit
        if let declaredLength {
            guard declaredLength <= limit else { throw .tooLarge }
            guard budget.take(declaredLength) else { throw .overBudget }
            reserved = declaredLength
        }
        buffer = ByteBufferAllocator().buffer(capacity: declaredLength ?? 0)
    }

    /// A body left unfinished (its connection went away) gives its bytes back.
    deinit { budget.giveBack(reserved) }

    /// Adds a part. - Throws: a refusal when the body passes the limit or the budget (its bytes are then given back).
    public func append(_ part: ByteBuffer) throws(BodyMemoryBudget.Refusal) {
        let needed = buffer.readableBytes + part.readableBytes
        if needed > limit {
            abandon()
            throw .tooLarge
        }
        if needed > reserved {
            guard budget.take(needed - reserved) else {
                abandon()
                throw .overBudget
            }
            reserved = needed
        }
        var part = part
        buffer.writeBuffer(&part)
    }

    /// Gives the bytes back (the body is not wanted, or could not be read).
    public func abandon() {
        budget.giveBack(reserved)
        reserved = 0
        buffer.clear()
    }

    /// The body, and the reservation that holds its bytes until released (this collection then holds none).
    public func finish() -> (body: ByteBuffer, reservation: BodyMemoryBudget.Reservation) {
        let held = BodyMemoryBudget.Reservation(budget: budget, bytes: reserved)
        reserved = 0
        defer { buffer = ByteBuffer() }
        return (buffer, held)
    }
}
