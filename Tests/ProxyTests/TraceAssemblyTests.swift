import Foundation
import MLflowWire
import OTLPJSON
import OTLPProto
import Testing
import TraceAssembly

struct TraceAssemblyTests {
    @Test func syncCaptureGivesFourCompleteTracesWithTheirInfo() throws {
        let (traces, state) = CaptureReplay.assemble(try CaptureReplay.uploads(try CaptureReplay.exchanges("01_sync")))
        #expect(traces.count == 4)
        #expect(traces.allSatisfy { $0.completion == .complete && $0.info != nil })
        #expect(traces.map(\.spans.count) == [3, 2, 1, 2])
        #expect(state.duplicateSpans == 0)
    }

    /// The async client uploads every span twice (`traces.json` first here, then `/v1/traces`).
    @Test func asyncDoubleUploadExportsEverySpanExactlyOnce() throws {
        let (traces, state) = CaptureReplay.assemble(try CaptureReplay.uploads(try CaptureReplay.exchanges("02_async_default")))
        #expect(traces.count == 4)
        #expect(traces.allSatisfy { $0.completion == .complete && $0.info != nil })
        let spanIDs = traces.flatMap { $0.spans.map { $0.span.spanID } }
        #expect(spanIDs.count == 8)
        #expect(Set(spanIDs).count == 8)
        #expect(state.duplicateSpans == 8)
    }

    @Test func anyArrivalOrderGivesTheSameSpans() throws {
        let uploads = try CaptureReplay.uploads(try CaptureReplay.exchanges("02_async_default"))
        func signature(_ traces: [AssembledTrace]) -> [String: Set<String>] {
            var result: [String: Set<String>] = [:]
            for trace in traces { result[HexID.string(trace.traceID), default: []].formUnion(trace.spans.map { HexID.string($0.span.spanID) }) }
            return result
        }
        let forward = signature(CaptureReplay.assemble(uploads).traces)
        let reversed = CaptureReplay.assemble(uploads.reversed())
        #expect(signature(reversed.traces) == forward)
        #expect(reversed.traces.filter { $0.completion != .lateSpans }.allSatisfy { $0.info != nil })
        // Retried uploads: everything sent twice more.
        let retried = CaptureReplay.assemble(uploads + uploads + uploads)
        #expect(retried.traces.flatMap(\.spans).count == 8)
    }

    @Test func traceInfoBeforeSpansWaitsForTheReportedSpanCount() throws {
        let uploads = try CaptureReplay.uploads(try CaptureReplay.exchanges("01_sync"))
        let infos = uploads.filter { if case .info = $0 { true } else { false } }
        let spans = uploads.filter { if case .spans = $0 { true } else { false } }
        var state = TraceAssemblyState(settings: AssemblySettings())
        let now = ContinuousClock.now
        for case .info(let info) in infos { #expect(state.add(info: info, now: now).isEmpty) }
        var released: [AssembledTrace] = []
        for case .spans(let batches) in spans { for batch in batches { released += state.add(batch, now: now) } }
        #expect(released.count == 4)
        #expect(released.allSatisfy { $0.completion == .complete })
        #expect(state.tracesInFlight == 0)
    }

    @Test func missingTraceInfoIsWaitedForBoundedly() throws {
        let uploads = try CaptureReplay.uploads(try CaptureReplay.exchanges("01_sync"))
        var state = TraceAssemblyState(settings: AssemblySettings(maxWait: .seconds(5)))
        let start = ContinuousClock.now
        for case .spans(let batches) in uploads { for batch in batches { #expect(state.add(batch, now: start).isEmpty) } }
        #expect(state.expire(now: start.advanced(by: .seconds(4))).isEmpty)
        let released = state.expire(now: start.advanced(by: .seconds(5)))
        #expect(released.count == 4)
        #expect(released.allSatisfy { $0.completion == .timedOut && $0.info == nil })
        // The info arriving late is counted; spans arriving late are exported once, as late spans.
        for case .info(let info) in uploads { _ = state.add(info: info, now: start.advanced(by: .seconds(6))) }
        #expect(state.lateTraceInfos == 4)
        for case .spans(let batches) in uploads { for batch in batches { #expect(state.add(batch, now: start.advanced(by: .seconds(6))).isEmpty) } }
        #expect(state.duplicateSpans == 8)
    }

    @Test func pureOpenTelemetrySpansNeedNoTraceInfo() {
        var root = Opentelemetry_Proto_Trace_V1_Span()
        root.traceID = Data(repeating: 1, count: 16)
        root.spanID = Data(repeating: 2, count: 8)
        root.name = "http.request"
        var child = root
        child.spanID = Data(repeating: 3, count: 8)
        child.parentSpanID = root.spanID
        var state = TraceAssemblyState(settings: AssemblySettings())
        #expect(state.add(SpanBatch(spans: [child], encoding: .typed), now: .now).isEmpty)
        let released = state.add(SpanBatch(spans: [root], encoding: .typed), now: .now)
        #expect(released.count == 1)
        #expect(released.first?.spans.count == 2)
    }

    @Test func tooManyTracesInFlightReleasesTheOldest() {
        var state = TraceAssemblyState(settings: AssemblySettings(maxTracesInFlight: 2))
        var released: [AssembledTrace] = []
        for index in 1...3 {
            var span = Opentelemetry_Proto_Trace_V1_Span()
            span.traceID = Data(repeating: UInt8(index), count: 16)
            span.spanID = Data(repeating: 9, count: 8)
            span.parentSpanID = Data(repeating: 8, count: 8)  // parent never arrives
            released += state.add(SpanBatch(spans: [span], encoding: .typed), now: .now)
        }
        #expect(released.count == 1)
        #expect(released.first?.completion == .traceLimit)
        #expect(released.first?.traceID == Data(repeating: 1, count: 16))
        #expect(state.tracesInFlight == 2)
    }
}
