import DeadlineClocks
import Logging
import NIOConcurrencyHelpers
import ProxyObservability
import SharedSettings

/// What one delivery attempt came to.
enum AttemptOutcome: Sendable {
    /// Delivered; `rejectedSpans` from a partial success.
    case delivered(rejectedSpans: Int)
    /// A failure the OTLP specification calls transient (HTTP 429/502/503/504, gRPC UNAVAILABLE …), with the
    /// server's requested delay when it gave one (`Retry-After`, `RetryInfo`).
    case retryable(ExportFailure, retryAfter: Duration?)
    case permanent(ExportFailure)
}

/// The retry loop both transports share, as the OpenTelemetry Collector's `retry_on_failure` does it:
/// exponential backoff (`initialInterval` × `multiplier`ⁿ up to `maxInterval`) with ±`randomizationFactor`
/// jitter; a server's requested delay is waited at least; and once the next wait would take the batch past
/// `maxElapsedTime`, it is given up at once rather than after a last pointless wait.
enum OTLPRetry {
    static func run(
        policy: RetryPolicy, destination: String, logger: Logger, status: StatusBoard? = nil, counters: ProxyCounters? = nil,
        clock: any DeadlineClock = SystemDeadlineClock(), attempt: () async -> AttemptOutcome
    ) async throws(ExportFailure) -> Int {
        let started = clock.now
        var interval = policy.initialInterval
        var number = 1
        while true {
            switch await attempt() {
            case .delivered(let rejected):
                return rejected
            case .permanent(let failure):
                throw failure
            case .retryable(var failure, let retryAfter):
                guard policy.enabled else { throw failure }
                if StopSignal.retries?.isStopped == true {
                    throw ExportFailure(reason: .cancelled, message: "not retried while shutting down (\(failure.message))")
                }
                let wait = nextWait(backoff: interval, retryAfter: retryAfter, policy: policy)
                let elapsed = clock.now - started
                if let budget = policy.maxElapsedTime, elapsed + wait > budget {
                    failure.message +=
                        "; gave up after \(number) attempt\(number == 1 ? "" : "s") in \(elapsed.roundedSeconds) s"
                        + " (retry_on_failure.max_elapsed_time \(budget.roundedSeconds) s)"
                    throw failure
                }
                status?.failed(destination: destination, error: failure.message, final: false)
                counters?.increment(.exportRetries, destination)
                logger.debug(
                    "export failed, retrying",
                    metadata: ["destination": "\(destination)", "attempt": "\(number)", "wait": "\(wait)", "error": "\(failure)"]
                )
                // The wait, which a stop signal or cancellation ends at once.
                if let stop = StopSignal.retries {
                    await stop.wait(until: clock.now + wait)
                } else {
                    try? await clock.sleep(until: clock.now + wait)
                }
                if StopSignal.retries?.isStopped == true || Task.isCancelled {
                    throw ExportFailure(reason: .cancelled, message: "shutdown while waiting to retry (\(failure.message))")
                }
                interval = min(interval * policy.multiplier, policy.maxInterval)
                number += 1
            }
        }
    }

    /// The wait before the next attempt: the backoff with jitter, but never less than the server asked for.
    static func nextWait(backoff: Duration, retryAfter: Duration?, policy: RetryPolicy) -> Duration {
        let factor = policy.randomizationFactor
        let jittered = backoff * (factor > 0 ? Double.random(in: (1 - factor)...(1 + factor)) : 1)
        return max(.zero, max(jittered, retryAfter ?? .zero))
    }
}

extension Duration {
    /// Whole seconds, rounded, for messages.
    var roundedSeconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds + (attoseconds >= 500_000_000_000_000_000 ? 1 : 0)
    }
}
