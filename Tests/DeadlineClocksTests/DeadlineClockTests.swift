import DeadlineClocks
import TestSupport
import Testing

/// The system clock the proxy runs on, and the manual clock the timer tests run on (its sleepers wake exactly when
/// the test moves time past their deadline, and a cancelled sleep ends with `CancellationError` on both).
@Suite(.timeLimit(.minutes(1))) struct DeadlineClockTests {
    @Test func theSystemClockReturnsAtOnceForAPastDeadlineAndEndsASleepOnCancellation() async throws {
        let clock = SystemDeadlineClock()
        let before = clock.now
        try await clock.sleep(until: before - .seconds(1))
        #expect(clock.now >= before)
        let sleeping = Task { try await clock.sleep(until: clock.now + .seconds(3600)) }
        sleeping.cancel()
        await #expect(throws: CancellationError.self) { try await sleeping.value }
    }

    @Test func aManualSleeperWakesOnlyWhenTimeReachesItsDeadline() async throws {
        let clock = ManualClock()
        let deadline = clock.now + .seconds(10)
        let (woke, continuation) = AsyncStream<ContinuousClock.Instant>.makeStream()
        let sleeping = Task {
            try await clock.sleep(until: deadline)
            continuation.yield(clock.now)
        }
        #expect(await clock.waitForSleepers())
        clock.advance(by: .seconds(9))
        #expect(clock.sleepers == 1, "not yet")
        clock.advance(by: .seconds(1))
        var iterator = woke.makeAsyncIterator()
        #expect(await iterator.next() == deadline)
        try await sleeping.value
        #expect(clock.sleepers == 0)
    }

    @Test func aCancelledManualSleepThrows() async {
        let clock = ManualClock()
        let sleeping = Task { try await clock.sleep(until: clock.now + .seconds(1)) }
        #expect(await clock.waitForSleepers())
        sleeping.cancel()
        await #expect(throws: CancellationError.self) { try await sleeping.value }
        #expect(clock.sleepers == 0)
    }
}
