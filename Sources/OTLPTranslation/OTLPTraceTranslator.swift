import Foundation
import MLflowWire
import OTLPProto
import SwiftProtobuf
import TraceAssembly

/// What the translator puts on the resource and scope of every exported span.
public struct TranslationSettings: Sendable, Equatable {
    /// `OTEL_SERVICE_NAME`, which wins over every other `service.name`.
    public var serviceName: String?
    /// `OTEL_RESOURCE_ATTRIBUTES` of the proxy, which win over the client's attributes of the same key.
    public var resourceAttributes: [(key: String, value: String)]
    /// The instrumentation scope name.
    public var scopeName: String
    /// The instrumentation scope version (the proxy's version).
    public var scopeVersion: String

    /// Creates settings.
    public init(
        serviceName: String? = nil, resourceAttributes: [(key: String, value: String)] = [], scopeName: String = "mlflow-otel-proxy",
        scopeVersion: String
    ) {
        self.serviceName = serviceName
        self.resourceAttributes = resourceAttributes
        self.scopeName = scopeName
        self.scopeVersion = scopeVersion
    }

    /// Equality by value.
    public static func == (lhs: TranslationSettings, rhs: TranslationSettings) -> Bool {
        lhs.serviceName == rhs.serviceName && lhs.scopeName == rhs.scopeName && lhs.scopeVersion == rhs.scopeVersion
            && lhs.resourceAttributes.map(\.key) == rhs.resourceAttributes.map(\.key)
            && lhs.resourceAttributes.map(\.value) == rhs.resourceAttributes.map(\.value)
    }
}

/// Translates an assembled MLflow trace into clean OTLP: one `ResourceSpans` per distinct sender resource
/// and experiment, typed attributes, trace-level data on the root span. MLflow's spans get the proxy's
/// instrumentation scope; spans of other OpenTelemetry senders keep their own. Pure: no I/O, no clock.
public enum OTLPTraceTranslator {
    /// Attribute names the proxy adds to root spans (documented in the README).
    public enum RootAttribute {
        /// `mlflow.trace.tag.<key>` for each trace tag.
        public static let tagPrefix = "mlflow.trace.tag."
        /// `mlflow.trace.metadata.<key>` for each trace metadata entry.
        public static let metadataPrefix = "mlflow.trace.metadata."
        /// The MLflow trace id.
        public static let traceID = "mlflow.trace_id"
        /// The trace state (`OK`, `ERROR`, …).
        public static let state = "mlflow.trace.state"
        /// The request preview.
        public static let requestPreview = "mlflow.trace.request_preview"
        /// The response preview.
        public static let responsePreview = "mlflow.trace.response_preview"
        /// The client request id.
        public static let clientRequestID = "mlflow.trace.client_request_id"
        /// The session (from `mlflow.trace.session`), under the OpenTelemetry name.
        public static let sessionID = "session.id"
        /// The user (from `mlflow.trace.user`), under the OpenTelemetry name.
        public static let userID = "user.id"
    }

    /// The resource attribute carrying the experiment id.
    public static let experimentAttribute = "mlflow.experiment_id"

    /// Translates one trace.
    public static func translate(_ trace: AssembledTrace, settings: TranslationSettings) -> [Opentelemetry_Proto_Trace_V1_ResourceSpans] {
        // A trace has one or two groups: found by a scan with `==` (field by field), not by hashing, which for
        // protobuf messages walks every attribute through SwiftProtobuf's generic visitor.
        var groups: [(key: ResourceKey, spans: [Opentelemetry_Proto_Trace_V1_Span])] = []
        let rootAttributes = trace.info.map(traceLevelAttributes(from:)) ?? []
        for assembled in trace.spans {
            var span = assembled.span
            // Attributes already in normal form (most of a protobuf upload's) are left as they are: no copy.
            var attributes = span.attributes
            var changed = false
            for index in attributes.indices {
                if let replacement = AttributeValueNormalizer.replacement(for: attributes[index].value, encoding: assembled.encoding) {
                    attributes[index].value = replacement
                    changed = true
                }
            }
            if changed { span.attributes = attributes }
            if span.kind == .unspecified { span.kind = .internal }
            if assembled.isRoot && !rootAttributes.isEmpty { merge(rootAttributes, into: &span.attributes) }
            let key = ResourceKey(
                attributes: assembled.resourceAttributes, experimentID: assembled.experimentID ?? trace.info?.experimentID, scope: assembled.scope
            )
            if let index = groups.lastIndex(where: { $0.key == key }) {
                groups[index].spans.append(span)
            } else {
                groups.append((key, [span]))
            }
        }
        var proxyScope = Opentelemetry_Proto_Common_V1_InstrumentationScope()
        proxyScope.name = settings.scopeName
        proxyScope.version = settings.scopeVersion
        var result: [Opentelemetry_Proto_Trace_V1_ResourceSpans] = []
        var resourceIndex: [(key: ResourceKey, index: Int)] = []
        for (key, spans) in groups {
            let scopeSpans = Opentelemetry_Proto_Trace_V1_ScopeSpans.with {
                $0.scope = key.scope ?? proxyScope
                $0.spans = spans
            }
            var resourceKey = key
            resourceKey.scope = nil
            if let index = resourceIndex.first(where: { $0.key == resourceKey })?.index {
                result[index].scopeSpans.append(scopeSpans)
            } else {
                resourceIndex.append((resourceKey, result.count))
                var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
                resourceSpans.resource.attributes = resourceAttributes(for: key, settings: settings)
                resourceSpans.scopeSpans = [scopeSpans]
                result.append(resourceSpans)
            }
        }
        return result
    }

    /// The attributes the root span gets from the trace info, sorted within each group.
    static func traceLevelAttributes(from info: TraceInfo) -> [Opentelemetry_Proto_Common_V1_KeyValue] {
        var result: [Opentelemetry_Proto_Common_V1_KeyValue] = []
        result.reserveCapacity(7 + info.tags.count + info.metadata.count)
        result.append(string(RootAttribute.traceID, info.traceID))
        if let state = info.state { result.append(string(RootAttribute.state, state)) }
        if let id = info.clientRequestID, !id.isEmpty { result.append(string(RootAttribute.clientRequestID, id)) }
        if let preview = info.requestPreview { result.append(string(RootAttribute.requestPreview, preview)) }
        if let preview = info.responsePreview { result.append(string(RootAttribute.responsePreview, preview)) }
        if let session = info.metadata["mlflow.trace.session"], !session.isEmpty { result.append(string(RootAttribute.sessionID, session)) }
        if let user = info.metadata["mlflow.trace.user"], !user.isEmpty { result.append(string(RootAttribute.userID, user)) }
        // In key order, each entry sorted with its value (no lookup back into the dictionary per key).
        for (key, value) in info.tags.sorted(by: { $0.key < $1.key }) { result.append(string(RootAttribute.tagPrefix + key, value)) }
        for (key, value) in info.metadata.sorted(by: { $0.key < $1.key }) { result.append(string(RootAttribute.metadataPrefix + key, value)) }
        return result
    }

    /// The proxy's own resource (for the metrics it exports): `OTEL_RESOURCE_ATTRIBUTES`, then `service.name`
    /// from `OTEL_SERVICE_NAME` (else `unknown_service`), by the same rules as exported spans.
    public static func proxyResourceAttributes(settings: TranslationSettings) -> [Opentelemetry_Proto_Common_V1_KeyValue] {
        resourceAttributes(for: ResourceKey(attributes: [], experimentID: nil, scope: nil), settings: settings)
    }

    static func resourceAttributes(for key: ResourceKey, settings: TranslationSettings) -> [Opentelemetry_Proto_Common_V1_KeyValue] {
        var attributes = key.attributes
        merge(settings.resourceAttributes.map { string($0.key, $0.value) }, into: &attributes)
        if let serviceName = settings.serviceName {
            merge([string("service.name", serviceName)], into: &attributes)
        } else if !attributes.contains(where: { $0.key == "service.name" }) {
            // The OpenTelemetry resource default when nothing names the service.
            attributes.append(string("service.name", "unknown_service"))
        }
        if let experimentID = key.experimentID { merge([string(experimentAttribute, experimentID)], into: &attributes) }
        return attributes
    }

    /// Sets each attribute, replacing one of the same key (the first, when a sender repeated a key). Keys are told
    /// apart by their length before their text: a root gets a dozen or more additions, each looked for among its
    /// attributes (a table of the keys cost more, hashing, than this scan).
    static func merge(_ additions: [Opentelemetry_Proto_Common_V1_KeyValue], into attributes: inout [Opentelemetry_Proto_Common_V1_KeyValue]) {
        for addition in additions {
            let key = addition.key
            let length = key.utf8.count
            if let index = attributes.firstIndex(where: { $0.key.utf8.count == length && $0.key == key }) {
                attributes[index] = addition
            } else {
                attributes.append(addition)
            }
        }
    }

    static func string(_ key: String, _ value: String) -> Opentelemetry_Proto_Common_V1_KeyValue {
        .with {
            $0.key = key
            $0.value.stringValue = value
        }
    }

    /// Groups spans by sender resource, experiment and scope.
    struct ResourceKey: Equatable {
        var attributes: [Opentelemetry_Proto_Common_V1_KeyValue]
        var experimentID: String?
        var scope: Opentelemetry_Proto_Common_V1_InstrumentationScope?
    }
}
