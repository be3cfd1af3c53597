import DeadlineClocks
import Logging
import NIOConcurrencyHelpers
import ProxyConfig
import ProxySettings
import SharedSettings
import TestSupport
import Testing

@testable import OTLPExport

/// The retry schedule of OTLP exports (OTLPRetry) on a manual clock: the backoff steps, the time budget, a server's
/// requested delay, permanent failures and the stop signal, exactly and without sleeping.
@Suite(.timeLimit(.minutes(1))) struct OTLPRetryTests {
    /// Moves `clock` forward a millisecond at a time whenever something sleeps on it, until `body` returns.
    static func drivingClock<T: Sendable>(_ clock: ManualClock, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let work = Task { try await body() }
        let driver = Task {
            for _ in 0..<10_000_000 where !Task.isCancelled {
                if clock.sleepers > 0 { clock.advance(by: .milliseconds(1)) } else { await Task.yield() }
            }
        }
        defer { driver.cancel() }
        return try await work.value
    }

    @Test func backoffGrowsToItsCeilingAndStopsBeforeTheBudgetRunsOut() async throws {
        let clock = ManualClock()
        let started = clock.now
        let policy = RetryPolicy(
            initialInterval: .milliseconds(20), maxInterval: .milliseconds(40), maxElapsedTime: .milliseconds(300), multiplier: 1.5,
            randomizationFactor: 0)
        let attempts = NIOLockedValueBox<[Duration]>([])
        let failure = try await Self.drivingClock(clock) { () -> ExportFailure? in
            do {
                _ = try await OTLPRetry.run(policy: policy, destination: "d", logger: Logger(label: "test"), clock: clock) {
                    attempts.withLockedValue { $0.append(clock.now - started) }
                    return .retryable(ExportFailure(reason: .http5xx, message: "503"), retryAfter: nil)
                }
                return nil
            } catch {
                return error as? ExportFailure
            }
        }
        // Waits of 20, 30, 40, 40 … ms: attempts at 0, 20, 50, 90 … 290 ms; the next wait would end at 330 ms, past
        // the budget, so it is given up at once.
        #expect(attempts.withLockedValue { $0 } == [0, 20, 50, 90, 130, 170, 210, 250, 290].map { Duration.milliseconds($0) })
        #expect(failure?.reason == .http5xx && failure?.message.contains("gave up after 9 attempts") == true)
        #expect(clock.now - started == .milliseconds(290))
    }

    @Test func aServersDelayIsWaitedAtLeastAndPermanentFailuresAreNotRetried() async throws {
        let clock = ManualClock()
        let policy = RetryPolicy(initialInterval: .milliseconds(1), maxElapsedTime: .seconds(10), randomizationFactor: 0)
        let attempts = NIOLockedValueBox<[ContinuousClock.Instant]>([])
        let rejected = try await Self.drivingClock(clock) {
            try await OTLPRetry.run(policy: policy, destination: "d", logger: Logger(label: "test"), clock: clock) {
                let count = attempts.withLockedValue { attempts in
                    attempts.append(clock.now)
                    return attempts.count
                }
                return count == 1
                    ? .retryable(ExportFailure(reason: .http4xx, message: "429"), retryAfter: .milliseconds(300)) : .delivered(rejectedSpans: 2)
            }
        }
        let times = attempts.withLockedValue { $0 }
        #expect(rejected == 2 && times.count == 2)
        #expect(times[1] - times[0] == .milliseconds(300))

        var permanentAttempts = 0
        await #expect(throws: ExportFailure.self) {
            _ = try await OTLPRetry.run(policy: policy, destination: "d", logger: Logger(label: "test"), clock: clock) {
                permanentAttempts += 1
                return .permanent(ExportFailure(reason: .http4xx, message: "400"))
            }
        }
        #expect(permanentAttempts == 1)
        // A server asking for more than the budget allows: given up at once, not after waiting.
        let short = RetryPolicy(initialInterval: .milliseconds(1), maxElapsedTime: .seconds(1))
        let before = clock.now
        await #expect(throws: ExportFailure.self) {
            _ = try await OTLPRetry.run(policy: short, destination: "d", logger: Logger(label: "test"), clock: clock) {
                .retryable(ExportFailure(reason: .http4xx, message: "429"), retryAfter: .seconds(60))
            }
        }
        #expect(clock.now == before)
    }

    @Test func disabledRetriesFailAtOnce() async {
        var attempts = 0
        await #expect(throws: ExportFailure.self) {
            _ = try await OTLPRetry.run(
                policy: RetryPolicy(enabled: false), destination: "d", logger: Logger(label: "test"), clock: ManualClock()
            ) {
                attempts += 1
                return .retryable(ExportFailure(reason: .connection, message: "refused"), retryAfter: nil)
            }
        }
        #expect(attempts == 1)
    }

    @Test func theStopSignalEndsAWaitAndIsNotRetriedAfter() async throws {
        let clock = ManualClock()
        let stop = StopSignal(clock: clock)
        let policy = RetryPolicy(initialInterval: .seconds(60), maxElapsedTime: nil, randomizationFactor: 0)
        let attempts = NIOLockedValueBox(0)
        let run = Task { () -> ExportFailure? in
            do {
                _ = try await StopSignal.$retries.withValue(stop) {
                    try await OTLPRetry.run(policy: policy, destination: "d", logger: Logger(label: "test"), clock: clock) {
                        attempts.withLockedValue { $0 += 1 }
                        return .retryable(ExportFailure(reason: .http5xx, message: "503"), retryAfter: nil)
                    }
                }
                return nil
            } catch {
                return error as? ExportFailure
            }
        }
        #expect(await clock.waitForSleepers(1))  // waiting out the first backoff
        stop.stop()  // the clock never moves: only the signal can end the wait
        let failure = await run.value as ExportFailure?
        #expect(failure?.isCancellation == true)
        #expect(attempts.withLockedValue { $0 } == 1)
    }
}
