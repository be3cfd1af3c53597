import Foundation
import Logging
import MLflowWire
import ServiceLifecycle

/// Collects spans and trace info from every upload path and hands each trace on once it is complete
/// (or its wait ran out). Runs as a `Service`: a timer releases expired traces, and graceful shutdown
/// releases everything still held.
public actor TraceAssembler: Service {
    private var state: TraceAssemblyState
    private let output: @Sendable ([AssembledTrace]) -> Void
    private let logger: Logger
    private let tick: Duration

    /// Creates an assembler.
    /// - Parameters:
    ///   - settings: waits and limits.
    ///   - tick: how often expired traces are looked for.
    ///   - output: receives ready traces; must return quickly (it is called on the upload path).
    public init(
        settings: AssemblySettings, tick: Duration = .milliseconds(200), logger: Logger,
        output: @escaping @Sendable ([AssembledTrace]) -> Void
    ) {
        self.state = TraceAssemblyState(settings: settings)
        self.output = output
        self.logger = logger
        self.tick = tick
    }

    /// Adds the spans of one upload.
    public func add(_ batches: [SpanBatch]) {
        let now = ContinuousClock.now
        var ready: [AssembledTrace] = []
        for batch in batches { ready.append(contentsOf: state.add(batch, now: now)) }
        emit(ready)
    }

    /// Adds a trace's info (`StartTraceV3`).
    /// - Returns: whether spans of this trace had already arrived (then they came over `/v1/traces`).
    @discardableResult
    public func add(info: TraceInfo) -> Bool {
        let hadSpans = info.otelTraceID.map { state.hasSpans(traceID: Data($0)) } ?? false
        let lateBefore = state.lateTraceInfos
        emit(state.add(info: info, now: .now))
        if state.lateTraceInfos > lateBefore {
            logger.info(
                "trace info arrived after its spans were exported; trace-level attributes are missing from it",
                metadata: ["trace_id": "\(info.traceID)"])
        }
        return hadSpans
    }

    /// Which of `keys` the assembler still holds data for: `t:<32 hex>` names a trace id, `r:<id>` a v2 request id.
    public func holding(_ keys: Set<String>) -> Set<String> {
        keys.filter { key in
            if key.hasPrefix("t:"), let traceID = MLflowTraceID.otelTraceID("tr-" + key.dropFirst(2)) {
                return state.isHolding(traceID: Data(traceID))
            }
            if key.hasPrefix("r:") { return state.isHolding(requestID: String(key.dropFirst(2))) }
            return false
        }
    }

    /// Whether spans of the trace have arrived.
    public func hasSpans(traceID: Data) -> Bool { state.hasSpans(traceID: traceID) }

    /// Counters for observability: duplicates dropped, late infos, traces held.
    public var statistics: (duplicateSpans: Int, lateTraceInfos: Int, tracesInFlight: Int) {
        (state.duplicateSpans, state.lateTraceInfos, state.tracesInFlight)
    }

    /// Releases expired traces until shutdown, then releases everything.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.tick)
                await self.expire()
            }
        }
        let remaining = state.drain(now: .now)
        if !remaining.isEmpty { logger.info("releasing traces held at shutdown", metadata: ["count": "\(remaining.count)"]) }
        emit(remaining)
    }

    private func expire() {
        emit(state.expire(now: .now))
    }

    private func emit(_ traces: [AssembledTrace]) {
        guard !traces.isEmpty else { return }
        for trace in traces where trace.completion != .complete {
            logger.debug(
                "trace released before complete",
                metadata: ["trace_id": "\(trace.mlflowTraceID)", "reason": "\(trace.completion.rawValue)", "spans": "\(trace.spans.count)"]
            )
        }
        output(traces)
    }
}
