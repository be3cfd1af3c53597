import Foundation

/// The MLflow calls the proxy treats specially; everything else is `.other` and passes through.
public enum MLflowRoute: Sendable, Equatable {
    /// `POST /v1/traces`: OTLP span upload (3.x clients, OTel exporters).
    case otlpTraces
    /// `POST /api/3.0/mlflow/traces`: `StartTraceV3`, the trace info of a finished trace.
    case startTraceV3
    /// `POST /api/2.0/mlflow/traces`: v2 `StartTrace` (2.x and 3.0–3.3 clients), sent when the root span starts.
    case startTraceV2
    /// `PATCH /api/2.0/mlflow/traces/<request id>`: v2 `EndTrace`.
    case endTraceV2(requestID: String)
    /// `PUT /api/2.0/mlflow-artifacts/artifacts/<exp>/traces/<trace id>/artifacts/traces.json`.
    case tracesArtifact(experimentID: String?, traceID: String)
    /// `PUT …/traces/<trace id>/artifacts/attachments/<uuid>`.
    case traceAttachment(experimentID: String?, traceID: String, attachmentID: String)
    /// `GET /version`.
    case version
    /// `GET /api/2.0/mlflow/experiments/get-by-name`.
    case experimentGetByName
    /// `GET /api/2.0/mlflow/experiments/get`.
    case experimentGet
    /// `POST /api/2.0/mlflow/experiments/create`.
    case experimentCreate
    /// Any other call.
    case other

    /// Whether the route uploads trace data (intercepted in OpenTelemetry-only mode, copied in dual mode).
    public var isTraceUpload: Bool {
        switch self {
        case .otlpTraces, .startTraceV3, .startTraceV2, .endTraceV2, .tracesArtifact, .traceAttachment: true
        default: false
        }
    }

    /// Whether the route is a `traces.json` upload.
    public var isTracesArtifact: Bool {
        if case .tracesArtifact = self { return true }
        return false
    }

    /// A short name for logs and counters.
    public var name: String {
        switch self {
        case .otlpTraces: "otlp_traces"
        case .startTraceV3: "start_trace_v3"
        case .startTraceV2: "start_trace_v2"
        case .endTraceV2: "end_trace_v2"
        case .tracesArtifact: "traces_artifact"
        case .traceAttachment: "trace_attachment"
        case .version: "version"
        case .experimentGetByName, .experimentGet, .experimentCreate: "experiment"
        case .other: "passthrough"
        }
    }

    static let artifactsPrefix = "/api/2.0/mlflow-artifacts/artifacts/"
    static let tracesV2Prefix = "/api/2.0/mlflow/traces/"

    /// Classifies a request by method and path (the path without its query).
    public static func classify(method: String, path: String) -> MLflowRoute {
        classify(method: method, path: path[...])
    }

    /// Classifies a request by method and path (the path without its query): the path's bytes are compared with
    /// each route's, as the upstream will read them (no Unicode equivalence, no `String` made for the comparison).
    public static func classify(method: String, path: Substring) -> MLflowRoute {
        let bytes = path.utf8
        switch method {
        case "POST":
            if same(bytes, "/v1/traces") { return .otlpTraces }
            if same(bytes, "/api/3.0/mlflow/traces") { return .startTraceV3 }
            if same(bytes, "/api/2.0/mlflow/traces") { return .startTraceV2 }
            if same(bytes, "/api/2.0/mlflow/experiments/create") { return .experimentCreate }
        case "PATCH":
            if let requestID = after(tracesV2Prefix, in: path) {
                guard !requestID.utf8.contains(UInt8(ascii: "/")) else { return .other }  // SetTraceTag and other sub-resources
                return .endTraceV2(requestID: String(requestID))
            }
        case "GET":
            if same(bytes, "/version") { return .version }
            if same(bytes, "/api/2.0/mlflow/experiments/get-by-name") { return .experimentGetByName }
            if same(bytes, "/api/2.0/mlflow/experiments/get") { return .experimentGet }
        case "PUT":
            if let relative = after(artifactsPrefix, in: path) { return classifyArtifact(relative) }
        default:
            break
        }
        return .other
    }

    /// Whether `bytes` are exactly `literal`'s (lengths first; a native string's bytes compared in place, by `memcmp`).
    private static func same(_ bytes: Substring.UTF8View, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        let compared = bytes.withContiguousStorageIfAvailable { actual in
            // No base address only for no bytes, and the lengths are equal.
            actual.baseAddress.map { memcmp($0, literal.utf8Start, actual.count) == 0 } ?? true
        }
        return compared ?? bytes.elementsEqual(UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// What follows `prefix` in `path`, when `path` begins with its bytes.
    private static func after(_ prefix: String, in path: Substring) -> Substring? {
        guard path.utf8.starts(with: prefix.utf8) else { return nil }
        return path[path.utf8.index(path.startIndex, offsetBy: prefix.utf8.count)...]
    }

    /// `<exp…>/traces/<id>/artifacts/traces.json` or `<exp…>/traces/<id>/artifacts/attachments/<uuid>`.
    public static func classifyArtifact(_ relative: Substring) -> MLflowRoute {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false)
        guard !parts.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) else { return .other }
        if parts.count >= 4, parts[parts.count - 1] == "traces.json", parts[parts.count - 2] == "artifacts",
            parts[parts.count - 4] == "traces"
        {
            return .tracesArtifact(experimentID: experiment(parts.dropLast(4)), traceID: String(parts[parts.count - 3]))
        }
        if parts.count >= 5, parts[parts.count - 2] == "attachments", parts[parts.count - 3] == "artifacts",
            parts[parts.count - 5] == "traces"
        {
            return .traceAttachment(
                experimentID: experiment(parts.dropLast(5)), traceID: String(parts[parts.count - 4]), attachmentID: String(parts[parts.count - 1])
            )
        }
        return .other
    }

    private static func experiment(_ parts: ArraySlice<Substring>) -> String? {
        parts.isEmpty ? nil : parts.joined(separator: "/")
    }
}
