import Foundation
import MLflowWire
import OTLPJSON
import OTLPProto
import OTLPTranslation
import TestSupport
import Testing
import TraceAssembly

/// The OTLP the proxy emits for the captured 3.17.2 uploads, compared field by field with what the
/// client sent (the capture's own decoding of the same bodies).
struct TranslationGoldenTests {
    static let settings = TranslationSettings(
        serviceName: "checkout", resourceAttributes: [(key: "deployment.environment", value: "test")], scopeVersion: "9.9.9"
    )

    func translated(_ capture: String) throws -> [Opentelemetry_Proto_Trace_V1_ResourceSpans] {
        let (traces, _) = CaptureReplay.assemble(try CaptureReplay.uploads(try CaptureReplay.exchanges(capture)))
        return traces.flatMap { OTLPTraceTranslator.translate($0, settings: Self.settings) }
    }

    func spans(_ resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) -> [Opentelemetry_Proto_Trace_V1_Span] {
        resourceSpans.flatMap { $0.scopeSpans.flatMap(\.spans) }
    }

    func attribute(_ span: Opentelemetry_Proto_Trace_V1_Span, _ key: String) -> Opentelemetry_Proto_Common_V1_AnyValue? {
        span.attributes.first { $0.key == key }?.value
    }

    @Test func idsParentsTimesAndStatusMatchWhatTheClientSent() throws {
        let output = spans(try translated("01_sync"))
        var sent: [String: [String: Any]] = [:]
        for exchange in try CaptureReplay.exchanges("01_sync") where exchange.path == "/v1/traces" {
            let body = exchange.decodedBody as! [String: Any]
            for resource in body["resourceSpans"] as! [[String: Any]] {
                for scope in resource["scopeSpans"] as! [[String: Any]] {
                    for span in scope["spans"] as! [[String: Any]] { sent[span["spanId"] as! String] = span }
                }
            }
        }
        #expect(output.count == sent.count)
        #expect(output.count == 8)
        for span in output {
            let original = try #require(sent[HexID.string(span.spanID)])
            #expect(HexID.string(span.traceID) == original["traceId"] as? String)
            #expect(HexID.string(span.parentSpanID) == (original["parentSpanId"] as? String ?? ""))
            #expect(span.name == original["name"] as? String)
            #expect(String(span.startTimeUnixNano) == original["startTimeUnixNano"] as? String)
            #expect(String(span.endTimeUnixNano) == original["endTimeUnixNano"] as? String)
            let status = original["status"] as? [String: Any]
            #expect(span.status.code == (status?["code"] as? String == "STATUS_CODE_ERROR" ? .error : .ok))
            #expect(span.status.message == (status?["message"] as? String ?? ""))
            #expect(span.kind == .internal)
            #expect(span.events.map(\.name) == ((original["events"] as? [[String: Any]]) ?? []).map { $0["name"] as! String })
        }
        let failing = try #require(output.first { $0.name == "failing_tool" })
        let exception = try #require(failing.events.first)
        #expect(exception.attributes.first { $0.key == "exception.type" }?.value.stringValue == "ValueError")
        #expect(exception.attributes.first { $0.key == "exception.message" }?.value.stringValue == "tool exploded")
        #expect(exception.attributes.first { $0.key == "exception.stacktrace" }?.value.stringValue.contains("Traceback") == true)
    }

    @Test func traceLevelDataIsOnTheRootSpanOnly() throws {
        let output = spans(try translated("01_sync"))
        let root = try #require(output.first { $0.name == "agent_root" })
        #expect(attribute(root, "mlflow.trace_id")?.stringValue == "tr-cbb5f34da7c557e5d936b2e766a48e47")
        #expect(attribute(root, "mlflow.trace.tag.team")?.stringValue == "wire")
        #expect(attribute(root, "mlflow.trace.tag.env")?.stringValue == "test")
        #expect(attribute(root, "mlflow.trace.tag.mlflow.traceName")?.stringValue == "agent_root")
        #expect(attribute(root, "mlflow.trace.metadata.mlflow.trace.session")?.stringValue == "session-123")
        #expect(attribute(root, "session.id")?.stringValue == "session-123")
        #expect(attribute(root, "user.id")?.stringValue == "alice")
        #expect(attribute(root, "mlflow.trace.state")?.stringValue == "OK")
        #expect(attribute(root, "mlflow.trace.client_request_id")?.stringValue == "req-abc")
        #expect(attribute(root, "mlflow.trace.request_preview") != nil)
        let child = try #require(output.first { $0.name == "retrieve" })
        #expect(!child.attributes.contains { $0.key.hasPrefix("mlflow.trace.") || $0.key == "session.id" })
        let boom = try #require(output.first { $0.name == "boom" })
        #expect(attribute(boom, "mlflow.trace.state")?.stringValue == "ERROR")
        let llm = try #require(output.first { $0.name == "chat_completion" })
        #expect(attribute(llm, "mlflow.chat.tokenUsage")?.stringValue == #"{"input_tokens": 12, "output_tokens": 5, "total_tokens": 17}"#)
        #expect(attribute(llm, "mlflow.spanType")?.stringValue == "CHAT_MODEL")
    }

    @Test func resourceAndScope() throws {
        let resourceSpans = try translated("01_sync")
        #expect(!resourceSpans.isEmpty)
        for item in resourceSpans {
            let attributes = Dictionary(uniqueKeysWithValues: item.resource.attributes.map { ($0.key, $0.value.stringValue) })
            #expect(attributes["service.name"] == "checkout")
            #expect(attributes["deployment.environment"] == "test")
            #expect(attributes["telemetry.sdk.name"] == "mlflow")
            #expect(attributes["telemetry.sdk.version"] == "3.17.2")
            #expect(attributes["mlflow.experiment_id"] == "1")
            #expect(item.scopeSpans.first?.scope.name == "mlflow-otel-proxy")
            #expect(item.scopeSpans.first?.scope.version == "9.9.9")
        }
    }

    @Test func serviceNameDefaultsToUnknownService() throws {
        let (traces, _) = CaptureReplay.assemble(try CaptureReplay.uploads(try CaptureReplay.exchanges("03_attachments_dup_names")))
        let output = traces.flatMap { OTLPTraceTranslator.translate($0, settings: TranslationSettings(scopeVersion: "1")) }
        #expect(!output.isEmpty)  // allSatisfy alone would hold for none
        #expect(output.allSatisfy { $0.resource.attributes.contains { $0.key == "service.name" && $0.value.stringValue == "unknown_service" } })
    }

    @Test func attachmentReferencesStayInTheSpan() throws {
        let output = spans(try translated("03_attachments_dup_names"))
        let references = output.flatMap(\.attributes).map(\.value.stringValue).filter { $0.contains("mlflow-attachment://") }
        #expect(!references.isEmpty)
        // Duplicate sibling names (3.17 does not rename them) are all kept.
        #expect(output.filter { $0.name == "llm" }.count >= 2)
    }

    @Test func asyncDuplicatesTranslateToOneCopyEach() throws {
        let output = spans(try translated("02_async_default"))
        #expect(output.count == 8)
        #expect(Set(output.map(\.spanID)).count == 8)
    }
}
