import DeadlineClocks
import Foundation
import Logging
import MLflowWire
import ServiceLifecycle

/// Collects spans and trace info from every upload path and hands each trace on once it is complete
/// (or its wait ran out). Runs as a `Service`: a timer releases expired traces, and graceful shutdown
/// releases everything still held.
public actor TraceAssembler: Service {
    private var state: TraceAssemblyState
    private let output: @Sendable ([AssembledTrace]) async -> Void
    private let logger: Logger
    /// The time waits are measured on and the timer sleeps on (the continuous clock; a manual one in tests).
    private let clock: any DeadlineClock
    /// The timer armed for the state's next deadline (a wait running out), and that deadline.
    private var timer: Task<Void, Never>?
    private var timerDeadline: ContinuousClock.Instant?
    private var stopped = false
    /// Keys of traces released but not yet taken by the output (it may wait, and the actor serves other calls
    /// meanwhile): still "held" for ``holding(_:)``, so the intake journal never settles an upload whose trace is
    /// between the assembler and the next stage.
    private var releasing: [AssemblyKey: Int] = [:]

    /// Creates an assembler.
    /// - Parameters:
    ///   - settings: waits and limits.
    ///   - output: receives ready traces (the next stage's bounded input: it may wait while that stage is behind,
    ///     which holds up the upload that completed them, so memory stays bounded).
    ///   - clock: the time waits are measured on.
    public init(
        settings: AssemblySettings, logger: Logger, clock: any DeadlineClock = SystemDeadlineClock(),
        output: @escaping @Sendable ([AssembledTrace]) async -> Void
    ) {
        self.state = TraceAssemblyState(settings: settings)
        self.clock = clock
        self.output = output
        self.logger = logger
    }

    deinit { timer?.cancel() }

    /// Adds the spans of one upload.
    public func add(_ batches: [SpanBatch]) async {
        let now = clock.now
        var ready: [AssembledTrace] = []
        for batch in batches { ready.append(contentsOf: state.add(batch, now: now)) }
        armTimer()
        await emit(ready)
    }

    /// Adds a trace's info (`StartTraceV3`).
    /// - Returns: whether spans of this trace had already arrived (then they came over `/v1/traces`).
    @discardableResult
    public func add(info: TraceInfo) async -> Bool {
        let hadSpans = info.otelTraceID.map { state.hasSpans(traceID: Data($0)) } ?? false
        let lateBefore = state.lateTraceInfos
        let ready = state.add(info: info, now: clock.now)
        armTimer()
        if state.lateTraceInfos > lateBefore {
            logger.info(
                "trace info arrived after its spans were exported; trace-level attributes are missing from it",
                metadata: ["trace_id": "\(info.traceID)"])
        }
        await emit(ready)
        return hadSpans
    }

    /// Which of `keys` the assembler still holds data for.
    public func holding(_ keys: Set<AssemblyKey>) -> Set<AssemblyKey> {
        keys.filter { key in
            if releasing[key] != nil { return true }
            switch key {
            case .trace(let traceID): return state.isHolding(traceID: traceID)
            case .request(let requestID): return state.isHolding(requestID: requestID)
            }
        }
    }

    /// Whether spans of the trace have arrived.
    public func hasSpans(traceID: Data) -> Bool { state.hasSpans(traceID: traceID) }

    /// Counters for observability: duplicates dropped, late infos, traces held.
    public var statistics: (duplicateSpans: Int, lateTraceInfos: Int, tracesInFlight: Int) {
        (state.duplicateSpans, state.lateTraceInfos, state.tracesInFlight)
    }

    /// Releases traces as their waits run out (a timer armed for the next deadline, re-armed when an upload brings
    /// an earlier one) until shutdown, then releases everything.
    public func run() async throws {
        armTimer()
        try? await gracefulShutdown()
        stopped = true
        timer?.cancel()
        let remaining = state.drain(now: clock.now)
        if !remaining.isEmpty { logger.info("releasing traces held at shutdown", metadata: ["count": "\(remaining.count)"]) }
        await emit(remaining)
    }

    private func expire() async {
        await emit(state.expire(now: clock.now))
    }

    /// Arms the timer for the state's next deadline, unless one is armed for that deadline or an earlier one.
    private func armTimer() {
        guard !stopped, let deadline = state.nextDeadline() else { return }
        if let armed = timerDeadline, armed <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        // Weak: a sleeping timer must not keep an assembler nobody runs any more alive (deinit cancels it).
        let clock = self.clock
        timer = Task { [weak self] in
            try? await clock.sleep(until: deadline)
            guard !Task.isCancelled else { return }
            await self?.timerFired()
        }
    }

    private func timerFired() async {
        timer = nil
        timerDeadline = nil
        await expire()
        armTimer()
    }

    private func emit(_ traces: [AssembledTrace]) async {
        guard !traces.isEmpty else { return }
        for trace in traces where trace.completion != .complete {
            logger.debug(
                "trace released before complete",
                metadata: ["trace_id": "\(trace.mlflowTraceID)", "reason": "\(trace.completion.rawValue)", "spans": "\(trace.spans.count)"]
            )
        }
        let keys = traces.flatMap { [AssemblyKey.trace($0.traceID), .request($0.mlflowTraceID)] }
        for key in keys { releasing[key, default: 0] += 1 }
        await output(traces)
        for key in keys {
            if let count = releasing[key], count > 1 { releasing[key] = count - 1 } else { releasing[key] = nil }
        }
    }
}
