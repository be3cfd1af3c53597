import NIOConcurrencyHelpers
import Testing

@testable import Delivery

/// The event the intake journal's checkpoint waits on: a caller resumes once the pipeline sealed as many submissions
/// as it asked for (not before), when the pipeline ends, or when it is cancelled; many callers, many advances.
@Suite(.timeLimit(.minutes(1))) struct SealProgressTests {
    @Test func aWaiterResumesWhenItsCountIsSealedAndNotBefore() async {
        let progress = SealProgress()
        let resumed = NIOLockedValueBox(false)
        let waiting = Task {
            await progress.wait(until: 3)
            resumed.withLockedValue { $0 = true }
        }
        progress.advance(to: 2)
        try? await Task.sleep(for: .milliseconds(50))  // room for a wrong early resume to show
        #expect(!resumed.withLockedValue { $0 }, "two of three sealed: still waiting")
        progress.advance(to: 3)
        await waiting.value
        #expect(resumed.withLockedValue { $0 })
    }

    @Test func aCountAlreadySealedReturnsAtOnceAndAnEndedPipelineReleasesEveryone() async {
        let progress = SealProgress()
        progress.advance(to: 5)
        await progress.wait(until: 4)
        let waiters = (0..<20).map { index in Task { await progress.wait(until: 100 + UInt64(index)) } }
        progress.end()
        for waiter in waiters { await waiter.value }
        await progress.wait(until: 1_000)  // after the end: at once
    }

    @Test func aCancelledWaiterResumes() async {
        let progress = SealProgress()
        let waiting = Task { await progress.wait(until: 1) }
        waiting.cancel()
        await waiting.value
    }

    @Test func concurrentAdvancesAndWaitersLoseNoWakeUp() async {
        let progress = SealProgress()
        await withTaskGroup(of: Void.self) { group in
            for target in 1...500 { group.addTask { await progress.wait(until: UInt64(target)) } }
            group.addTask { for count in 1...500 { progress.advance(to: UInt64(count)) } }
        }
    }
}
