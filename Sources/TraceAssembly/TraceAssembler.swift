import DeadlineClocks
import Foundation
import Logging
import MLflowWire
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Collects spans and trace info from every upload path and hands each trace on once it is complete
/// (or its wait ran out). Runs as a `Service`: a timer releases expired traces, and graceful shutdown
/// releases everything still held.
///
/// An upload is added without a thread change (``addNow(_:)``, under a lock): the traces it completes go to the next
/// stage at once when that stage has room (`offer`), and the caller wakes that stage's task after it has answered
/// (``Handoff/wake``); otherwise the caller gets them as a ``Release`` to hand on with ``deliver(_:)``, which waits
/// for room, before it answers the upload (so memory stays bounded when the next stage is behind). ``add(_:)`` does
/// both.
public final class TraceAssembler: Service, Sendable {
    private struct Inner {
        var state: TraceAssemblyState
        /// The timer armed for the state's next deadline (a wait running out), and that deadline.
        var timer: Task<Void, Never>?
        var timerDeadline: ContinuousClock.Instant?
        var stopped = false
        /// Keys of traces released but not yet taken by the next stage: still "held" for ``holding(_:)``, so the
        /// intake journal never settles an upload whose trace is between the assembler and the next stage.
        var releasing: [AssemblyKey: Int] = [:]
    }

    private let inner: NIOLockedValueBox<Inner>  // NIO's lock: TSan sees it
    private let offer: Offer?
    private let output: @Sendable ([AssembledTrace]) async -> Void
    private let logger: Logger
    /// The time waits are measured on and the timer sleeps on (the continuous clock; a manual one in tests).
    private let clock: any DeadlineClock

    /// Traces an add released that the next stage could not take at once; hand them on with ``deliver(_:)``.
    public struct Release: Sendable {
        let traces: [AssembledTrace]
        let keys: [AssemblyKey]
    }

    /// Hands ready traces to the next stage if it has room now: whether it took them (`false`: it has not, or has
    /// ended), and the wake of its task when that task was waiting for them (called by whoever adds, after it has
    /// answered; dropped uncalled, it wakes the task as it goes).
    public typealias Offer = @Sendable ([AssembledTrace]) -> (taken: Bool, wake: (@Sendable () -> Void)?)

    /// What an add without waiting leaves to its caller.
    public struct Handoff: Sendable {
        /// Traces the next stage could not take now: hand them on with ``deliver(_:)`` before answering the upload.
        public var release: Release?
        /// Wakes the next stage's task for the traces it took: call it after the upload is answered.
        public var wake: (@Sendable () -> Void)?

        /// Nothing left to do.
        public static let none = Handoff(release: nil, wake: nil)
    }

    /// Creates an assembler.
    /// - Parameters:
    ///   - settings: waits and limits.
    ///   - offer: hands ready traces to the next stage if it has room now (``Offer``).
    ///   - output: receives ready traces `offer` did not take (the next stage's bounded input: it may wait while that
    ///     stage is behind, which holds up the upload that completed them, so memory stays bounded).
    ///   - clock: the time waits are measured on.
    public init(
        settings: AssemblySettings, logger: Logger, clock: any DeadlineClock = SystemDeadlineClock(),
        offer: Offer? = nil, output: @escaping @Sendable ([AssembledTrace]) async -> Void
    ) {
        self.inner = NIOLockedValueBox(Inner(state: TraceAssemblyState(settings: settings)))
        self.clock = clock
        self.offer = offer
        self.output = output
        self.logger = logger
    }

    deinit { inner.withLockedValue { $0.timer?.cancel() } }

    /// Adds the spans of one upload, and hands on the traces they complete (waiting while the next stage is full).
    public func add(_ batches: [SpanBatch]) async {
        await finish(addNow(batches))
    }

    /// Adds the spans of one upload without waiting.
    /// - Returns: the traces they completed that the next stage could not take now, and the wake of the next stage
    ///   for those it took.
    public func addNow(_ batches: [SpanBatch]) -> Handoff {
        let now = clock.now
        let ready = inner.withLockedValue { inner in
            var ready: [AssembledTrace] = []
            for batch in batches { ready.append(contentsOf: inner.state.add(batch, now: now)) }
            armTimer(&inner)
            return Self.markReleasing(ready, in: &inner)
        }
        return handOn(ready)
    }

    /// Adds a trace's info (`StartTraceV3`, v2 records), and hands on the trace it completes.
    /// - Returns: whether spans of this trace had already arrived (then they came over `/v1/traces`).
    @discardableResult
    public func add(info: TraceInfo) async -> Bool {
        let (hadSpans, handoff) = addNow(info: info)
        await finish(handoff)
        return hadSpans
    }

    /// ``add(info:)`` without waiting: whether spans of the trace had arrived, and what is left of handing on the
    /// trace it completed.
    public func addNow(info: TraceInfo) -> (hadSpans: Bool, handoff: Handoff) {
        let now = clock.now
        let (hadSpans, late, ready) = inner.withLockedValue { inner in
            let hadSpans = info.otelTraceID.map { inner.state.hasSpans(traceID: Data($0)) } ?? false
            let lateBefore = inner.state.lateTraceInfos
            let ready = inner.state.add(info: info, now: now)
            armTimer(&inner)
            return (hadSpans, inner.state.lateTraceInfos > lateBefore, Self.markReleasing(ready, in: &inner))
        }
        if late {
            logger.info(
                "trace info arrived after its spans were exported; trace-level attributes are missing from it",
                metadata: ["trace_id": "\(info.traceID)"])
        }
        return (hadSpans, handOn(ready))
    }

    /// Hands released traces to the next stage, waiting while it is full.
    public func deliver(_ release: Release) async {
        await output(release.traces)
        released(release.keys)
    }

    /// Does what an add left, at once: wakes the next stage, delivers what it could not take.
    private func finish(_ handoff: Handoff) async {
        handoff.wake?()
        if let release = handoff.release { await deliver(release) }
    }

    /// Which of `keys` the assembler still holds data for.
    public func holding(_ keys: Set<AssemblyKey>) -> Set<AssemblyKey> {
        inner.withLockedValue { inner in
            keys.filter { key in
                if inner.releasing[key] != nil { return true }
                switch key {
                case .trace(let traceID): return inner.state.isHolding(traceID: traceID)
                case .request(let requestID): return inner.state.isHolding(requestID: requestID)
                }
            }
        }
    }

    /// Whether spans of the trace have arrived.
    public func hasSpans(traceID: Data) -> Bool { inner.withLockedValue { $0.state.hasSpans(traceID: traceID) } }

    /// Counters for observability: duplicates dropped, late infos, traces held.
    public var statistics: (duplicateSpans: Int, lateTraceInfos: Int, tracesInFlight: Int) {
        inner.withLockedValue { ($0.state.duplicateSpans, $0.state.lateTraceInfos, $0.state.tracesInFlight) }
    }

    /// Releases traces as their waits run out (a timer armed for the next deadline, re-armed when an upload brings
    /// an earlier one) until shutdown, then releases everything.
    public func run() async throws {
        inner.withLockedValue { armTimer(&$0) }
        try? await gracefulShutdown()
        let remaining = inner.withLockedValue { inner in
            inner.stopped = true
            inner.timer?.cancel()
            return Self.markReleasing(inner.state.drain(now: clock.now), in: &inner)
        }
        if !remaining.traces.isEmpty {
            logger.info("releasing traces held at shutdown", metadata: ["count": "\(remaining.traces.count)"])
        }
        await finish(handOn(remaining))
    }

    /// Arms the timer for the state's next deadline, unless one is armed for that deadline or an earlier one.
    private func armTimer(_ inner: inout Inner) {
        guard !inner.stopped, let deadline = inner.state.nextDeadline() else { return }
        if let armed = inner.timerDeadline, armed <= deadline { return }
        inner.timer?.cancel()
        inner.timerDeadline = deadline
        // Weak: a sleeping timer must not keep an assembler nobody runs any more alive (deinit cancels it).
        let clock = self.clock
        inner.timer = Task { [weak self] in
            try? await clock.sleep(until: deadline)
            guard !Task.isCancelled else { return }
            await self?.timerFired(deadline: deadline)
        }
    }

    private func timerFired(deadline: ContinuousClock.Instant) async {
        let now = clock.now
        let expired = inner.withLockedValue { inner -> Release in
            if inner.timerDeadline == deadline {
                inner.timer = nil
                inner.timerDeadline = nil
            }
            let expired = inner.state.expire(now: now)
            armTimer(&inner)
            return Self.markReleasing(expired, in: &inner)
        }
        await finish(handOn(expired))
    }

    /// Marks traces just taken out of the state as releasing, under the same lock, so ``holding(_:)`` never sees
    /// a moment where a released trace is neither held nor on its way.
    private static func markReleasing(_ traces: [AssembledTrace], in inner: inout Inner) -> Release {
        let keys = traces.flatMap { [AssemblyKey.trace($0.traceID), .request($0.mlflowTraceID)] }
        for key in keys { inner.releasing[key, default: 0] += 1 }
        return Release(traces: traces, keys: keys)
    }

    /// Offers released traces to the next stage; what it cannot take now comes back as a ``Release`` (its keys still
    /// count as held until it is delivered), with the stage's wake for what it took.
    private func handOn(_ release: Release) -> Handoff {
        guard !release.traces.isEmpty else { return .none }
        for trace in release.traces where trace.completion != .complete {
            logger.debug(
                "trace released before complete",
                metadata: ["trace_id": "\(trace.mlflowTraceID)", "reason": "\(trace.completion.rawValue)", "spans": "\(trace.spans.count)"]
            )
        }
        if let offer {
            let (taken, wake) = offer(release.traces)
            if taken {
                released(release.keys)
                return Handoff(release: nil, wake: wake)
            }
        }
        return Handoff(release: release, wake: nil)
    }

    private func released(_ keys: [AssemblyKey]) {
        inner.withLockedValue { inner in
            for key in keys {
                if let count = inner.releasing[key], count > 1 { inner.releasing[key] = count - 1 } else { inner.releasing[key] = nil }
            }
        }
    }
}
