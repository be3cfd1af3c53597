import Foundation

/// The `retry_on_failure` keys a file sets (the others keep their values).
public struct PartialRetryPolicy: Sendable, Equatable {
    /// `enabled`.
    public var enabled: Bool?
    /// `initial_interval`.
    public var initialInterval: Duration?
    /// `max_interval`.
    public var maxInterval: Duration?
    /// `max_elapsed_time` (0: no budget).
    public var maxElapsedTime: Duration?
    /// `multiplier`.
    public var multiplier: Double?
    /// `randomization_factor`.
    public var randomizationFactor: Double?

    /// Nothing set.
    public init() {}

    /// Sets the keys given over `policy`.
    public func apply(to policy: inout RetryPolicy) {
        if let enabled { policy.enabled = enabled }
        if let initialInterval { policy.initialInterval = initialInterval }
        if let maxInterval { policy.maxInterval = maxInterval }
        if let maxElapsedTime { policy.maxElapsedTime = maxElapsedTime == .zero ? nil : maxElapsedTime }
        if let multiplier { policy.multiplier = multiplier }
        if let randomizationFactor { policy.randomizationFactor = randomizationFactor }
    }
}

/// A destination's own delivery settings over the proxy-wide ones (`retry_on_failure` and `sending_queue` under
/// the destination, as the Collector has them per exporter).
public struct DeliveryOverrides: Sendable, Equatable {
    /// Retry keys the destination sets.
    public var retry = PartialRetryPolicy()
    /// `sending_queue.max_bytes`.
    public var maxQueueBytes: Int?
    /// `sending_queue.full_policy`.
    public var fullPolicy: QueueFullPolicy?
    /// `on_auth_failure`.
    public var onAuthFailure: AuthFailurePolicy?
    /// `auth_retry_interval`.
    public var authRetryInterval: Duration?

    /// None.
    public init() {}

    /// The proxy-wide `delivery` with this destination's keys over it.
    public func applied(to delivery: DeliverySettings) -> DeliverySettings {
        var result = delivery
        retry.apply(to: &result.retry)
        if let maxQueueBytes { result.maxQueueBytes = maxQueueBytes }
        if let fullPolicy { result.fullPolicy = fullPolicy }
        if let onAuthFailure { result.onAuthFailure = onAuthFailure }
        if let authRetryInterval { result.authRetryInterval = authRetryInterval }
        return result
    }
}
