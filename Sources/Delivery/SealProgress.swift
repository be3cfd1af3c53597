import NIOConcurrencyHelpers

/// How many of a pipeline's submissions are sealed into its queue, and the callers waiting for a count: the pipeline
/// advances it as it seals and ends it when it stops; ``ExportPipeline/sealSubmitted()`` waits on it (the intake
/// journal's checkpoint settles uploads on that event).
final class SealProgress: Sendable {
    private struct Waiter {
        var target: UInt64
        var continuation: CheckedContinuation<Void, Never>
    }
    private struct State {
        var sealed: UInt64 = 0
        var ended = false
        var waiters: [UInt64: Waiter] = [:]
        var nextID: UInt64 = 0
    }
    private let state = NIOLockedValueBox(State())  // NIO's lock: TSan sees it (not Synchronization.Mutex)

    /// Returns once `target` submissions are sealed, the pipeline ended, or the calling task is cancelled.
    func wait(until target: UInt64) async {
        let id = state.withLockedValue { state in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // Decided and registered under one lock: an advance (or a cancellation) between looking and waiting
                // cannot be missed.
                let done = state.withLockedValue { state in
                    if state.sealed >= target || state.ended || Task.isCancelled { return true }
                    state.waiters[id] = Waiter(target: target, continuation: continuation)
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            state.withLockedValue { $0.waiters.removeValue(forKey: id) }?.continuation.resume()
        }
    }

    /// Records that the first `count` submissions are sealed and resumes the callers waiting for no more.
    func advance(to count: UInt64) { resumeWaiters { $0.sealed = max($0.sealed, count) } }

    /// Records that the pipeline ended: every caller is resumed, and later ones return at once.
    func end() { resumeWaiters { $0.ended = true } }

    private func resumeWaiters(after change: (inout State) -> Void) {
        let ready = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            change(&state)
            let ids = state.waiters.filter { state.ended || $0.value.target <= state.sealed }.map(\.key)
            return ids.compactMap { state.waiters.removeValue(forKey: $0)?.continuation }
        }
        for continuation in ready { continuation.resume() }
    }
}
