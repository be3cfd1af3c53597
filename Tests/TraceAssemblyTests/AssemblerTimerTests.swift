import DeadlineClocks
import Foundation
import Logging
import MLflowWire
import NIOConcurrencyHelpers
import OTLPProto
import TestSupport
import Testing
import TraceAssembly

/// The assembler's deadlines: the next one the state reports, the timer armed for it (a trace whose wait runs out is
/// released although nothing else happens), and the keys the intake journal asks about.
@Suite(.timeLimit(.minutes(1))) struct AssemblerTimerTests {
    static func span(trace: UInt8, id: UInt8, parent: UInt8? = nil) -> Opentelemetry_Proto_Trace_V1_Span {
        var span = Opentelemetry_Proto_Trace_V1_Span()
        span.traceID = Data(repeating: trace, count: 16)
        span.spanID = Data(repeating: id, count: 8)
        if let parent { span.parentSpanID = Data(repeating: parent, count: 8) }
        span.name = "span \(id)"
        return span
    }

    @Test func theNextDeadlineIsTheOldestWaitAndNoneWhenNothingIsHeld() {
        var state = TraceAssemblyState(settings: AssemblySettings(maxWait: .seconds(5), rememberExportedFor: .seconds(60)))
        #expect(state.nextDeadline() == nil)
        let start = ContinuousClock.now
        _ = state.add(SpanBatch(spans: [Self.span(trace: 1, id: 2, parent: 1)], encoding: .typed), now: start)
        _ = state.add(SpanBatch(spans: [Self.span(trace: 2, id: 3, parent: 1)], encoding: .typed), now: start + .seconds(1))
        #expect(state.nextDeadline() == start + .seconds(5))
        // Released at its deadline: the next is the second trace's, then (nothing held) the forgetting of the ids.
        let released = state.expire(now: start + .seconds(5))
        #expect(released.count == 1)
        #expect(state.nextDeadline() == start + .seconds(6))
        _ = state.expire(now: start + .seconds(6))
        #expect(state.nextDeadline() == start + .seconds(65))
        _ = state.expire(now: start + .seconds(65))
        #expect(state.nextDeadline() == start + .seconds(66))
        _ = state.expire(now: start + .seconds(66))
        #expect(state.nextDeadline() == nil)
    }

    @Test func aTraceWhoseWaitRunsOutIsReleasedWithoutAnotherUpload() async throws {
        let clock = ManualClock()
        let (released, continuation) = AsyncStream<AssembledTrace>.makeStream()
        let assembler = TraceAssembler(settings: AssemblySettings(maxWait: .seconds(5)), logger: Logger(label: "test"), clock: clock) { traces in
            for trace in traces { continuation.yield(trace) }
        }
        let running = Task { try await assembler.run() }
        let key = AssemblyKey.trace(Data(repeating: 7, count: 16))
        await assembler.add([SpanBatch(spans: [Self.span(trace: 7, id: 2, parent: 1)], encoding: .typed)])  // no root: waits
        #expect(assembler.holding([key]) == [key])
        #expect(await clock.waitForSleepers(), "the timer is armed for the wait's end")
        clock.advance(by: .seconds(4))
        #expect(assembler.holding([key]) == [key], "held until its wait runs out")
        clock.advance(by: .seconds(1))
        var iterator = released.makeAsyncIterator()
        let trace = try #require(await iterator.next())
        #expect(trace.completion == .timedOut && trace.spans.count == 1)
        #expect(assembler.holding([key]).isEmpty)
        running.cancel()
        _ = try? await running.value
    }

    @Test func aTraceOnItsWayToTheNextStageStillCountsAsHeld() async throws {
        // The next stage is full: the output waits (other uploads are added meanwhile). The intake journal must not
        // settle an upload whose trace is in neither place.
        let (entered, enteredContinuation) = AsyncStream<Void>.makeStream()
        let gate = AsyncStream<Void>.makeStream()
        let assembler = TraceAssembler(settings: AssemblySettings(), logger: Logger(label: "test")) { _ in
            enteredContinuation.yield()
            for await _ in gate.stream { break }
        }
        let key = AssemblyKey.trace(Data(repeating: 9, count: 16))
        let adding = Task { await assembler.add([SpanBatch(spans: [Self.span(trace: 9, id: 1)], encoding: .typed)]) }  // a root alone: complete
        var iterator = entered.makeAsyncIterator()
        _ = await iterator.next()
        #expect(assembler.holding([key]) == [key])
        gate.continuation.yield()
        await adding.value
        #expect(assembler.holding([key]).isEmpty)
    }

    @Test func anAddHandsOnWhatTheNextStageTakesAndReturnsTheRestToDeliver() async throws {
        let room = NIOLockedValueBox(true)
        let offered = NIOLockedValueBox<[AssembledTrace]>([])
        let delivered = NIOLockedValueBox<[AssembledTrace]>([])
        let woken = NIOLockedValueBox(0)
        let assembler = TraceAssembler(
            settings: AssemblySettings(), logger: Logger(label: "test"),
            offer: { traces in
                guard room.withLockedValue({ $0 }) else { return (false, nil) }
                offered.withLockedValue { $0 += traces }
                return (true, { woken.withLockedValue { $0 += 1 } })
            },
            output: { traces in delivered.withLockedValue { $0 += traces } })
        // Room: a root alone completes its trace, which the next stage takes at once; waking it is left to the caller.
        let handoff = assembler.addNow([SpanBatch(spans: [Self.span(trace: 1, id: 1)], encoding: .typed)])
        #expect(handoff.release == nil)
        #expect(offered.withLockedValue { $0.count } == 1)
        #expect(assembler.holding([.trace(Data(repeating: 1, count: 16))]).isEmpty)
        #expect(woken.withLockedValue { $0 } == 0, "the assembler woke the next stage itself")
        handoff.wake?()
        #expect(woken.withLockedValue { $0 } == 1)
        // The waiting form wakes it at once.
        await assembler.add([SpanBatch(spans: [Self.span(trace: 3, id: 1)], encoding: .typed)])
        #expect(woken.withLockedValue { $0 } == 2)
        // No room: the trace comes back, still held, until it is delivered (waiting for the next stage).
        room.withLockedValue { $0 = false }
        let key = AssemblyKey.trace(Data(repeating: 2, count: 16))
        let refused = assembler.addNow([SpanBatch(spans: [Self.span(trace: 2, id: 1)], encoding: .typed)])
        #expect(refused.wake == nil)
        let release = try #require(refused.release)
        #expect(assembler.holding([key]) == [key])
        #expect(delivered.withLockedValue { $0.isEmpty })
        await assembler.deliver(release)
        #expect(delivered.withLockedValue { $0.map(\.traceID) } == [Data(repeating: 2, count: 16)])
        #expect(assembler.holding([key]).isEmpty)
    }

    @Test func journalKeysRoundTripAndForeignTextNamesNone() {
        let trace = AssemblyKey.trace(Data((0..<16).map { UInt8($0) }))
        #expect(trace.journalText == "t:000102030405060708090a0b0c0d0e0f")
        #expect(AssemblyKey(journalText: trace.journalText) == trace)
        #expect(AssemblyKey(journalText: "r:abc") == .request("abc"))
        for foreign in ["", "t:", "t:xyz", "t:0011", "r:", "x:1"] { #expect(AssemblyKey(journalText: foreign) == nil, "\(foreign)") }
    }
}
