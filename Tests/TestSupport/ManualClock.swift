import DeadlineClocks
import NIOConcurrencyHelpers

/// A clock that moves only when a test advances it: sleepers wake when the time passes their deadline, so batching
/// deadlines, backoff and holds are tested without sleeping and without races against the wall clock.
public final class ManualClock: DeadlineClock {
    private struct Sleeper {
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Void, any Error>
    }
    private struct State {
        var offset: Duration = .zero
        var sleepers: [UInt64: Sleeper] = [:]
        var cancelled: Set<UInt64> = []
        var nextID: UInt64 = 0
    }
    private let base = ContinuousClock.now
    private let state = NIOLockedValueBox(State())

    /// A clock at an arbitrary start instant.
    public init() {}

    /// The start instant plus what the test advanced.
    public var now: ContinuousClock.Instant { base + state.withLockedValue { $0.offset } }

    /// How many tasks sleep on the clock now.
    public var sleepers: Int { state.withLockedValue { $0.sleepers.count } }

    /// Suspends until the test advances the clock to `deadline` (at once if it is there), or the task is cancelled.
    public func sleep(until deadline: ContinuousClock.Instant) async throws {
        let id = state.withLockedValue { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = state.withLockedValue { state in
                    if state.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                    if base + state.offset >= deadline { return .success(()) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let sleeper = state.withLockedValue { state -> Sleeper? in
                guard let sleeper = state.sleepers.removeValue(forKey: id) else {
                    state.cancelled.insert(id)  // not registered yet: the registration sees it
                    return nil
                }
                return sleeper
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock forward and wakes every sleeper whose deadline it reached.
    public func advance(by duration: Duration) {
        let due = state.withLockedValue { state -> [CheckedContinuation<Void, any Error>] in
            state.offset += duration
            let now = base + state.offset
            let ids = state.sleepers.filter { $0.value.deadline <= now }.map(\.key)
            return ids.compactMap { state.sleepers.removeValue(forKey: $0)?.continuation }
        }
        for continuation in due { continuation.resume() }
    }

    /// Returns once at least `count` tasks sleep on the clock (a timer was armed), yielding meanwhile; gives up after
    /// `limit` yields so that a test whose timer is never armed fails instead of hanging.
    @discardableResult
    public func waitForSleepers(_ count: Int = 1, limit: Int = 1_000_000) async -> Bool {
        for _ in 0..<limit {
            if sleepers >= count { return true }
            await Task.yield()
        }
        return false
    }
}
