import OTLPProto
import SwiftProtobuf

/// Delivers export requests somewhere (a destination, a file).
public protocol SpanExporter: Sendable {
    /// A short name for logs and counters (never a URL with credentials).
    var name: String { get }
    /// Delivers one batch, retrying as the exporter's rules say.
    /// - Returns: how many spans the destination rejected in a partial success (0 normally); those are
    ///   counted, never retried.
    /// - Throws: ``ExportFailure`` when the batch could not be delivered (after any retries); `reason`
    ///   `cancelled` means shutdown interrupted it and it may be tried again later.
    func export(_ batch: ExportBatch) async throws(ExportFailure) -> Int
    /// Releases resources; called once at shutdown after the last export.
    func shutdown() async
}

/// Why an export failed, as counters and logs name it (``label``).
public enum ExportFailureReason: Hashable, Sendable, CustomStringConvertible {
    /// The destination answered 4xx.
    case http4xx
    /// The destination answered 5xx.
    case http5xx
    /// The destination answered a gRPC status, by its name.
    case grpc(String)
    /// No connection.
    case connection
    /// No answer in time.
    case timeout
    /// TLS failed.
    case tls
    /// The request could not be encoded.
    case encoding
    /// A local file (the traces file) could not be written.
    case io
    /// Shutdown interrupted it; the batch may be tried again.
    case cancelled

    /// `http_4xx`, `http_5xx`, `grpc_<status>`, `connection`, `timeout`, `tls`, `encoding`, `io`, `cancelled`.
    public var label: String {
        switch self {
        case .http4xx: "http_4xx"
        case .http5xx: "http_5xx"
        case .grpc(let status): "grpc_" + status
        case .connection: "connection"
        case .timeout: "timeout"
        case .tls: "tls"
        case .encoding: "encoding"
        case .io: "io"
        case .cancelled: "cancelled"
        }
    }

    /// The label.
    public var description: String { label }
}

/// One export request: the serialized `ExportTraceServiceRequest` (as queued and spooled) and its span count.
public struct ExportBatch: Sendable {
    /// The request's protobuf bytes.
    public let bytes: [UInt8]
    /// Spans in it.
    public let spans: Int

    /// Creates a batch.
    public init(bytes: [UInt8], spans: Int) {
        self.bytes = bytes
        self.spans = spans
    }

    /// A batch holding `request`.
    public init(_ request: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest) throws(ExportFailure) {
        do {
            bytes = try request.serializedBytes()
        } catch {
            throw ExportFailure(reason: .encoding, message: "could not encode the export request: \(error)")
        }
        spans = request.spanCount
    }

    /// The request, decoded (for transports and files that need the message, not the bytes).
    public func request() throws(ExportFailure) -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest {
        do {
            return try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: bytes)
        } catch {
            throw ExportFailure(reason: .encoding, message: "a queued batch is not a valid export request (\(error)); dropped")
        }
    }
}

/// A delivery that failed for good, with a reason class for counters.
public struct ExportFailure: Error, Sendable, CustomStringConvertible {
    /// The reason class, the label of drop and request counters.
    public var reason: ExportFailureReason
    /// What happened, with the destination's answer when there was one (never a header value).
    public var message: String
    /// Whether the destination rejected the proxy's credentials (HTTP 401/403, gRPC `UNAUTHENTICATED`/
    /// `PERMISSION_DENIED`): a pipeline may hold the batch (`Delivery`'s `AuthFailurePolicy`).
    public var credentialsRejected: Bool
    /// The HTTP status the destination answered, when it answered over HTTP.
    public var httpStatus: Int?
    /// Creates a failure.
    public init(reason: ExportFailureReason, message: String, credentialsRejected: Bool = false, httpStatus: Int? = nil) {
        self.reason = reason
        self.message = message
        self.credentialsRejected = credentialsRejected
        self.httpStatus = httpStatus
    }
    /// `reason: message`.
    public var description: String { "\(reason): \(message)" }

    /// Shutdown interrupted the delivery (the batch may be tried again).
    public var isCancellation: Bool { reason == .cancelled }
}

extension Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest {
    /// The number of spans in the request.
    public var spanCount: Int { resourceSpans.reduce(0) { $0 + $1.scopeSpans.reduce(0) { $0 + $1.spans.count } } }
}
