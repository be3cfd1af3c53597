import Foundation
import OTLPProto
import Testing

@testable import Delivery

/// Batching as plain state: the deadline of the forming request, requests sealed when full, the retry deadline of
/// requests the spool refused, and the memory bound on them. No clock and no pipeline: every instant is given.
@Suite struct BatchFormationTests {
    let start = ContinuousClock.now

    func formation(maxSpans: Int = 100, maxBytes: Int = 1 << 20) -> BatchFormation {
        BatchFormation(maxSpans: maxSpans, maxBytes: maxBytes, scheduleDelay: .seconds(5), now: start)
    }

    @Test func nothingFormingHasNoDeadline() {
        let state = formation()
        #expect(state.nextDeadline() == nil)
        #expect(state.isEmpty && state.formingSpans == 0 && state.oldestSealed == nil)
    }

    @Test func theFirstSpansStartTheWaitAndLaterOnesDoNotMoveIt() {
        var state = formation()
        let first = state.add(ExportPipelineTests.spans(3, trace: 1), tag: "", now: start + .seconds(1))
        #expect(first.startedForming && first.sealedRequests == 0)
        #expect(state.nextDeadline() == start + .seconds(6))
        let second = state.add(ExportPipelineTests.spans(2, trace: 2), tag: "", now: start + .seconds(4))
        #expect(!second.startedForming)
        #expect(state.nextDeadline() == start + .seconds(6))
        #expect(state.formingSpans == 5)
    }

    @Test func sealingMovesTheFormingRequestBehindTheSealedOnes() throws {
        var state = formation()
        _ = state.add(ExportPipelineTests.spans(3), tag: "01", now: start)
        state.sealForming()
        #expect(state.nextDeadline() == start + .seconds(1), "a sealed request waits for the queue: tried a second after the last flush")
        #expect(state.formingSpans == 0 && state.formingSince == nil)
        let sealed = try #require(state.oldestSealed)
        #expect(sealed.spans == 3 && sealed.traceIDs == ["01"] && state.sealedBytes == sealed.bytes.count)
        state.removeOldestSealed()
        #expect(state.isEmpty && state.nextDeadline() == nil && state.sealedBytes == 0)
    }

    @Test func aFullRequestIsSealedAtOnceAndTheNextSpansStartANewWait() {
        var state = formation(maxSpans: 4)
        _ = state.add(ExportPipelineTests.spans(1, trace: 1), tag: "", now: start)
        let filled = state.add(ExportPipelineTests.spans(3, trace: 2), tag: "", now: start + .seconds(1))
        #expect(filled.sealedRequests == 1 && !filled.startedForming)
        #expect(state.sealedSpans == 4 && state.formingSpans == 0 && state.formingSince == nil)
        let next = state.add(ExportPipelineTests.spans(2, trace: 3), tag: "", now: start + .seconds(2))
        #expect(next.startedForming && state.nextDeadline() == start + .seconds(7), "the new request waits from its own first spans")
    }

    @Test func aRefusedFlushIsTriedASecondAfterTheLastAttempt() {
        var state = formation()
        _ = state.add(ExportPipelineTests.spans(2), tag: "", now: start)
        state.sealForming()
        state.flushing(now: start + .seconds(10))  // the queue (spool) refused: the request stays
        #expect(state.hasSealed && state.nextDeadline() == start + .seconds(11))
        _ = state.add(ExportPipelineTests.spans(1, trace: 2), tag: "", now: start + .seconds(10.5))
        #expect(state.nextDeadline() == start + .seconds(15.5), "a forming request's seal comes first (it flushes the older ones too)")
    }

    @Test func pastTheMemoryBoundTheOldestSealedRequestsAreDropped() {
        var state = formation(maxSpans: 2)
        for trace in 1...3 { _ = state.add(ExportPipelineTests.spans(2, trace: UInt8(trace)), tag: "\(trace)", now: start) }
        #expect(state.sealedSpans == 6)
        let oneRequest = state.oldestSealed?.bytes.count ?? 0
        let dropped = state.dropOldestSealed(beyond: oneRequest * 2)
        #expect(dropped.map(\.traceIDs) == [["1"]], "oldest first, only as many as needed")
        #expect(state.sealedSpans == 4 && state.sealedBytes <= oneRequest * 2)
        #expect(state.dropOldestSealed(beyond: .max).isEmpty)
    }
}
