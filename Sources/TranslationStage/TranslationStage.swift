import NIOConcurrencyHelpers
import OTLPProto
import OTLPTranslation
import ServiceLifecycle
import Synchronization
import TraceAssembly

/// The stage between assembly and delivery. Input: the traces the assembler releases, through a ``BoundedBuffer``
/// (the assembler waits while it is full, so memory stays bounded when translation falls behind). Output: each
/// trace with its translation into OTLP `ResourceSpans`, handed to `output` (fan-out to the destinations, span
/// metrics, the status page). Translation runs on the stage's own task, off the upload's answer.
///
/// At shutdown (after the assembler released everything) it translates what is buffered, then ends.
/// ``processedSubmitted()`` is the event the intake journal's checkpoint waits on: everything released before the
/// call has been handed on.
public final class TranslationStage: Service, Sendable {
    /// Receives one trace and its translation.
    public typealias Output = @Sendable (_ trace: AssembledTrace, _ translated: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) -> Void

    private let settings: TranslationSettings
    private let output: Output
    private let buffer: BoundedBuffer<(sequence: UInt64, traces: [AssembledTrace])>
    /// Releases taken (each numbered), and which have been handed on: every one up to `prefix`, and those in `done`
    /// beyond it (releases can reach the buffer out of order when several wait for room).
    private let submittedCount = Atomic<UInt64>(0)
    private struct Progress {
        var prefix: UInt64 = 0
        var done: Set<UInt64> = []
        var waiters: [(target: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
    }
    private let progress = NIOLockedValueBox(Progress())  // NIO's lock: TSan sees it

    /// A stage translating with `settings`; at most `capacity` releases wait for translation (few: what waits here is
    /// outside the assembler's byte budget, so the buffer only smooths, it does not store).
    public init(settings: TranslationSettings, capacity: Int = 8, output: @escaping Output) {
        self.settings = settings
        self.output = output
        buffer = BoundedBuffer(capacity: capacity)
    }

    /// Takes traces the assembler released; waits while `capacity` releases are waiting already. After the stage has
    /// ended, translates them on the caller's task (nothing is left behind).
    public func submit(_ traces: [AssembledTrace]) async {
        guard !traces.isEmpty else { return }
        // Counted before the wait: a checkpoint that asks after the assembler released these must wait for them.
        let sequence = submittedCount.add(1, ordering: .sequentiallyConsistent).newValue
        if !(await buffer.send((sequence, traces))) { process(sequence, traces) }
    }

    /// Takes traces the assembler released if there is room now, without waiting, leaving the wake of the stage's task
    /// to the caller (``BoundedBuffer/offer(_:)``): an event loop answers the upload first, then calls `wake`.
    /// - Returns: whether they were taken (`false`: full, or the stage has ended; ``submit(_:)`` them then), and the
    ///   wake of the stage's task if it was waiting for them.
    public func trySubmit(_ traces: [AssembledTrace]) -> (taken: Bool, wake: (@Sendable () -> Void)?) {
        guard !traces.isEmpty else { return (true, nil) }
        // Numbered only when taken (under the buffer's lock), so a refused offer leaves no gap in the sequence.
        return buffer.offer { (submittedCount.add(1, ordering: .sequentiallyConsistent).newValue, traces) }
    }

    /// Returns once every release submitted before the call has been translated and handed on.
    public func processedSubmitted() async {
        let target = submittedCount.load(ordering: .sequentiallyConsistent)
        await withCheckedContinuation { continuation in
            let done = progress.withLockedValue { progress -> Bool in
                if progress.prefix >= target { return true }
                progress.waiters.append((target, continuation))
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Translates until shutdown, then what is still buffered.
    public func run() async throws {
        await withGracefulShutdownHandler {
            while let (sequence, traces) = await buffer.next() { process(sequence, traces) }
        } onGracefulShutdown: {
            self.buffer.finish()
        }
    }

    private func process(_ sequence: UInt64, _ traces: [AssembledTrace]) {
        for trace in traces { output(trace, OTLPTraceTranslator.translate(trace, settings: settings)) }
        let ready = progress.withLockedValue { progress -> [CheckedContinuation<Void, Never>] in
            progress.done.insert(sequence)
            while progress.done.remove(progress.prefix + 1) != nil { progress.prefix += 1 }
            let prefix = progress.prefix
            let ready = progress.waiters.filter { $0.target <= prefix }.map(\.continuation)
            progress.waiters.removeAll { $0.target <= prefix }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }
}
