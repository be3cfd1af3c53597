import OTLPProto

/// Delivers one OTLP export request somewhere (a destination, a file).
public protocol SpanExporter: Sendable {
    /// A short name for logs and counters (never a URL with credentials).
    var name: String { get }
    /// Delivers the request.
    /// - Throws: ``ExportFailure`` when the request could not be delivered (after any retries the exporter does).
    func export(_ request: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest) async throws(ExportFailure)
    /// Releases resources; called once at shutdown after the last export.
    func shutdown() async
}

/// A delivery that failed for good, with a reason class for counters.
public struct ExportFailure: Error, Sendable, CustomStringConvertible {
    /// The reason class: `http_4xx`, `http_5xx`, `connection`, `timeout`, `encoding`, `io`.
    public var reason: String
    /// What happened, with the destination's answer when there was one (never a header value).
    public var message: String
    /// Creates a failure.
    public init(reason: String, message: String) {
        self.reason = reason
        self.message = message
    }
    /// `reason: message`.
    public var description: String { "\(reason): \(message)" }
}

extension Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest {
    /// The number of spans in the request.
    public var spanCount: Int { resourceSpans.reduce(0) { $0 + $1.scopeSpans.reduce(0) { $0 + $1.spans.count } } }
}
