import OTLPProto

/// How the attribute values of decoded spans are encoded on the wire they came from.
public enum AttributeEncoding: Sendable, Equatable {
    /// Native OTLP types (MLflow client → `/v1/traces`, any OTel SDK): structured values as kvlist/array.
    case typed
    /// Every span attribute is a string holding JSON text (`traces.json`, MLflow's own OTLP exporter).
    case jsonText
}

/// Spans from one upload, with what the upload said about where they came from.
public struct SpanBatch: Sendable {
    /// The decoded spans, ids as raw bytes.
    public var spans: [Opentelemetry_Proto_Trace_V1_Span]
    /// The sender's resource attributes (for example the client's `telemetry.sdk.*`).
    public var resourceAttributes: [Opentelemetry_Proto_Common_V1_KeyValue]
    /// How the span attribute values are encoded.
    public var encoding: AttributeEncoding
    /// The MLflow experiment the upload named (`x-mlflow-experiment-id`, or the artifact path).
    public var experimentID: String?
    /// The sender's instrumentation scope, when it named one (pure OpenTelemetry senders do).
    public var scope: Opentelemetry_Proto_Common_V1_InstrumentationScope?
    /// The MLflow trace id the upload's URL named (`…/traces/<id>/artifacts/traces.json`): for v2 clients the
    /// server-assigned request id, which is how their trace info is matched to these spans.
    public var mlflowTraceID: String?
    /// Whether the batch holds every span of its trace (a `traces.json` artifact always does).
    public var containsWholeTrace = false
    /// Bytes of the upload per span (an estimate used for the assembler's memory bound).
    public var bytesPerSpan = 0

    /// Creates a batch.
    public init(
        spans: [Opentelemetry_Proto_Trace_V1_Span],
        resourceAttributes: [Opentelemetry_Proto_Common_V1_KeyValue] = [],
        encoding: AttributeEncoding,
        experimentID: String? = nil
    ) {
        self.spans = spans
        self.resourceAttributes = resourceAttributes
        self.encoding = encoding
        self.experimentID = experimentID
    }
}
