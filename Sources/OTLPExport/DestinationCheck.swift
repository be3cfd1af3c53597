import AsyncHTTPClient
import Foundation
import Logging
import OTLPProto
import SharedSettings

/// `mlflow-otel-proxy test-destination`: one small synthetic trace sent to a destination with its real settings
/// and credentials, once (no retries), and what came of it, with a hint for the usual causes of a failure.
public enum DestinationCheck {
    /// The span name the check sends, so it is easy to find (and to ignore) at the destination.
    public static let spanName = "mlflow-otel-proxy connectivity check"

    /// What one destination answered.
    public struct Result: Sendable {
        /// The destination's configured name.
        public var destination: String
        /// Its traces endpoint (never with credentials: they are headers).
        public var endpoint: String
        /// `grpc`, `http/protobuf` or `http/json`.
        public var transport: String
        /// Whether the destination accepted the trace.
        public var succeeded: Bool
        /// `accepted`, or the failure with the destination's answer (its credentials masked).
        public var outcome: String
        /// How long the attempt took.
        public var latency: Duration
        /// What to look at, for a failure with a usual cause.
        public var hint: String?
    }

    /// Sends the check's trace to `destination` once. - Parameter client: for HTTP destinations.
    public static func run(
        _ destination: OTLPDestination, resourceAttributes: [KeyValuePair], client: HTTPClient, logger: Logger
    ) async -> Result {
        var result = Result(
            destination: destination.name, endpoint: destination.endpoint.description, transport: destination.transportProtocol.rawValue,
            succeeded: false, outcome: "", latency: .zero, hint: nil)
        let once = RetryPolicy(enabled: false)
        let started = ContinuousClock.now
        let outcome: Swift.Result<Int, ExportFailure>
        do {
            let batch = try ExportBatch(request(resourceAttributes: resourceAttributes))
            if destination.transportProtocol == .grpc {
                let exporter = try OTLPGRPCExporter(destination: destination, retry: once, logger: logger)
                outcome = await withTaskGroup(of: Void.self) { group in
                    group.addTask { try? await exporter.run() }
                    let sent = await send(batch, with: exporter)
                    exporter.stop()
                    await group.waitForAll()
                    return sent
                }
            } else {
                let exporter = try OTLPHTTPExporter(destination: destination, client: client, retry: once, logger: logger)
                outcome = await send(batch, with: exporter)
            }
        } catch let failure as ExportFailure {
            outcome = .failure(failure)
        } catch {
            outcome = .failure(ExportFailure(reason: .tls, message: "the destination's TLS files cannot be used: \(error)"))
        }
        result.latency = ContinuousClock.now - started
        switch outcome {
        case .success(let rejected):
            result.succeeded = true
            result.outcome = rejected > 0 ? "accepted in part (\(rejected) span rejected)" : "accepted"
        case .failure(let failure):
            result.outcome = "\(failure.reason): \(failure.message)"
            result.hint = hint(for: failure, destination: destination)
        }
        return result
    }

    static func send(_ batch: ExportBatch, with exporter: some SpanExporter) async -> Swift.Result<Int, ExportFailure> {
        do throws(ExportFailure) {
            return .success(try await exporter.export(batch))
        } catch {
            return .failure(error)
        }
    }

    /// One span, a root, named ``spanName``, ending now.
    static func request(resourceAttributes: [KeyValuePair]) -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest {
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.traceID = Data((0..<16).map { _ in UInt8.random(in: 0...255) })
        span.spanID = Data((0..<8).map { _ in UInt8.random(in: 0...255) })
        span.name = spanName
        span.kind = .internal
        let now = UInt64(Date().timeIntervalSince1970 * 1_000_000_000)
        span.startTimeUnixNano = now - 1_000_000
        span.endTimeUnixNano = now
        var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        scope.scope.name = "mlflow-otel-proxy"
        scope.scope.version = ProxyVersion.current
        scope.spans = [span]
        var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        for pair in resourceAttributes {
            var attribute = Opentelemetry_Proto_Common_V1_KeyValue()
            attribute.key = pair.key
            attribute.value.stringValue = pair.value
            resourceSpans.resource.attributes.append(attribute)
        }
        resourceSpans.scopeSpans = [scope]
        var request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        request.resourceSpans = [resourceSpans]
        return request
    }

    /// The usual cause of a failure, in words an operator can act on; `nil` when there is none to name.
    public static func hint(for failure: ExportFailure, destination: OTLPDestination) -> String? {
        let port = destination.endpoint.port
        let grpc = destination.transportProtocol == .grpc
        let reason = failure.reason.label.lowercased()
        if failure.credentialsRejected || reason == "grpc_unauthenticated" || reason == "grpc_permissiondenied" {
            if destination.profile == .datadog {
                return "Datadog answers 403 for an API key it does not know at this site: check `site` (datadoghq.com, datadoghq.eu, us3…, us5…, "
                    + "ap1…) against the site of the organization the key belongs to, and `api_key`"
            }
            return "the destination rejected the credentials: check the key or token in the destination's headers (a rotated or revoked key, "
                + "a key of another region or account)"
        }
        switch failure.httpStatus {
        case 404?:
            return "no OTLP receiver at this path: OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/traces appended, a traces_endpoint "
                + "(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is used as is; check which one is set"
        case 413?:
            return "the destination takes smaller requests: set max_request_bytes for it"
        case 415?:
            return "the destination does not take this encoding: try protocol: http/protobuf"
        default:
            break
        }
        let text = failure.message.lowercased()
        let refused = text.contains("refused") || reason == "grpc_unavailable" && text.contains("connect")
        if !grpc && port == 4317 {
            return "port 4317 is the OTLP/gRPC port and this destination speaks HTTP: set protocol: grpc, or use port 4318"
        }
        if grpc && port == 4318 {
            return "port 4318 is the OTLP/HTTP port and this destination speaks gRPC: set protocol: http/protobuf, or use port 4317"
        }
        if refused {
            let address = "\(destination.endpoint.host):\(port.map(String.init) ?? "default port")"
            return "nothing listens at \(address): check the host, the port and that the collector is running"
        }
        if failure.reason == .tls {
            return "TLS failed: an https:// endpoint needs a server with TLS (a plaintext collector takes http://), and a private CA needs "
                + "tls.ca_file"
        }
        if reason == "timeout" || reason == "grpc_deadlineexceeded" {
            return "no answer within the timeout: a firewall dropping packets, or a port that accepts connections and never answers"
        }
        return nil
    }
}
