import HTTPListener
import NIOConcurrencyHelpers
import ServiceLifecycle

/// The dual-mode copies being decoded and assembled after their upload was answered (``ProxyResponder``), so
/// that shutdown waits for them before the assembler releases what it holds: a copy started just before SIGTERM
/// is still exported. Each copy also keeps its body's share of the ``BodyMemoryBudget`` until it is done, so
/// copies are bounded by the same budget as uploads.
public final class DualCopies: Service, Sendable {
    private struct State {
        var running = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = NIOLockedValueBox(State())  // NIO's lock: TSan sees it (not Synchronization.Mutex)

    /// No copies yet.
    public init() {}

    /// Copies running now.
    public var running: Int { state.withLockedValue { $0.running } }

    /// Runs `work` as a tracked copy, in its own task (the client's answer does not wait for it).
    public func start(_ work: @escaping @Sendable () async -> Void) {
        state.withLockedValue { $0.running += 1 }
        Task {
            await work()
            self.finished()
        }
    }

    private func finished() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLockedValue { state in
            state.running -= 1
            guard state.running == 0 else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once no copy is running.
    public func idle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLockedValue { state in
                if state.running == 0 { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Waits for shutdown, then for the copies still running (the service group stops this one after the HTTP
    /// server and before the assembler; the shutdown deadline bounds the wait).
    public func run() async throws {
        try? await gracefulShutdown()
        await idle()
    }
}
