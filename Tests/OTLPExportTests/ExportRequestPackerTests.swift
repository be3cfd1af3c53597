import Foundation
import OTLPExport
import OTLPProto
import SwiftProtobuf
import Testing

/// Traces packed into export requests: bounds, the trace that completes with each request, a trace bigger than a
/// request split.
struct ExportRequestPackerTests {
    static func trace(_ number: UInt8, spans: Int, valueBytes: Int = 10) -> [Opentelemetry_Proto_Trace_V1_ResourceSpans] {
        var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        scope.spans = (0..<spans).map { index in
            var span = Opentelemetry_Proto_Trace_V1_Span()
            span.traceID = Data(repeating: number, count: 16)
            span.spanID = Data([UInt8](repeating: number, count: 7) + [UInt8(index)])
            span.name = "span \(index)"
            var attribute = Opentelemetry_Proto_Common_V1_KeyValue()
            attribute.key = "payload"
            attribute.value.stringValue = String(repeating: "x", count: valueBytes)
            span.attributes = [attribute]
            return span
        }
        var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        resourceSpans.scopeSpans = [scope]
        return [resourceSpans]
    }

    static func spanCount(_ request: ExportRequestPacker.Request) throws -> Int {
        try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: request.bytes).spanCount
    }

    @Test func aTraceCompletesWithTheRequestHoldingItsLastSpan() throws {
        var packer = ExportRequestPacker(maxSpans: 4, maxBytes: 1 << 20)
        #expect(packer.add(Self.trace(1, spans: 3), tag: "a").full.isEmpty)
        let second = packer.add(Self.trace(2, spans: 3), tag: "b")
        // 3 + 3 spans over a bound of 4: the request fills at 6 spans ≥ 4 and holds both traces' last spans.
        #expect(second.full.count == 1)
        #expect(second.full.first?.completedTags == ["a", "b"])
        #expect(try Self.spanCount(try #require(second.full.first)) == 6)
        let none = packer.takeRequest()
        #expect(packer.pendingSpanCount == 0 && none == nil)
        let third = packer.add(Self.trace(3, spans: 1), tag: "c")
        #expect(third.full.isEmpty && !third.nothingToSend)
        let taken = packer.takeRequest()
        let last = try #require(taken)
        #expect(last.completedTags == ["c"] && last.spans == 1)
        #expect(packer.add([], tag: "d").nothingToSend)
    }

    @Test func aTraceThatDoesNotFitTheFormingRequestStartsTheNextOne() throws {
        var packer = ExportRequestPacker(maxSpans: 1000, maxBytes: 4096)
        #expect(packer.add(Self.trace(5, spans: 2, valueBytes: 1200), tag: "first").full.isEmpty)
        let formed = packer.pendingByteCount
        let second = packer.add(Self.trace(6, spans: 2, valueBytes: 1200), tag: "second")
        // Both together exceed 4096 bytes: the first is sealed alone, exactly as it was formed.
        let sealed = try #require(second.full.first)
        #expect(second.full.count == 1 && sealed.completedTags == ["first"] && sealed.bytes.count == formed)
        #expect(try Self.spanCount(sealed) == 2)
        let taken = packer.takeRequest()
        let next = try #require(taken)
        #expect(next.completedTags == ["second"] && next.spans == 2)
        let decoded = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: next.bytes)
        #expect(decoded.resourceSpans == Self.trace(6, spans: 2, valueBytes: 1200))
    }

    @Test func aTraceBiggerThanARequestIsSplitAndCompletesWithItsLastPart() throws {
        var packer = ExportRequestPacker(maxSpans: 1000, maxBytes: 4096)
        let addition = packer.add(Self.trace(4, spans: 10, valueBytes: 1000), tag: "big")
        let rest = packer.takeRequest()
        let requests = addition.full + [rest].compactMap { $0 }
        #expect(requests.count > 1)
        #expect(requests.allSatisfy { $0.bytes.count <= 4096 })
        #expect(try requests.reduce(0) { $0 + (try Self.spanCount($1)) } == 10)
        #expect(requests.last?.completedTags == ["big"] && requests.dropLast().allSatisfy { $0.completedTags.isEmpty })
    }
}
