import DeadlineClocks
import ExportQueue
import Logging
import NIOConcurrencyHelpers
import OTLPExport
import OTLPJSON
import OTLPProto
import ProxyObservability
import ServiceLifecycle
import SharedSettings
import SpanShaping
import SwiftProtobuf
import Synchronization

/// One destination's delivery, off the request path: translated spans are batched (by span count, bytes and
/// time), the sealed batches wait in a bounded ``BatchQueue`` (in memory, or on disk in a spool), and are
/// delivered oldest first, each retried by the exporter's rules until delivered, rejected for good, or out of
/// retry time. The proxy runs one pipeline per destination, so a slow or dead destination only fills its own
/// queue.
///
/// `submit` never blocks. When the queue is full, the policy decides: `drop_oldest` drops the oldest batches,
/// `refuse` keeps them and ``isSaturated`` tells intake to answer 503. Every dropped span is counted with its
/// reason (`queue_full`, the destination's failure class, `spool_write`, `shutting_down`, `shutdown`).
///
/// On graceful shutdown intake stops, the batch being formed is sealed, and delivery goes on until the queue
/// is empty or the shutdown deadline cancels it: a memory queue's remaining spans are then counted as dropped
/// (`shutdown`). With a spool, delivery goes on only while it succeeds (no retries): the rest stays on disk
/// for the next start, so shutdown and a reload's handover of the spool are quick.
public actor ExportPipeline: Service {
    private let settings: DeliverySettings
    private let exporters: [any SpanExporter]
    private let counters: ProxyCounters
    private let logger: Logger
    private let status: StatusBoard?
    /// Where this destination spools, when the spool is on.
    private let spoolPath: String?
    /// The destination name (its exporter's), for counters.
    public nonisolated let name: String
    /// The destination's data policy (conventions, redaction, limits, routing); `nil`: spans as translated.
    private let shaper: DestinationShaper?
    /// What intake hands the pipeline, in order: spans, or a request to seal everything handed over before it.
    private enum Input: Sendable {
        case spans([Opentelemetry_Proto_Trace_V1_ResourceSpans], spans: Int)
        case seal
    }
    /// Submissions taken so far (a ``sealSubmitted()`` caller waits for this many to be sealed), and how many were processed.
    private nonisolated let submittedCount = Atomic<UInt64>(0)
    private var processedCount: UInt64 = 0
    /// Set once intake has ended and the last batch is sealed into the spool: nothing this pipeline was given
    /// is only in memory any more.
    private nonisolated let spooledEverythingFlag = Atomic<Bool>(false)
    /// Set when draining begins with a spool: deliveries then stop retrying (the spool keeps their batches).
    private let retryStop: StopSignal
    /// Set when draining begins: the batching timer and a credentials hold stop waiting.
    private let drainStop: StopSignal
    /// The time batching deadlines and holds are measured on (the continuous clock; a manual one in tests).
    private let clock: any DeadlineClock
    private let input: AsyncStream<Input>
    private let inputContinuation: AsyncStream<Input>.Continuation

    private var queue: BatchQueue
    /// The batch being formed and sealed batches the spool has not taken yet, with their deadline.
    private var formation: BatchFormation
    private var draining = false
    private nonisolated let queuedSpansGauge = Atomic<Int>(0)
    private nonisolated let queuedBytesGauge = Atomic<Int>(0)
    private nonisolated let saturatedFlag = Atomic<Bool>(false)
    /// Whether the last delivery succeeded (`nil` before the first), for one log line per state change.
    private var lastDeliveryOK: Bool?
    /// Drop causes already logged since the destination last delivered (each is logged once, then counted).
    private var loggedDropCauses: Set<String> = []
    /// Whether the destination is rejecting the proxy's credentials (batches held, see ``AuthFailurePolicy``).
    private var credentialsRejected = false
    /// The pipeline a reload replaced this one with: the queue goes to it instead of being delivered here.
    private var successor: ExportPipeline?
    private var handingOver = false
    /// Spans submitted and not yet taken from the input (bounded by the queue's span bound).
    private nonisolated let inputBacklog = Atomic<Int>(0)
    /// Why the spool cannot be written now (`nil`: it can, or there is none), for `/readyz` and intake.
    private nonisolated let spoolProblemText = NIOLockedValueBox<String?>(nil)  // NIO's lock: TSan sees it
    /// Set when spans were dropped because the spool could not be written: from then on nothing is reported as
    /// sealed (``sealSubmitted()`` waits), so the intake journal keeps every upload for the next start.
    private var lostUnsealedSpans = false
    /// Set when ``submit(_:)`` dropped spans because the input was full: as above, nothing counts as sealed from
    /// then on, so the intake journal keeps the uploads they came from for the next start.
    private nonisolated let droppedAtInput = Atomic<Bool>(false)

    /// Told when the pipeline this one replaces (a reload, the same destination) closed the spool directory.
    private let spoolReleased: AsyncStream<Void>
    private let spoolReleasedContinuation: AsyncStream<Void>.Continuation
    /// Wakes the delivery loop when there may be work: a batch was queued, draining began.
    private let deliveryWake: AsyncStream<Void>
    private let deliveryWakeContinuation: AsyncStream<Void>.Continuation
    /// Wakes the sealing timer when a deadline may have appeared: a batch started forming, a spool write failed.
    private let sealWake: AsyncStream<Void>
    private let sealWakeContinuation: AsyncStream<Void>.Continuation
    /// How many submissions are sealed, and the ``sealSubmitted()`` callers waiting.
    private nonisolated let sealProgress = SealProgress()

    /// Whether spans this pipeline was given were lost before they reached the queue (the journal must keep them).
    private var lostSpans: Bool { lostUnsealedSpans || droppedAtInput.load(ordering: .sequentiallyConsistent) }

    /// Creates a pipeline.
    /// - Parameter spoolPath: this destination's spool directory (opened when the pipeline runs); `nil` for a
    ///   memory queue.
    public init(
        settings: DeliverySettings, exporters: [any SpanExporter], counters: ProxyCounters, logger: Logger, status: StatusBoard? = nil,
        spoolPath: String? = nil, shaper: DestinationShaper? = nil, maxRequestBytes: Int? = nil, clock: any DeadlineClock = SystemDeadlineClock()
    ) {
        self.clock = clock
        retryStop = StopSignal(clock: clock)
        drainStop = StopSignal(clock: clock)
        self.status = status
        self.shaper = shaper.flatMap { $0.isIdentity ? nil : $0 }
        // Room for the request's own framing: a batch's bytes are the request's bytes.
        let maxBatchBytes = min(settings.maxExportBatchBytes, maxRequestBytes.map { max($0 - 16, 1024) } ?? Int.max)
        self.name = exporters.map(\.name).joined(separator: "+")
        self.settings = settings
        self.exporters = exporters
        self.counters = counters
        self.logger = logger
        self.spoolPath = spoolPath
        queue = BatchQueue(maxBytes: settings.maxQueueBytes, maxSpans: settings.maxQueueSize)
        formation = BatchFormation(
            maxSpans: settings.maxExportBatchSize, maxBytes: maxBatchBytes, scheduleDelay: settings.scheduleDelay, now: clock.now)
        (input, inputContinuation) = AsyncStream.makeStream()
        (deliveryWake, deliveryWakeContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        (sealWake, sealWakeContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        (spoolReleased, spoolReleasedContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Spans waiting (queued and in the batch being formed).
    public nonisolated var queuedSpanCount: Int { queuedSpansGauge.load(ordering: .relaxed) }
    /// Serialized bytes waiting.
    public nonisolated var queuedByteCount: Int { queuedBytesGauge.load(ordering: .relaxed) }
    /// The queue's full policy.
    public nonisolated var fullPolicy: QueueFullPolicy { settings.fullPolicy }

    /// Whether the queue has no room for another full batch: with the `refuse` policy, uploads the proxy
    /// answers itself get 503 with `Retry-After` instead of spans that would be dropped.
    public nonisolated var isSaturated: Bool {
        saturatedFlag.load(ordering: .relaxed) || inputBacklog.load(ordering: .relaxed) >= settings.maxQueueSize
    }

    /// Why this destination's spool cannot be written now, or `nil`. While it is set, uploads the proxy answers
    /// itself get 503 (the intake journal keeps what was acknowledged) and `/readyz` is not ready.
    public nonisolated var spoolProblem: String? { spoolProblemText.withLockedValue { $0 } }

    /// Queues translated spans for export; returns at once. While the pipeline cannot take its input (a reload's
    /// handover of the spool), at most the queue's span bound waits; spans beyond it are dropped and counted
    /// (`queue_full`; with the spool on, the intake journal then keeps every upload until the next start replays
    /// it), and with the `refuse` policy ``isSaturated`` asks clients to retry instead.
    public nonisolated func submit(_ resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) {
        guard !resourceSpans.isEmpty else { return }
        let count = resourceSpans.reduce(0) { $0 + $1.scopeSpans.reduce(0) { $0 + $1.spans.count } }
        let backlog = inputBacklog.load(ordering: .relaxed)
        if backlog > 0 && backlog + count > settings.maxQueueSize {
            droppedAtInput.store(true, ordering: .sequentiallyConsistent)
            counters.increment(.spansDropped, labels: [self.name, "queue_full"], by: count)
            logger.warning(
                "export input is full (the pipeline is waiting for its spool); spans dropped",
                metadata: ["destination": "\(name)", "spans": "\(count)", "max_queue_size": "\(settings.maxQueueSize)"])
            return
        }
        inputBacklog.add(count, ordering: .relaxed)
        let outcome = inputContinuation.yield(.spans(resourceSpans, spans: count))
        submittedCount.add(1, ordering: .sequentiallyConsistent)  // after the yield: a barrier's target never counts an item not yet queued
        if case .terminated = outcome {
            inputBacklog.subtract(count, ordering: .relaxed)
            counters.increment(.spansDropped, labels: [self.name, "shutting_down"], by: count)
            logger.warning("spans arrived after shutdown began and were dropped", metadata: ["spans": "\(count)"])
        }
    }

    /// Returns once everything submitted before the call is sealed into the queue (in the spool, when it is on),
    /// or when the pipeline has ended, or the calling task is cancelled.
    public nonisolated func sealSubmitted() async {
        let target = submittedCount.load(ordering: .sequentiallyConsistent)
        guard case .enqueued = inputContinuation.yield(.seal) else { return }
        await sealProgress.wait(until: target)
    }

    /// Whether intake has ended and everything this pipeline was given is sealed into its spool (so a journal
    /// of the uploads it came from is no longer needed).
    public nonisolated var hasSpooledEverything: Bool { spooledEverythingFlag.load(ordering: .sequentiallyConsistent) }

    /// Runs until graceful shutdown, then delivers what is queued (see the type's description).
    public func run() async throws {
        await openSpool()
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await item in self.input {
                        switch item {
                        case .spans(let resourceSpans, let count):
                            self.inputBacklog.subtract(count, ordering: .relaxed)
                            await self.enqueue(resourceSpans)
                        case .seal: await self.sealProcessed()
                        }
                    }
                    await self.beginDraining()
                }
                group.addTask { await self.deliveryLoop() }
                group.addTask { await self.sealingTimer() }
                await group.waitForAll()
            }
        } onGracefulShutdown: {
            self.inputContinuation.finish()
        }
        if let successor, handingOver {
            await handOver(to: successor)
        } else {
            finishShutdown()
        }
        sealProgress.end()
        for exporter in exporters { await exporter.shutdown() }
    }

    // MARK: Reload handover

    /// Tells a pipeline that a reload replaced it with `successor` (the same destination, new settings): when it
    /// is then shut down, it stops delivering with its old settings (a rejected old key must not drop anything),
    /// and its queue goes to the successor: a memory queue's batches are given to it, a spool is released for it.
    public func retire(handingOverTo successor: ExportPipeline) {
        self.successor = successor
    }

    private func handOver(to successor: ExportPipeline) async {
        seal()
        if queue.isSpooled {
            if !queue.isEmpty {
                logger.info(
                    "spooled batches left for the destination's new settings",
                    metadata: ["destination": "\(name)", "batches": "\(queue.count)", "spans": "\(queue.storedSpans)"])
            }
            queue = BatchQueue(maxBytes: 0, maxSpans: 0)  // closes the spool (and its lock) for the successor
            successor.predecessorReleasedSpool()
        } else {
            let batches = queue.takeAll()
            if !batches.isEmpty {
                logger.info(
                    "queued batches handed to the destination's new settings",
                    metadata: ["destination": "\(name)", "batches": "\(batches.count)", "spans": "\(batches.reduce(0) { $0 + $1.spans })"])
                await successor.adopt(batches)
            }
        }
        updateGauges()
    }

    /// Takes the batches of the pipeline this one replaces (older than anything queued here) in front of its own
    /// queue; beyond the queue's bounds the oldest are dropped and counted (`queue_full`).
    func adopt(_ batches: [BatchQueue.Batch]) {
        let evicted = queue.adopt(batches)
        if evicted > 0 {
            counters.increment(.spansDropped, labels: [name, "queue_full"], by: evicted)
            logDrop(
                cause: "queue_full", "export queue is full after a reload handed over its predecessor's batches; the oldest were dropped",
                metadata: ["spans": "\(evicted)", "queue_bytes": "\(queueBound)"])
        }
        updateGauges()
        deliveryWakeContinuation.yield()
    }

    // MARK: Intake and batching

    private func enqueue(_ translated: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) {
        defer { processedCount += 1 }
        var resourceSpans = translated
        if let shaper {
            let (shaped, outcome) = shaper.shape(translated)
            resourceSpans = shaped
            count(outcome)
        }
        guard let first = resourceSpans.first?.scopeSpans.first?.spans.first else { return }
        let addition = formation.add(resourceSpans, tag: status != nil ? HexID.string(first.traceID) : "", now: clock.now)
        if addition.trimmed > 0 { counters.increment(.valuesTrimmed, labels: [name], by: addition.trimmed) }
        if addition.sealedRequests > 0 { flushUnsealed() }
        if addition.startedForming { sealWakeContinuation.yield() }
        updateGauges()
    }

    /// Counts what the destination's policy did (filtered spans are not drops: the policy chose them).
    private func count(_ outcome: DestinationShaper.Outcome) {
        if outcome.filtered > 0 { counters.increment(.spansFiltered, labels: [name, "routing"], by: outcome.filtered) }
        if outcome.sampledOut > 0 { counters.increment(.spansFiltered, labels: [name, "sampling"], by: outcome.sampledOut) }
        if outcome.masked > 0 { counters.increment(.valuesMasked, labels: [name], by: outcome.masked) }
        if outcome.redacted > 0 { counters.increment(.attributesRedacted, labels: [name], by: outcome.redacted) }
        if outcome.trimmed > 0 { counters.increment(.valuesTrimmed, labels: [name], by: outcome.trimmed) }
    }

    /// Moves the batch being formed into the queue, after any batches the spool could not write yet.
    /// - Returns: false when the spool could not write them (they wait in memory and are tried again).
    @discardableResult
    private func seal() -> Bool {
        formation.sealForming()
        return flushUnsealed()
    }

    /// Moves sealed batches into the queue, oldest first. - Returns: false when the spool could not write them.
    @discardableResult
    private func flushUnsealed() -> Bool {
        formation.flushing(now: clock.now)
        defer { if !queue.isEmpty { deliveryWakeContinuation.yield() } }
        while let first = formation.oldestSealed {
            let outcome = queue.append(first.bytes, spans: first.spans, traceIDs: first.traceIDs, refuseWhenFull: settings.fullPolicy == .refuse)
            if case .failed(let error) = outcome {
                spoolWriteFailed(error)
                updateGauges()
                sealWakeContinuation.yield()  // the timer tries again in a second
                return false
            }
            formation.removeOldestSealed()
            recordAppend(outcome, spans: first.spans)
        }
        if spoolProblem != nil {
            spoolProblemText.withLockedValue { $0 = nil }
            logger.info("the spool can be written again", metadata: ["destination": "\(name)"])
        }
        updateGauges()
        return true
    }

    /// Batches the spool could not write wait in memory (tried again every second); uploads are refused meanwhile
    /// (``spoolProblem``). Beyond the memory queue's bound the oldest are dropped and counted (`spool_write`), and
    /// from then on nothing counts as sealed, so the intake journal keeps every upload for the next start.
    private func spoolWriteFailed(_ error: SpoolDirectory.SpoolError) {
        if spoolProblem == nil {
            spoolProblemText.withLockedValue { $0 = "the spool of destination \(name) cannot be written" }
            logger.error(
                "could not write a batch to the spool; uploads get 503 until it can be written, the intake journal keeps them",
                metadata: ["destination": "\(name)", "error": "\(error)"])
            counters.increment(.spoolErrors, name)
        }
        for oldest in formation.dropOldestSealed(beyond: settings.maxQueueBytes) {
            counters.increment(.spansDropped, labels: [name, "spool_write"], by: oldest.spans)
            logDrop(
                cause: "spool_write", "the spool stayed unwritable past the memory bound; spans dropped (the intake journal keeps their uploads)",
                metadata: ["spans": "\(oldest.spans)", "error": "\(error)"])
            lostUnsealedSpans = true
        }
    }

    /// Counts what appending a sealed batch did.
    private func recordAppend(_ outcome: BatchQueue.AppendOutcome, spans: Int) {
        switch outcome {
        case .stored(let evicted):
            if evicted > 0 {
                counters.increment(.spansDropped, labels: [name, "queue_full"], by: evicted)
                logDrop(
                    cause: "queue_full", "export queue is full; the oldest spans were dropped to make room",
                    metadata: ["spans": "\(evicted)", "queue_bytes": "\(queueBound)"])
            }
        case .full:
            counters.increment(.spansDropped, labels: [name, "queue_full"], by: spans)
            logDrop(cause: "queue_full", "export queue is full; spans dropped", metadata: ["spans": "\(spans)", "queue_bytes": "\(queueBound)"])
        case .failed:
            break  // handled by `spoolWriteFailed`
        }
    }

    private var queueBound: Int { queue.isSpooled ? settings.spool?.maxBytes ?? 0 : settings.maxQueueBytes }

    /// Seals what was processed so far and records it for ``sealSubmitted()``.
    private func sealProcessed() {
        if seal() && !lostSpans {
            sealProgress.advance(to: processedCount)
        }
    }

    private func beginDraining() {
        draining = true
        defer {
            // The timer and a credentials hold stop waiting; the delivery loop looks at the queue once more.
            drainStop.stop()
            sealWakeContinuation.yield()
            deliveryWakeContinuation.yield()
        }
        if successor != nil {
            // Retired by a reload: nothing more is delivered with the old settings; the queue goes to the successor.
            handingOver = true
            retryStop.stop()
            return
        }
        sealProcessed()
        if queue.isSpooled {
            if !formation.hasSealed && !lostSpans { spooledEverythingFlag.store(true, ordering: .sequentiallyConsistent) }
            retryStop.stop()  // deliver what goes through; what needs retries waits on disk for the next start
        }
    }

    private func updateGauges() {
        queuedSpansGauge.store(queue.storedSpans + formation.formingSpans + formation.sealedSpans, ordering: .relaxed)
        queuedBytesGauge.store(queue.storedBytes + formation.formingBytes + formation.sealedBytes, ordering: .relaxed)
        saturatedFlag.store(!queue.hasRoom(bytes: settings.maxExportBatchBytes, spans: settings.maxExportBatchSize), ordering: .relaxed)
    }

    /// Seals the forming batch once its oldest span has waited `scheduleDelay` (also while a delivery is being
    /// retried, so that spans reach the queue and the spool on time), and retries a failed spool write every second:
    /// a timer armed for the next such deadline, woken by the events that create one. Ends when draining starts.
    private func sealingTimer() async {
        var wakes = sealWake.makeAsyncIterator()
        while !draining && !Task.isCancelled {
            guard let deadline = formation.nextDeadline() else {
                guard await wakes.next(isolation: self) != nil else { return }
                continue
            }
            if clock.now < deadline {
                await drainStop.wait(until: deadline)
                continue  // the batch may have been sealed (or another one started) meanwhile
            }
            seal()
        }
    }

    // MARK: Delivery

    /// Delivers the oldest batch while there is one. Ends when draining found the queue empty, on a reload's
    /// handover, or on cancellation (the shutdown deadline).
    private func deliveryLoop() async {
        var wakes = deliveryWake.makeAsyncIterator()
        while !Task.isCancelled && !handingOver {
            guard let (batch, bytes) = queue.nextForDelivery() else {
                if draining && formation.isEmpty { return }
                guard await wakes.next(isolation: self) != nil else { return }  // nil: cancelled
                continue
            }
            switch bytes {
            case .failure(let error):
                counters.increment(.spansDropped, labels: [name, "spool_read"], by: batch.spans)
                logDrop(
                    cause: "spool_read", "a spooled batch could not be read; dropped", metadata: ["spans": "\(batch.spans)", "error": "\(error)"])
                queue.remove(batch)
            case .success(let payload):
                switch await deliver(ExportBatch(bytes: payload, spans: batch.spans), traceIDs: batch.traceIDs) {
                case .finished:
                    queue.remove(batch)
                case .interrupted:
                    queue.release(batch)  // interrupted by shutdown or a handover: kept (in the spool) for next time
                    return
                case .held(let failure):
                    queue.release(batch)
                    holdForCredentials(failure)
                    guard await waitForCredentialsRetry() else { return }
                }
            }
            updateGauges()
        }
    }

    /// What one delivery came to.
    private enum DeliveryOutcome {
        /// Delivered, or given up on (dropped and counted): the batch leaves the queue.
        case finished
        /// Shutdown or a handover interrupted it: the batch stays.
        case interrupted
        /// The destination rejected the credentials and the policy is `hold`: the batch stays.
        case held(ExportFailure)
    }

    /// Delivers one batch to every exporter.
    private func deliver(_ batch: ExportBatch, traceIDs: Set<String>) async -> DeliveryOutcome {
        for exporter in exporters {
            do {
                let started = ContinuousClock.now
                let outcome: Result<Int, ExportFailure> = await StopSignal.$retries.withValue(retryStop) {
                    do throws(ExportFailure) {
                        return .success(try await exporter.export(batch))
                    } catch {
                        return .failure(error)
                    }
                }
                let rejected = try outcome.get()
                counters.observe(.exportDurationSeconds, exporter.name, seconds: (ContinuousClock.now - started).seconds)
                counters.increment(.spansExported, exporter.name, by: batch.spans - rejected)
                if rejected > 0 { counters.increment(.spansRejected, exporter.name, by: rejected) }
                status?.delivered(to: exporter.name, spans: batch.spans, otelTraceIDs: traceIDs)
                if credentialsRejected {
                    credentialsRejected = false
                    logger.warning(
                        "destination accepts the proxy's credentials again; delivering the held batches",
                        metadata: ["destination": "\(exporter.name)"])
                } else if lastDeliveryOK == false {
                    logger.info("destination is delivering again", metadata: ["destination": "\(exporter.name)"])
                }
                lastDeliveryOK = true
                loggedDropCauses.removeAll()
                counters.increment(.exportRequests, labels: [exporter.name, "ok"])
            } catch  where error.isCancellation {
                return .interrupted
            } catch  where error.credentialsRejected && settings.onAuthFailure == .hold {
                counters.increment(.exportRequests, labels: [exporter.name, error.reason.label])
                return .held(error)
            } catch {
                lastDeliveryOK = false
                counters.increment(.spansDropped, labels: [exporter.name, error.reason.label], by: batch.spans)
                counters.increment(.exportRequests, labels: [exporter.name, error.reason.label])
                status?.failed(destination: exporter.name, error: error.message, final: true)
                logDrop(
                    cause: error.reason.label, "export failed; spans dropped",
                    metadata: ["destination": "\(exporter.name)", "spans": "\(batch.spans)", "error": "\(error.message)"])
            }
        }
        return .finished
    }

    /// Enters (or stays in) the `credentials_rejected` state: logged once per change, with the destination's
    /// answer (its credentials masked), never the key.
    private func holdForCredentials(_ failure: ExportFailure) {
        lastDeliveryOK = false
        status?.credentialsRejected(destination: name, error: failure.message)
        guard !credentialsRejected else { return }
        credentialsRejected = true
        logger.error(
            """
            destination rejected the proxy's credentials; its batches are held (not dropped) and the oldest is retried every \
            auth_retry_interval until the credentials work: fix the key at the destination, or update it here and reload (SIGHUP)
            """,
            metadata: [
                "destination": "\(name)", "answer": "\(failure.message)", "auth_retry_interval": "\(settings.authRetryInterval)",
                "queued_spans": "\(queue.storedSpans)",
            ])
    }

    /// Waits `auth_retry_interval` before the held batch is tried again. - Returns: false when the wait ended
    /// because the pipeline is stopping (shutdown, handover): held batches then stay in the spool, or go to the
    /// successor; a memory queue's are counted as dropped at shutdown.
    private func waitForCredentialsRetry() async -> Bool {
        if Task.isCancelled || handingOver || draining { return false }
        await drainStop.wait(until: clock.now + settings.authRetryInterval)
        return !(Task.isCancelled || handingOver || draining)
    }

    // MARK: Spool and shutdown

    /// Tells this pipeline that the one it replaces closed the spool directory it waits for.
    nonisolated func predecessorReleasedSpool() { spoolReleasedContinuation.yield() }

    /// Opens this destination's spool. While another pipeline (one a reload retired) still holds it, waits for that
    /// pipeline's release, or a second for a holder outside this process. A spool that cannot be used leaves the
    /// destination on a memory queue, with an error logged.
    private func openSpool() async {
        guard let spoolPath, let spool = settings.spool else { return }
        var waitLogged = false
        while !Task.isCancelled {
            do {
                let directory = try SpoolDirectory(path: spoolPath, fsync: spool.fsync)
                queue = try BatchQueue(spool: directory, maxBytes: spool.maxBytes)
                if !queue.isEmpty {
                    logger.info(
                        "spooled batches found; delivering them first",
                        metadata: ["destination": "\(name)", "batches": "\(queue.count)", "spans": "\(queue.storedSpans)", "spool": "\(spoolPath)"])
                }
                updateGauges()
                return
            } catch  where error.locked {
                if !waitLogged {
                    logger.info("waiting for the spool directory to be released", metadata: ["destination": "\(name)", "spool": "\(spoolPath)"])
                    waitLogged = true
                }
                await waitForSpoolRelease()
            } catch {
                logger.error(
                    "the spool cannot be used; this destination queues in memory only",
                    metadata: ["destination": "\(name)", "error": "\(error)"])
                counters.increment(.spoolErrors, name)
                return
            }
        }
    }

    /// Returns when the predecessor released the spool, after a second, or on cancellation.
    private func waitForSpoolRelease() async {
        let released = spoolReleased
        let clock = self.clock
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var iterator = released.makeAsyncIterator()
                _ = await iterator.next()
            }
            group.addTask { try? await clock.sleep(until: clock.now + .seconds(1)) }
            await group.next()
            group.cancelAll()
        }
    }

    private func finishShutdown() {
        seal()
        guard !queue.isEmpty else { return }
        if queue.isSpooled {
            logger.info(
                "undelivered batches stay in the spool for the next start",
                metadata: ["destination": "\(name)", "batches": "\(queue.count)", "spans": "\(queue.storedSpans)"])
        } else {
            let spans = queue.removeAll()
            counters.increment(.spansDropped, labels: [name, "shutdown"], by: spans)
            logger.error(
                "shutdown deadline reached before the queue was delivered; spans dropped",
                metadata: ["destination": "\(name)", "spans": "\(spans)"])
        }
        updateGauges()
    }

    /// Logs the first drop of each cause as an error (with the destination's answer); later ones of the same
    /// cause only count, until the destination delivers again.
    private func logDrop(cause: String, _ message: Logger.Message, metadata: Logger.Metadata) {
        if loggedDropCauses.insert(cause).inserted {
            logger.error(message, metadata: metadata.merging(["cause": "\(cause)", "further drops of this cause": "counted, not logged"]) { $1 })
        } else {
            logger.debug(message, metadata: metadata)
        }
    }
}
