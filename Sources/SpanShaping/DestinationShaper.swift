import Foundation
import OTLPProto
import SwiftProtobuf

/// Shapes translated spans for one destination by its ``DataPolicy``: routing and sampling, then the
/// semantic conventions, redaction and size limits, in that order (JSON paths are masked in MLflow's inputs
/// and outputs before conventions derive messages from them, and again in the derived messages).
/// Pure and thread-safe: one per destination, called from its export pipeline.
public struct DestinationShaper: Sendable {
    /// What shaping did to one submission, for counters.
    public struct Outcome: Sendable, Equatable {
        /// Spans not sent because routing or a span-type filter excluded them.
        public var filtered = 0
        /// Spans not sent because their trace was not sampled.
        public var sampledOut = 0
        /// Values masked by redaction.
        public var masked = 0
        /// Attributes removed by redaction (`drop_attributes`, `metadata_only`).
        public var redacted = 0
        /// Values truncated, attributes dropped by the count limit, or parts trimmed to fit a request.
        public var trimmed = 0

        /// Nothing happened.
        public init() {}
    }

    let policy: DataPolicy
    let redactor: Redactor

    /// Creates the shaper of a destination's policy (validated with the configuration).
    public init(policy: DataPolicy) {
        self.policy = policy
        redactor = Redactor(policy.redaction)
    }

    /// Whether shaping leaves spans as the translator made them (MLflow attributes only, nothing else).
    public var isIdentity: Bool {
        policy.conventions == [.mlflow] && redactor.isEmpty && policy.limits == SpanSizeLimits() && policy.routing.routesEverything
    }

    /// Shapes one trace's translated spans.
    public func shape(_ trace: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) -> (
        spans: [Opentelemetry_Proto_Trace_V1_ResourceSpans], outcome: Outcome
    ) {
        var outcome = Outcome()
        let allSpans = trace.flatMap { $0.scopeSpans.flatMap(\.spans) }
        guard let first = allSpans.first else { return ([], outcome) }
        if !routes(trace, spans: allSpans) {
            outcome.filtered = allSpans.count
            return ([], outcome)
        }
        // The id copied into an array only when a ratio below 1 reads it.
        if policy.routing.sampleRatio < 1 && !Self.sampled(traceID: [UInt8](first.traceID), ratio: policy.routing.sampleRatio) {
            outcome.sampledOut = allSpans.count
            return ([], outcome)
        }
        let root = allSpans.first { $0.parentSpanID.isEmpty }
        let sessionID = root?.attributes.string("session.id") ?? root?.attributes.string("mlflow.trace.metadata.mlflow.trace.session")
        let userID = root?.attributes.string("user.id") ?? root?.attributes.string("mlflow.trace.metadata.mlflow.trace.user")
        var result: [Opentelemetry_Proto_Trace_V1_ResourceSpans] = []
        for var resourceSpans in trace {
            var hasGenAI = false
            for scopeIndex in resourceSpans.scopeSpans.indices {
                var kept: [Opentelemetry_Proto_Trace_V1_Span] = []
                for var span in resourceSpans.scopeSpans[scopeIndex].spans {
                    if !routesSpan(span) {
                        outcome.filtered += 1
                        continue
                    }
                    shapeSpan(&span, sessionID: sessionID, userID: userID, outcome: &outcome)
                    // Looked for until one span has them (a scan of every span's attributes otherwise).
                    if !hasGenAI, span.attributes.value("gen_ai.operation.name") != nil || span.attributes.value("gen_ai.provider.name") != nil {
                        hasGenAI = true
                    }
                    kept.append(span)
                }
                resourceSpans.scopeSpans[scopeIndex].spans = kept
            }
            resourceSpans.scopeSpans.removeAll { $0.spans.isEmpty }
            guard !resourceSpans.scopeSpans.isEmpty else { continue }
            if hasGenAI {
                for pair in policy.genAIResourceAttributes where resourceSpans.resource.attributes.value(pair.key) == nil {
                    resourceSpans.resource.attributes.set(pair.key, string: pair.value)
                }
            }
            result.append(resourceSpans)
        }
        return (result, outcome)
    }

    func shapeSpan(_ span: inout Opentelemetry_Proto_Trace_V1_Span, sessionID: String?, userID: String?, outcome: inout Outcome) {
        outcome.masked += redactor.maskPaths(in: &span)
        if policy.conventions.contains(.genai) { GenAIConventions.apply(to: &span, conversationID: sessionID) }
        if policy.conventions.contains(.openinference) { OpenInferenceConventions.apply(to: &span, sessionID: sessionID, userID: userID) }
        if !policy.conventions.contains(.mlflow) {
            // Span-level MLflow attributes go; trace-level data (mlflow.trace.*, mlflow.trace_id) stays.
            span.modifyAttributes {
                $0.removeAll { $0.key.hasPrefix("mlflow.") && !$0.key.hasPrefix("mlflow.trace.") && $0.key != "mlflow.trace_id" }
            }
        }
        outcome.masked += redactor.maskPaths(in: &span)
        if let limit = policy.limits.maxAttributeValueLength, redactor.hasPatterns {
            // Regexes run on values already cut near the size limit, so a huge value costs no more than a short
            // one; the margin keeps a secret that straddles the limit whole for its pattern (the final cut is
            // below, after masking, and counts the value once).
            _ = SizeLimiter.truncateValues(in: &span, limit: limit + Self.patternMargin)
        }
        outcome.masked += redactor.maskPatterns(in: &span)
        outcome.redacted += redactor.dropAttributes(in: &span)
        outcome.redacted += redactor.stripContent(of: &span)
        if let limit = policy.limits.maxAttributeValueLength { outcome.trimmed += SizeLimiter.truncateValues(in: &span, limit: limit) }
        if let limit = policy.limits.maxAttributesPerSpan { outcome.trimmed += SizeLimiter.capAttributes(of: &span, limit: limit) }
        if let limit = policy.limits.maxEventsPerSpan { outcome.trimmed += SizeLimiter.capEvents(of: &span, limit: limit) }
    }

    /// Characters kept past the value-length limit while redaction patterns run.
    static let patternMargin = 1024

    /// Whether the trace goes to this destination by experiment and tags.
    func routes(_ trace: [Opentelemetry_Proto_Trace_V1_ResourceSpans], spans: [Opentelemetry_Proto_Trace_V1_Span]) -> Bool {
        let routing = policy.routing
        if !routing.includeExperimentIDs.isEmpty || !routing.excludeExperimentIDs.isEmpty {
            let experiments = Set(trace.compactMap { $0.resource.attributes.string("mlflow.experiment_id") })
            if !routing.includeExperimentIDs.isEmpty && experiments.isDisjoint(with: routing.includeExperimentIDs) { return false }
            if !experiments.isDisjoint(with: routing.excludeExperimentIDs) { return false }
        }
        if !routing.includeTags.isEmpty || !routing.excludeTags.isEmpty {
            func has(_ selector: String) -> Bool {
                let parts = selector.split(separator: "=", maxSplits: 1).map(String.init)
                let key = "mlflow.trace.tag." + (parts.first ?? "")
                return spans.contains { span in
                    guard let value = span.attributes.value(key) else { return false }
                    return parts.count == 1 || value.stringValue == parts[1]
                }
            }
            if !routing.includeTags.isEmpty && !routing.includeTags.contains(where: has) { return false }
            if routing.excludeTags.contains(where: has) { return false }
        }
        return true
    }

    /// Whether a span passes the span-type filters.
    func routesSpan(_ span: Opentelemetry_Proto_Trace_V1_Span) -> Bool {
        let routing = policy.routing
        guard !routing.includeSpanTypes.isEmpty || !routing.excludeSpanTypes.isEmpty else { return true }
        let type = span.attributes.string("mlflow.spanType") ?? "UNKNOWN"
        if !routing.includeSpanTypes.isEmpty && !routing.includeSpanTypes.contains(type) { return false }
        return !routing.excludeSpanTypes.contains(type)
    }

    /// Trace-id ratio sampling as OpenTelemetry's `TraceIdRatioBased` does it: the trace id's last 8 bytes,
    /// read as a number, below `ratio` × 2⁶⁴. Every replica and destination decides the same for a trace.
    public static func sampled(traceID: [UInt8], ratio: Double) -> Bool {
        if ratio >= 1 { return true }
        if ratio <= 0 { return false }
        guard traceID.count == 16 else { return true }
        let random = traceID[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Double(random) < ratio * 18_446_744_073_709_551_616.0
    }

    /// Splits one `ResourceSpans` into pieces whose encodings are at most `budget` bytes each (same resource
    /// and scopes, spans divided among them), trimming a span that alone does not fit. Nothing is dropped.
    /// - Returns: the pieces and how many values were trimmed.
    public static func split(_ item: Opentelemetry_Proto_Trace_V1_ResourceSpans, budget: Int) -> (
        pieces: [Opentelemetry_Proto_Trace_V1_ResourceSpans], trimmed: Int
    ) {
        var empty = item
        empty.scopeSpans = []
        let baseSize = (try? empty.serializedBytes() as [UInt8])?.count ?? 0
        var pieces: [Opentelemetry_Proto_Trace_V1_ResourceSpans] = []
        var trimmed = 0
        var current = empty
        var currentSize = baseSize
        for scope in item.scopeSpans {
            var emptyScope = scope
            emptyScope.spans = []
            let scopeOverhead = ((try? emptyScope.serializedBytes() as [UInt8])?.count ?? 0) + 8
            for var span in scope.spans {
                var spanSize = ((try? span.serializedBytes() as [UInt8])?.count ?? 0) + 8
                let spanBudget = budget - baseSize - scopeOverhead - 8
                if spanSize > spanBudget {
                    trimmed += SizeLimiter.trim(&span, toFit: max(spanBudget, 256))
                    spanSize = ((try? span.serializedBytes() as [UInt8])?.count ?? 0) + 8
                }
                let needsScope = current.scopeSpans.last.map { $0.scope != scope.scope || $0.schemaURL != scope.schemaURL } ?? true
                let added = spanSize + (needsScope ? scopeOverhead : 0)
                if currentSize + added > budget && !current.scopeSpans.isEmpty {
                    pieces.append(current)
                    current = empty
                    currentSize = baseSize
                }
                if current.scopeSpans.last.map({ $0.scope != scope.scope || $0.schemaURL != scope.schemaURL }) ?? true {
                    current.scopeSpans.append(emptyScope)
                    currentSize += scopeOverhead
                }
                current.scopeSpans[current.scopeSpans.count - 1].spans.append(span)
                currentSize += spanSize
            }
        }
        if !current.scopeSpans.isEmpty { pieces.append(current) }
        return (pieces, trimmed)
    }
}
