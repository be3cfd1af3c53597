/// The time the proxy's timers read and wait on: ``SystemDeadlineClock`` in the proxy, a manual clock in tests (so the
/// assembler's waits, batching deadlines, retry backoff and credential holds are tested without sleeping).
public protocol DeadlineClock: Sendable {
    /// The current instant.
    var now: ContinuousClock.Instant { get }
    /// Sleeps until `deadline`. - Throws: `CancellationError` when the task is cancelled first.
    func sleep(until deadline: ContinuousClock.Instant) async throws
}

/// The continuous clock.
public struct SystemDeadlineClock: DeadlineClock {
    /// The system's continuous clock.
    public init() {}
    /// `ContinuousClock.now`.
    public var now: ContinuousClock.Instant { .now }
    /// `Task.sleep(until:clock:)` on the continuous clock.
    public func sleep(until deadline: ContinuousClock.Instant) async throws { try await Task.sleep(until: deadline, clock: .continuous) }
}
