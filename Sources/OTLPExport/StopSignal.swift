import DeadlineClocks
import NIOConcurrencyHelpers

/// A signal that ends waits: once set, every wait in progress ends at once and later ones return immediately.
///
/// A pipeline sets one when it starts draining (its batching timer and a credentials hold stop waiting), and, with a
/// spool, another that its deliveries see as ``retries``: a failed attempt is then not retried (the delivery fails as
/// cancelled, its batch stays on disk for the next start) and a backoff in progress ends, so shutdown and a reload's
/// handover are quick.
public final class StopSignal: Sendable {
    private struct State {
        var stopped = false
        var sleeps: [UInt64: Task<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }
    private let state = NIOLockedValueBox(State())  // NIO's lock: TSan sees it
    /// The clock waits run on.
    public let clock: any DeadlineClock

    /// A signal, not set, whose waits run on `clock`.
    public init(clock: any DeadlineClock = SystemDeadlineClock()) { self.clock = clock }

    /// Sets it, ending every wait in progress.
    public func stop() {
        let sleeps = state.withLockedValue { state in
            state.stopped = true
            defer { state.sleeps = [:] }
            return Array(state.sleeps.values)
        }
        for sleep in sleeps { sleep.cancel() }
    }

    /// Whether it is set.
    public var isStopped: Bool { state.withLockedValue { $0.stopped } }

    /// The signal the current delivery's retry loop obeys, if its pipeline gave one.
    @TaskLocal public static var retries: StopSignal?

    /// Waits until `deadline`, or less when the signal is set or the task is cancelled meanwhile.
    /// - Returns: whether the wait ran to its deadline.
    @discardableResult
    public func wait(until deadline: ContinuousClock.Instant) async -> Bool {
        let clock = self.clock
        let sleep = Task<Void, Never> { try? await clock.sleep(until: deadline) }
        let id: UInt64? = state.withLockedValue { state in
            guard !state.stopped else { return nil }
            state.nextID += 1
            state.sleeps[state.nextID] = sleep
            return state.nextID
        }
        guard let id else {
            sleep.cancel()
            return false
        }
        await withTaskCancellationHandler {
            await sleep.value
        } onCancel: {
            sleep.cancel()
        }
        state.withLockedValue { _ = $0.sleeps.removeValue(forKey: id) }
        return !isStopped && !Task.isCancelled && clock.now >= deadline
    }
}
