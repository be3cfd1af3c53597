import Foundation
import GRPCCore
import OTLPProto
import SwiftProtobuf
import TestSupport
import Testing

/// The committed code generated from the official opentelemetry-proto descriptors reads what a real MLflow client
/// sent (a captured 3.17.2 upload), field for field as the capture tool decoded it independently, and writes
/// the same bytes back.
@Suite struct GeneratedCodeTests {
    @Test func aCapturedUploadDecodesAsTheCaptureToolDecodedIt() throws {
        let uploads = try CaptureReplay.exchanges("01_sync").filter { $0.method == "POST" && $0.path == "/v1/traces" }
        try #require(!uploads.isEmpty)
        for upload in uploads {
            let request = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: upload.body)
            let spans = request.resourceSpans.flatMap(\.scopeSpans).flatMap(\.spans)
            let expected = try #require(upload.decodedBody as? [String: Any])
            let expectedSpans = ((expected["resourceSpans"] ?? expected["resource_spans"]) as? [[String: Any]] ?? [])
                .flatMap { ($0["scopeSpans"] ?? $0["scope_spans"]) as? [[String: Any]] ?? [] }
                .flatMap { $0["spans"] as? [[String: Any]] ?? [] }
            try #require(!spans.isEmpty)
            #expect(spans.count == expectedSpans.count)
            for (span, reference) in zip(spans, expectedSpans) {
                #expect(span.name == reference["name"] as? String)
                let hex = span.spanID.map { String(format: "%02x", $0) }.joined()
                #expect(hex == ((reference["spanId"] ?? reference["span_id"]) as? String)?.lowercased())
            }
            let reencoded: Data = try request.serializedBytes()
            #expect(try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: reencoded) == request)
        }
    }

    @Test func theServiceNamesAreTheCollectorsOwn() {
        // The gRPC paths a collector serves: a typo here would make every gRPC export fail with UNIMPLEMENTED.
        #expect(
            Opentelemetry_Proto_Collector_Trace_V1_TraceService.descriptor.fullyQualifiedService
                == "opentelemetry.proto.collector.trace.v1.TraceService")
        #expect(
            Opentelemetry_Proto_Collector_Metrics_V1_MetricsService.descriptor.fullyQualifiedService
                == "opentelemetry.proto.collector.metrics.v1.MetricsService")
    }
}
