import Foundation
import MLflowWire
import OTLPJSON
import OTLPProto
import TestSupport
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

    /// Ids are keys by their exact bytes, whatever their length: ids that differ only in length (a malformed upload's
    /// 17-byte or empty trace id, span ids of trailing zeros) are different traces and spans, and every released trace
    /// carries the id bytes its spans came with.
    @Test func idsOfAnyLengthAreKeptApartAndReturnedAsSent() {
        func span(trace: Data, id: Data, parent: Data? = nil) -> Opentelemetry_Proto_Trace_V1_Span {
            var span = Opentelemetry_Proto_Trace_V1_Span()
            span.traceID = trace
            span.spanID = id
            if let parent { span.parentSpanID = parent }
            return span
        }
        let full = Data((1...16).map { UInt8($0) })
        let traceIDs = [full, full + [0], full.prefix(8), Data(), Data(repeating: 0, count: 16), Data(repeating: 0, count: 15), full + full]
        var state = TraceAssemblyState(settings: AssemblySettings())
        let now = ContinuousClock.now
        var released: [AssembledTrace] = []
        for traceID in traceIDs {
            // A root and a child whose span id is the root's with a trailing zero byte: two spans, not a duplicate.
            let spans = [
                span(trace: traceID, id: Data([0, 0, 0, 1])), span(trace: traceID, id: Data([0, 0, 0, 1, 0]), parent: Data([0, 0, 0, 1])),
            ]
            released += state.add(SpanBatch(spans: spans, encoding: .typed), now: now)
        }
        #expect(released.map(\.traceID) == traceIDs)
        #expect(released.allSatisfy { $0.spans.count == 2 && $0.completion == .complete })
        #expect(state.duplicateSpans == 0)
        // The same spans again: every one a duplicate of its own trace, none taken for another's.
        for traceID in traceIDs {
            _ = state.add(SpanBatch(spans: [span(trace: traceID, id: Data([0, 0, 0, 1]))], encoding: .typed), now: now)
            #expect(state.hasSpans(traceID: traceID))
        }
        #expect(state.duplicateSpans == traceIDs.count)
        #expect(!state.hasSpans(traceID: full + [0, 0]))
    }

    /// Span ids of 8 bytes (kept as integers) and of other lengths (kept whole) in one trace: a parent is found by its
    /// exact id, a 16-byte id that starts with an 8-byte one is another span, and a repeated id is a duplicate.
    @Test func eightByteSpanIDsAreMatchedExactly() {
        func span(id: Data, parent: Data? = nil) -> Opentelemetry_Proto_Trace_V1_Span {
            var span = Opentelemetry_Proto_Trace_V1_Span()
            span.traceID = Data(repeating: 7, count: 16)
            span.spanID = id
            if let parent { span.parentSpanID = parent }
            return span
        }
        let root = Data((1...8).map { UInt8($0) })
        let middle = Data((1...8).map { UInt8($0 * 3) })
        let long = root + root
        var state = TraceAssemblyState(settings: AssemblySettings())
        let now = ContinuousClock.now
        // The leaf names a parent not yet here (same bytes as the root's but one): the trace waits.
        var parentOfLeaf = middle
        parentOfLeaf[parentOfLeaf.startIndex + 7] ^= 1
        #expect(state.add(SpanBatch(spans: [span(id: root), span(id: long, parent: parentOfLeaf)], encoding: .typed), now: now).isEmpty)
        #expect(state.add(SpanBatch(spans: [span(id: middle, parent: root)], encoding: .typed), now: now).isEmpty)
        let released = state.add(SpanBatch(spans: [span(id: parentOfLeaf, parent: root)], encoding: .typed), now: now)
        #expect(released.map(\.spans.count) == [4])
        #expect(state.duplicateSpans == 0)
        // The same ids again: duplicates; ids that only start with an 8-byte one's bytes are new (late) spans.
        _ = state.add(SpanBatch(spans: [span(id: root), span(id: middle), span(id: long)], encoding: .typed), now: now)
        #expect(state.duplicateSpans == 3)
        _ = state.add(SpanBatch(spans: [span(id: root + [0]), span(id: long.prefix(15))], encoding: .typed), now: now)
        #expect(state.duplicateSpans == 3)
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

    @Test func traceInfoAndWaitingV2RecordsCountTowardTheBytesHeld() {
        func v2Start(_ index: Int, tagBytes: Int) -> TraceInfo {
            var info = TraceInfo(traceID: String(format: "%032x", index), tags: ["big": String(repeating: "t", count: tagBytes)])
            info.schemaVersion = 2
            info.isFinal = false
            return info
        }
        var state = TraceAssemblyState(settings: AssemblySettings(maxBytesHeld: 100_000))
        // v2 records whose spans never come: only the bytes bound keeps them from piling up before their wait ends.
        for index in 1...10 { #expect(state.add(info: v2Start(index, tagBytes: 30_000), now: .now).isEmpty) }
        #expect(state.bytesInFlight <= 100_000)
        #expect(state.traceInfosWithoutSpans == 7)
        #expect(!state.isHolding(requestID: String(format: "%032x", 1)))
        #expect(state.isHolding(requestID: String(format: "%032x", 10)))
        // A 3.x trace's info counts with its spans: a large info releases the trace for the memory bound.
        var info = TraceInfo(traceID: "tr-" + String(repeating: "ab", count: 16), metadata: ["m": String(repeating: "m", count: 200_000)])
        info.isFinal = true
        let released = state.add(info: info, now: .now)
        #expect(released.map(\.completion) == [.memoryLimit])
        #expect(state.bytesInFlight <= 100_000)
    }

    @Test func rememberedSpanIDsAreCappedOverAllExportedTraces() {
        var state = TraceAssemblyState(settings: AssemblySettings(maxRememberedSpanIDs: 250))
        func trace(_ index: UInt8, spans: Int) -> SpanBatch {
            var result: [Opentelemetry_Proto_Trace_V1_Span] = []
            for spanIndex in 0..<spans {
                var span = Opentelemetry_Proto_Trace_V1_Span()
                span.traceID = Data(repeating: index, count: 16)
                span.spanID = Data([UInt8(spanIndex), 0, 1, 1, 1, 1, 1, 1])
                if spanIndex > 0 { span.parentSpanID = Data([0, 0, 1, 1, 1, 1, 1, 1]) }
                result.append(span)
            }
            return SpanBatch(spans: result, encoding: .typed)
        }
        for index: UInt8 in 1...3 { #expect(state.add(trace(index, spans: 100), now: .now).count == 1) }
        // Trace 1 was forgotten to keep at most 250 ids (3 × 100 = 300): its spans would be exported again;
        // traces 2 and 3 are still deduplicated.
        #expect(state.add(trace(3, spans: 100), now: .now).isEmpty)
        #expect(state.add(trace(2, spans: 100), now: .now).isEmpty)
        #expect(!state.hasSpans(traceID: Data(repeating: 1, count: 16)))
        #expect(state.duplicateSpans == 200)
    }
}
