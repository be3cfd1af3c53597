import Logging
import ProxyObservability

/// Retry bounds of an exporter.
public struct RetryPolicy: Sendable {
    /// Attempts in all (1 = no retry).
    public var maxAttempts: Int
    /// The first backoff.
    public var initialBackoff: Duration
    /// The largest backoff (and the largest `Retry-After` honoured).
    public var maxBackoff: Duration
    /// Creates a policy.
    public init(maxAttempts: Int = 5, initialBackoff: Duration = .seconds(1), maxBackoff: Duration = .seconds(30)) {
        self.maxAttempts = maxAttempts
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }
}

/// What one delivery attempt came to.
enum AttemptOutcome: Sendable {
    case delivered
    /// A failure the OTLP specification calls transient (HTTP 429/502/503/504, gRPC UNAVAILABLE …), with the
    /// server's requested delay when it gave one.
    case retryable(ExportFailure, retryAfter: Duration?)
    case permanent(ExportFailure)
}

/// The retry loop both transports share: exponential backoff with ±20 % jitter, a server's delay honoured
/// (capped at `maxBackoff`), a bounded number of attempts.
enum OTLPRetry {
    static func run(
        policy: RetryPolicy, destination: String, logger: Logger, status: StatusBoard? = nil, counters: ProxyCounters? = nil,
        attempt: () async -> AttemptOutcome
    ) async throws(ExportFailure) {
        var backoff = policy.initialBackoff
        var number = 1
        while true {
            switch await attempt() {
            case .delivered:
                return
            case .permanent(let failure):
                throw failure
            case .retryable(let failure, let retryAfter):
                guard number < policy.maxAttempts else { throw failure }
                status?.failed(destination: destination, error: failure.message, final: false)
                counters?.increment("export_retries", destination)
                let wait = max(.zero, retryAfter.map { min($0, policy.maxBackoff) } ?? backoff * Double.random(in: 0.8...1.2))
                logger.debug(
                    "export failed, retrying",
                    metadata: ["destination": "\(destination)", "attempt": "\(number)", "wait": "\(wait)", "error": "\(failure)"]
                )
                do { try await Task.sleep(for: wait) } catch { throw ExportFailure(reason: "cancelled", message: "shutdown during retry") }
                backoff = min(backoff * 2, policy.maxBackoff)
                number += 1
            }
        }
    }
}
