import Foundation
import MLflowWire
import NIOCore
import OTLPJSON
import OTLPProto
import OTLPTranslation
import TestSupport
import Testing
import TraceAssembly

/// MLflow 2.x and 3.0–3.3 clients (v2 calls), the 3.17 client's fallbacks, and every capture replayed.
struct OlderClientsTests {
    func spans(of traces: [AssembledTrace]) -> [Opentelemetry_Proto_Trace_V1_Span] { traces.flatMap { $0.spans.map(\.span) } }

    @Test func decodesThe2xTracesJSONLayoutAndNormalisesMicrosecondEvents() throws {
        let exchange = try #require(try CaptureReplay.exchanges("2.22.5/01_sync_default").first { $0.path.hasSuffix("traces.json") })
        let batch = try TracesArtifactDecoder.decode(exchange.body, experimentID: "2")
        #expect(batch.containsWholeTrace)
        let root = try #require(batch.spans.first { $0.name == "agent_root" })
        #expect(HexID.string(root.traceID) == "8d3b60c66677c0ff6eb7f6123fd1edfd")
        #expect(HexID.string(root.spanID) == "3af62514e4c1b7a0")
        #expect(root.parentSpanID.isEmpty)
        #expect(root.startTimeUnixNano == 1_795_678_196_772_971_412)
        #expect(root.status.code == .ok)
        let retrieve = try #require(batch.spans.first { $0.name == "retrieve" })
        #expect(HexID.string(retrieve.parentSpanID) == "3af62514e4c1b7a0")
        // 2.x writes this event's time in microseconds (1795678196773414); it must come out in nanoseconds.
        #expect(retrieve.events.first?.timeUnixNano == 1_795_678_196_773_414_000)
        #expect(retrieve.events.first.map { $0.timeUnixNano >= retrieve.startTimeUnixNano && $0.timeUnixNano <= retrieve.endTimeUnixNano } == true)
        let failing = try #require(batch.spans.first { $0.name == "failing_tool" })
        #expect(failing.status.code == .error)
        #expect(failing.status.message.contains("tool exploded"))
    }

    @Test func decodesV2StartAndEndTrace() throws {
        let exchanges = try CaptureReplay.exchanges("2.22.5/01_sync_default")
        let start = try TraceInfoV2Decoder.decodeStartTrace(try #require(exchanges.first { $0.method == "POST" }).body)
        #expect(start.experimentID == "2")
        #expect(start.timestampMillis == 1_795_678_196_689)
        #expect(start.tags.first { $0.key == "mlflow.traceName" }?.value == "agent_root")
        let patch = try #require(exchanges.first { $0.method == "PATCH" })
        let end = try TraceInfoV2Decoder.decodeEndTrace(patch.body, requestID: "c4a0b072d04448e683317decf1dfbc36")
        #expect(end.isFinal && end.schemaVersion == 2 && end.otelTraceID == nil)
        #expect(end.state == "OK")
        #expect(end.tags["team"] == "wire")
        #expect(end.metadata["mlflow.traceInputs"]?.contains("What is MLflow?") == true)
        #expect(throws: WireError.self) { try TraceInfoV2Decoder.decodeEndTrace(Data("[]".utf8), requestID: "x") }
        #expect(throws: WireError.self) { try TraceInfoV2Decoder.decodeStartTrace(Data(#"{"tags": "no"}"#.utf8)) }
    }

    @Test func mergingPartsKeepsTheServersRequestIDAndFinalState() {
        var info = TraceInfo(traceID: "tr-" + String(repeating: "ab", count: 16), state: "OK", metadata: ["a": "1"], tags: ["t": "v3"])
        var start = TraceInfo(traceID: "c4a0b072d04448e683317decf1dfbc36", state: "IN_PROGRESS", tags: ["t": "start", "s": "x"])
        start.schemaVersion = 2
        start.isFinal = false
        info.merge(start)
        #expect(info.traceID == "c4a0b072d04448e683317decf1dfbc36")
        #expect(info.state == "OK")  // a start record does not override a final state
        #expect(info.isFinal)
        #expect(info.tags == ["t": "start", "s": "x"])
        #expect(info.metadata == ["a": "1"])
    }

    @Test(arguments: ["2.22.5/01_sync_default", "2.22.5/02_async", "2.22.5/03_dup_names", "3.1.4/01_sync", "3.1.4/02_async_default"])
    func v2ClientsGiveCompleteTracesWithTheirInfo(capture: String) throws {
        let exchanges = try CaptureReplay.exchanges(capture)
        let (traces, state) = CaptureReplay.assemble(try CaptureReplay.uploads(exchanges))
        let puts = exchanges.filter { $0.path.hasSuffix("traces.json") }
        #expect(traces.count == puts.count)
        for trace in traces {
            #expect(trace.completion == .complete, "\(capture) \(trace.mlflowTraceID)")
            let info = try #require(trace.info)
            // Exported under the spans' own trace id; the MLflow request id is kept as mlflow.trace_id.
            #expect(TraceInfoV2Decoder.decodeTraceInfoAnswer(Data()) == nil)
            #expect(info.traceID.count == 32 && info.schemaVersion == 2 && info.isFinal)
            #expect(HexID.string(trace.traceID) != info.traceID)
            let root = try #require(
                OTLPTraceTranslator.translate(trace, settings: TranslationSettings(scopeVersion: "1"))
                    .flatMap { $0.scopeSpans.flatMap(\.spans) }.first { $0.parentSpanID.isEmpty })
            #expect(root.attributes.first { $0.key == "mlflow.trace_id" }?.value.stringValue == info.traceID)
            #expect(root.attributes.first { $0.key == "mlflow.trace.state" }?.value.stringValue == info.state)
        }
        #expect(state.traceInfosWithoutSpans == 0 && state.lateTraceInfos == 0)
    }

    /// The 3.17 client against a server without StartTraceV3 falls back to the v2 calls with mismatched ids.
    @Test(arguments: ["3.17.2/faults/f06_starttracev3_404_plain_sync", "3.17.2/stub/s06_v3_404_fallback_v2_min"])
    func v2FallbackOf317GivesCompleteTraces(capture: String) throws {
        let exchanges = try CaptureReplay.exchanges(capture)
        let (traces, _) = CaptureReplay.assemble(try CaptureReplay.uploads(exchanges))
        #expect(traces.count == exchanges.filter { $0.path.hasSuffix("traces.json") }.count)
        for trace in traces {
            #expect(trace.completion == .complete)
            let info = try #require(trace.info)
            #expect(info.traceID.count == 32)  // the server's request id, not the client's tr- id
            #expect(info.metadata["mlflow.trace_schema.version"] == "3")
            let requestIDs = trace.spans.compactMap { $0.span.attributes.first { $0.key == "mlflow.traceRequestId" }?.value.stringValue }
            #expect(requestIDs.count == trace.spans.count)  // allSatisfy alone would hold for none
            #expect(requestIDs.allSatisfy { $0 == "\"tr-\(HexID.string(trace.traceID))\"" })
        }
    }

    /// Every upload of every capture (faults and stubs included) through the decoders and the assembler:
    /// each span the client sent comes out exactly once, however often and by whichever path it came.
    @Test func everyCaptureReplaysWithEverySpanExactlyOnce() throws {
        let root = CaptureReplay.directory("3.17.2/01_sync").deletingLastPathComponent().deletingLastPathComponent()
        var captures: [String] = []
        for version in ["2.22.5", "3.1.4", "3.17.2"] {
            let versionDirectory = root.appendingPathComponent(version)
            for entry in try FileManager.default.contentsOfDirectory(atPath: versionDirectory.path).sorted() {
                if entry == "faults" || entry == "stub" {
                    for scenario in try FileManager.default.contentsOfDirectory(atPath: versionDirectory.appendingPathComponent(entry).path).sorted()
                    {
                        captures.append("\(version)/\(entry)/\(scenario)")
                    }
                } else if !entry.contains("probes") {  // 16_server_v1traces_probes: deliberately bad requests, tested below
                    captures.append("\(version)/\(entry)")
                }
            }
        }
        #expect(captures.count >= 50)
        var totalSpans = 0
        for capture in captures {
            let uploads = try CaptureReplay.uploads(try CaptureReplay.exchanges(capture))
            var sent: Set<String> = []
            for case .spans(let batches) in uploads {
                for batch in batches { for span in batch.spans { sent.insert(HexID.string(span.traceID) + HexID.string(span.spanID)) } }
            }
            let out = spans(of: CaptureReplay.assemble(uploads).traces).map { HexID.string($0.traceID) + HexID.string($0.spanID) }
            #expect(out.count == sent.count, "\(capture): \(out.count) spans out, \(sent.count) distinct sent")
            #expect(Set(out) == sent, "\(capture)")
            totalSpans += out.count
        }
        #expect(totalSpans > 100)
    }

    /// The probes sent at the MLflow server's own /v1/traces (wrong content type, empty body, JSON …): each is
    /// decoded or rejected with a clear WireError, never anything else.
    @Test func serverProbesAreDecodedOrRejectedClearly() throws {
        var outcomes: [String] = []
        for exchange in try CaptureReplay.exchanges("16_server_v1traces_probes") where exchange.path == "/v1/traces" {
            do {
                let format = try OTLPRequestDecoder.bodyFormat(contentType: exchange.header("content-type"))
                let body = try OTLPRequestDecoder.decompress(
                    .init(bytes: exchange.body), contentEncoding: exchange.header("content-encoding"), limit: 1 << 24
                )
                outcomes.append("ok:\(try OTLPRequestDecoder.decode(body, format: format, experimentID: nil).count)")
            } catch {
                outcomes.append(error.kind.rawValue)
            }
        }
        #expect(outcomes.contains("unsupported_content_type"))
        #expect(outcomes.contains { $0.hasPrefix("ok:") })
    }

    @Test func v2InfoWithoutSpansIsForgottenAfterTheWait() {
        var state = TraceAssemblyState(settings: AssemblySettings(maxWait: .seconds(2)))
        var info = TraceInfo(traceID: String(repeating: "0", count: 32))
        info.schemaVersion = 2
        let start = ContinuousClock.now
        #expect(state.add(info: info, now: start).isEmpty)
        #expect(state.expire(now: start.advanced(by: .seconds(3))).isEmpty)
        #expect(state.traceInfosWithoutSpans == 1)
    }

    @Test func spanAndMemoryLimitsExportWhatArrived() {
        func span(_ trace: UInt8, _ id: UInt8, parent: UInt8?) -> Opentelemetry_Proto_Trace_V1_Span {
            var span = Opentelemetry_Proto_Trace_V1_Span()
            span.traceID = Data(repeating: trace, count: 16)
            span.spanID = Data(repeating: id, count: 8)
            if let parent { span.parentSpanID = Data(repeating: parent, count: 8) }
            return span
        }
        var state = TraceAssemblyState(settings: AssemblySettings(maxSpansPerTrace: 3))
        let released = state.add(SpanBatch(spans: (1...4).map { span(1, $0, parent: 9) }, encoding: .typed), now: .now)
        #expect(released.map(\.completion) == [.spanLimit, .lateSpans])
        #expect(released.map(\.spans.count) == [3, 1])

        var memory = TraceAssemblyState(settings: AssemblySettings(maxBytesHeld: 1000))
        var batch = SpanBatch(spans: [span(2, 1, parent: 9)], encoding: .typed)
        batch.bytesPerSpan = 600
        #expect(memory.add(batch, now: .now).isEmpty)
        batch.spans = [span(3, 1, parent: 9)]
        let evicted = memory.add(batch, now: .now)
        #expect(evicted.map(\.completion) == [.memoryLimit])
        #expect(evicted.first?.traceID == Data(repeating: 2, count: 16))
        #expect(memory.bytesInFlight == 600)
    }

    @Test func pureOpenTelemetrySendersKeepTheirScope() throws {
        let (traces, _) = CaptureReplay.assemble(try CaptureReplay.uploads(try CaptureReplay.exchanges("15_otel_autolog_forwarding")))
        #expect(traces.count == 1)
        #expect(traces.first?.completion == .complete)
        let output = traces.flatMap { OTLPTraceTranslator.translate($0, settings: TranslationSettings(scopeVersion: "1")) }
        let scopes = output.flatMap(\.scopeSpans).map(\.scope.name)
        #expect(scopes == ["my.instrumentation"])
        let resource = Dictionary(uniqueKeysWithValues: output[0].resource.attributes.map { ($0.key, $0.value.stringValue) })
        #expect(resource["service.name"] != "unknown_service")
        #expect(output.flatMap(\.scopeSpans).flatMap(\.spans).map(\.kind).contains(.client))
    }
}
