import Foundation
import MLflowWire
import OTLPProto

/// One span as the assembler keeps it: the span, plus what its upload said about its origin.
public struct AssembledSpan: Sendable {
    /// The span, ids as raw bytes, attributes as received.
    public var span: Opentelemetry_Proto_Trace_V1_Span
    /// How its attribute values are encoded.
    public var encoding: AttributeEncoding
    /// The sender's resource attributes.
    public var resourceAttributes: [Opentelemetry_Proto_Common_V1_KeyValue]
    /// The experiment the upload named, if any.
    public var experimentID: String?
    /// The sender's instrumentation scope, when it named one.
    public var scope: Opentelemetry_Proto_Common_V1_InstrumentationScope?

    /// Whether the span is a root (no parent).
    public var isRoot: Bool { span.parentSpanID.isEmpty }

    /// Creates a span record.
    public init(
        span: Opentelemetry_Proto_Trace_V1_Span, encoding: AttributeEncoding, resourceAttributes: [Opentelemetry_Proto_Common_V1_KeyValue] = [],
        experimentID: String? = nil, scope: Opentelemetry_Proto_Common_V1_InstrumentationScope? = nil
    ) {
        self.span = span
        self.encoding = encoding
        self.resourceAttributes = resourceAttributes
        self.experimentID = experimentID
        self.scope = scope
    }
}

/// Why a trace left the assembler.
public enum TraceCompletion: String, Sendable, Equatable {
    /// Trace info and every expected span arrived.
    case complete
    /// The wait for missing parts ran out; exported with what had arrived.
    case timedOut = "timed_out"
    /// Spans of a trace that was already exported (they arrived after it left).
    case lateSpans = "late_spans"
    /// The proxy was shutting down.
    case shutdown
    /// The assembler hit its limit of traces in flight and let the oldest go.
    case traceLimit = "trace_limit"
    /// The trace reached the limit of spans per trace.
    case spanLimit = "span_limit"
    /// The assembler hit its limit of bytes held and let the oldest go.
    case memoryLimit = "memory_limit"
}

/// A trace ready for translation: every span once, with its trace info when it arrived in time.
public struct AssembledTrace: Sendable {
    /// The 16-byte OTel trace id.
    public var traceID: Data
    /// The spans, in arrival order, each exactly once.
    public var spans: [AssembledSpan]
    /// The trace-level record (`StartTraceV3`), if it arrived before the trace left.
    public var info: TraceInfo?
    /// Why it left the assembler.
    public var completion: TraceCompletion

    /// Creates a trace.
    public init(traceID: Data, spans: [AssembledSpan], info: TraceInfo?, completion: TraceCompletion) {
        self.traceID = traceID
        self.spans = spans
        self.info = info
        self.completion = completion
    }

    /// The MLflow trace id (`tr-…`).
    public var mlflowTraceID: String { info?.traceID ?? MLflowTraceID.from(otelTraceID: traceID) }
}
