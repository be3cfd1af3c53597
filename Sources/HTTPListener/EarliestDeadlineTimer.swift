import NIOCore

/// One timer for the earliest of a channel handler's deadlines, on the handler's event loop. Arming it for an instant
/// later than the one it is armed for changes nothing: when it fires, its owner looks at what is due then and arms it
/// again for what is still ahead. So code that moves a deadline on every read or every request schedules nothing each
/// time; an owner whose deadlines all went away lets it fire, find nothing due, and stop.
public struct EarliestDeadlineTimer {
    private var scheduled: Scheduled<Void>?
    private var armedFor: NIODeadline?

    /// A timer that is not armed.
    public init() {}

    /// Whether the timer is armed for `deadline` or an earlier instant (arming it for `deadline` would change nothing).
    /// Callers on a hot path ask first, so that they make no `fire` closure (an allocation) when nothing is scheduled.
    public func covers(_ deadline: NIODeadline) -> Bool {
        guard scheduled != nil, let armedFor else { return false }
        return armedFor <= deadline
    }

    /// Arms the timer for `deadline` unless it ``covers(_:)`` it already; `fire` runs on `eventLoop` when it fires, and
    /// calls ``fired()`` first.
    public mutating func arm(for deadline: NIODeadline, on eventLoop: any EventLoop, _ fire: @escaping () -> Void) {
        if covers(deadline) { return }
        scheduled?.cancel()
        armedFor = deadline
        scheduled = eventLoop.assumeIsolated().scheduleTask(deadline: deadline, fire)
    }

    /// Records that the timer fired: call first thing in the `fire` closure, so that arming it again schedules.
    public mutating func fired() {
        scheduled = nil
        armedFor = nil
    }

    /// Cancels the timer.
    public mutating func cancel() {
        scheduled?.cancel()
        scheduled = nil
        armedFor = nil
    }
}
