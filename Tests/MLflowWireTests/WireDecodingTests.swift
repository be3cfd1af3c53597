import CompressNIO
import Foundation
import MLflowWire
import NIOCore
import OTLPJSON
import OTLPProto
import SwiftProtobuf
import TestSupport
import Testing

struct WireDecodingTests {
    @Test func decodesTheClientsOTLPProtobuf() throws {
        let exchange = try #require(try CaptureReplay.exchanges("01_sync").first { $0.path == "/v1/traces" })
        let batches = try OTLPRequestDecoder.decode(ByteBuffer(bytes: exchange.body), format: .protobuf, experimentID: "1")
        let span = try #require(batches.first?.spans.first)
        #expect(batches.first?.encoding == .typed)
        #expect(batches.first?.experimentID == "1")
        #expect(HexID.string(span.traceID) == "cbb5f34da7c557e5d936b2e766a48e47")
        #expect(HexID.string(span.spanID) == "583260375998f52f")
        #expect(HexID.string(span.parentSpanID) == "a4c00b5e7e2aa331")
        #expect(span.name == "retrieve")
        #expect(batches.first?.resourceAttributes.map(\.key) == ["telemetry.sdk.language", "telemetry.sdk.name", "telemetry.sdk.version"])
    }

    @Test func otlpJSONWithHexIDsDecodesToTheSameSpans() throws {
        let exchange = try #require(try CaptureReplay.exchanges("01_sync").first { $0.path == "/v1/traces" })
        let request = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: Array(exchange.body))
        let json = try OTLPJSONCoding.encode(request)
        #expect(String(decoding: json, as: UTF8.self).contains("\"traceId\":\"cbb5f34da7c557e5d936b2e766a48e47\""))
        let fromJSON = try OTLPRequestDecoder.decode(ByteBuffer(bytes: json), format: .json, experimentID: nil)
        #expect(fromJSON.first?.spans == request.resourceSpans[0].scopeSpans[0].spans)
    }

    @Test func gzipAndDeflateBodiesAreDecompressed() throws {
        let exchange = try #require(try CaptureReplay.exchanges("01_sync").first { $0.path == "/v1/traces" })
        var plain = ByteBuffer(bytes: exchange.body)
        let gzipped = try plain.compress(with: .gzip())
        #expect(try OTLPRequestDecoder.decompress(gzipped, contentEncoding: "gzip", limit: 1 << 20) == ByteBuffer(bytes: exchange.body))
        #expect(throws: WireError.self) { try OTLPRequestDecoder.decompress(ByteBuffer(string: "not gzip"), contentEncoding: "gzip", limit: 1 << 20) }
        #expect(throws: WireError.self) { try OTLPRequestDecoder.decompress(gzipped, contentEncoding: "br", limit: 1 << 20) }
        do {
            _ = try OTLPRequestDecoder.decompress(gzipped, contentEncoding: "gzip", limit: 10)
            Issue.record("the size limit must hold after decompression")
        } catch {
            #expect(error.kind == .bodyTooLarge)
        }
    }

    @Test func badInputIsAClearClientError() {
        func kind(_ body: () throws -> Void) -> WireError.Kind? {
            do { try body() } catch { return (error as? WireError)?.kind }
            return nil
        }
        #expect(kind { _ = try OTLPRequestDecoder.bodyFormat(contentType: "text/plain") } == .unsupportedContentType)
        #expect(kind { _ = try OTLPRequestDecoder.bodyFormat(contentType: nil) } == .unsupportedContentType)
        #expect((try? OTLPRequestDecoder.bodyFormat(contentType: "application/json; charset=utf-8")) == .json)
        #expect((try? OTLPRequestDecoder.bodyFormat(contentType: " Application/X-Protobuf\t;charset=binary")) == .protobuf)
        #expect((try? OTLPRequestDecoder.bodyFormat(contentType: "\tapplication/protobuf")) == .protobuf)
        #expect(kind { _ = try OTLPRequestDecoder.bodyFormat(contentType: "application/json-seq") } == .unsupportedContentType)
        #expect(kind { _ = try OTLPRequestDecoder.bodyFormat(contentType: ";application/json") } == .unsupportedContentType)
        // Compared byte by byte: every length, case and near miss.
        #expect((try? OTLPRequestDecoder.bodyFormat(contentType: "APPLICATION/JSON ")) == .json)
        #expect((try? OTLPRequestDecoder.bodyFormat(contentType: "application/x-protobuf")) == .protobuf)
        for nearMiss in [
            "", " ", "application/jsom", "application/jso", "application/json5", "application/x-protobuF2", "applicatio/json",
            "application/\u{E9}son", "application/ json", "application/j\u{0}on", "application/JSON\u{A0}",
        ] {
            #expect(kind { _ = try OTLPRequestDecoder.bodyFormat(contentType: nearMiss) } == .unsupportedContentType, "\(nearMiss)")
        }
        #expect(
            kind { _ = try OTLPRequestDecoder.decode(ByteBuffer(bytes: [0xff, 0xff, 0xff]), format: .protobuf, experimentID: nil) } == .malformedBody)
        #expect(kind { _ = try OTLPRequestDecoder.decode(ByteBuffer(string: "{not json"), format: .json, experimentID: nil) } == .malformedBody)
        let badID = #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"0102030405060708","name":"x"}]}]}]}"#
        #expect(kind { _ = try OTLPRequestDecoder.decode(ByteBuffer(string: badID), format: .json, experimentID: nil) } == .malformedBody)
        let shortID = #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102","spanId":"0102030405060708","name":"x"}]}]}]}"#
        #expect(kind { _ = try OTLPRequestDecoder.decode(ByteBuffer(string: shortID), format: .json, experimentID: nil) } == .invalidID)
        // An all-zero trace id is invalid (OTLP); one non-zero byte, the last, makes it valid.
        let zeroID = #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"00000000000000000000000000000000","spanId":"0102030405060708"}]}]}]}"#
        #expect(kind { _ = try OTLPRequestDecoder.decode(ByteBuffer(string: zeroID), format: .json, experimentID: nil) } == .invalidID)
        let lastByte = zeroID.replacingOccurrences(of: "00000000000000000000000000000000", with: "00000000000000000000000000000001")
        #expect((try? OTLPRequestDecoder.decode(ByteBuffer(string: lastByte), format: .json, experimentID: nil))?.first?.spans.count == 1)
        #expect(kind { _ = try StartTraceV3Decoder.decode(Data("{}".utf8)) } == .malformedBody)
        #expect(kind { _ = try TracesArtifactDecoder.decode(Data(#"{"spans":[{"trace_id":"x"}]}"#.utf8), experimentID: nil) } == .invalidID)
        #expect(WireError(.unsupportedContentType, "").httpStatus == 415)
        #expect(WireError(.malformedBody, "").httpStatus == 400)
        #expect(WireError(.bodyTooLarge, "").httpStatus == 413)
    }

    @Test func emptyExportRequestDecodesToNoBatches() throws {
        #expect(try OTLPRequestDecoder.decode(ByteBuffer(), format: .protobuf, experimentID: "1").isEmpty)
    }

    @Test func decodesStartTraceV3() throws {
        let exchange = try #require(try CaptureReplay.exchanges("01_sync").first { $0.path == "/api/3.0/mlflow/traces" })
        let info = try StartTraceV3Decoder.decode(exchange.body).info
        #expect(info.traceID == "tr-cbb5f34da7c557e5d936b2e766a48e47")
        #expect(info.otelTraceID.map { HexID.string($0) } == "cbb5f34da7c557e5d936b2e766a48e47")
        #expect(info.clientRequestID == "req-abc")
        #expect(info.experimentID == "1")
        #expect(info.state == "OK")
        #expect(info.tags["team"] == "wire")
        #expect(info.metadata["mlflow.trace.session"] == "session-123")
        #expect(info.expectedSpanCount == 3)
    }

    @Test func decodesTracesJSONOf317() throws {
        let exchange = try #require(
            try CaptureReplay.exchanges("02_async_default").first { $0.path.hasSuffix("tr-99ccd723cc7a3d734cd93ef1590a0ed4/artifacts/traces.json") })
        let batch = try TracesArtifactDecoder.decode(exchange.body, experimentID: "1")
        #expect(batch.encoding == .jsonText)
        #expect(batch.spans.map(\.name) == ["agent_root", "retrieve", "failing_tool"])
        let root = batch.spans[0]
        #expect(HexID.string(root.traceID) == "99ccd723cc7a3d734cd93ef1590a0ed4")
        #expect(root.parentSpanID.isEmpty)
        #expect(root.startTimeUnixNano == 1_795_678_094_055_085_705)
        #expect(root.attributes.first { $0.key == "int_attr" }?.value.stringValue == "42")
        let failing = batch.spans[2]
        #expect(failing.status.code == .error)
        #expect(failing.status.message == "ValueError: tool exploded")
        #expect(failing.events.first?.name == "exception")
        #expect(failing.events.first?.attributes.map(\.key) == ["exception.message", "exception.stacktrace", "exception.type"])
        let retrieve = batch.spans[1]
        #expect(retrieve.events.first?.attributes.first { $0.key == "n" }?.value.intValue == 3)
        #expect(retrieve.events.first?.attributes.first { $0.key == "ok" }?.value.boolValue == false)
    }
}
