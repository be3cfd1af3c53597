import Foundation
import Logging
import MLflowWire
import NIOConcurrencyHelpers
import OTLPProto
import OTLPTranslation
import ServiceLifecycle
import TestSupport
import Testing
import TraceAssembly
import TranslationStage

/// The buffer between assembly and translation, and the stage: order, the bound (a sender waits while it is full),
/// the end, and the event the journal checkpoint waits on.
@Suite(.timeLimit(.minutes(1))) struct TranslationStageTests {
    @Test func theBufferKeepsOrderAndMakesASenderWaitWhileFull() async throws {
        let buffer = BoundedBuffer<Int>(capacity: 2)
        #expect(await buffer.send(1))
        #expect(await buffer.send(2))
        let third = NIOLockedValueBox(false)
        let sender = Task {
            let taken = await buffer.send(3)
            third.withLockedValue { $0 = true }
            return taken
        }
        for _ in 0..<1000 { await Task.yield() }
        #expect(!third.withLockedValue { $0 }, "a send into a full buffer returned")
        #expect(await buffer.next() == 1)  // room: the waiting sender's element moves in
        #expect(await sender.value)
        #expect(await buffer.next() == 2)
        #expect(await buffer.next() == 3)
        buffer.finish()
        #expect(await buffer.next() == nil)
        #expect(await buffer.send(4) == false)  // the consumer has ended: refused, the sender handles it
    }

    @Test func aWaitingConsumerGetsTheNextElementOrTheEnd() async throws {
        let buffer = BoundedBuffer<String>(capacity: 1)
        let consumer = Task { await buffer.next() }
        for _ in 0..<100 { await Task.yield() }
        #expect(await buffer.send("a"))
        #expect(await consumer.value == "a")
        let ending = Task { await buffer.next() }
        for _ in 0..<100 { await Task.yield() }
        buffer.finish()
        #expect(await ending.value == nil)
        let cancelled = BoundedBuffer<String>(capacity: 1)
        let waiting = Task { await cancelled.next() }
        waiting.cancel()
        #expect(await waiting.value == nil)
    }

    @Test func concurrentSendersAndAConsumerLoseAndDuplicateNothing() async {
        // Capacity 1 and four senders racing one consumer: every look at the state and the wait that follows it must be
        // one step, or an element is left in the buffer while the consumer waits (or both sides wait forever).
        let buffer = BoundedBuffer<Int>(capacity: 1)
        let perSender = 2_500
        let received = await withTaskGroup(of: [Int].self) { group in
            for sender in 0..<4 {
                group.addTask {
                    for index in 0..<perSender { _ = await buffer.send(sender * perSender + index) }
                    return []
                }
            }
            group.addTask {
                var received: [Int] = []
                while received.count < 4 * perSender, let element = await buffer.next() { received.append(element) }
                return received
            }
            return await group.reduce(into: [Int]()) { $0 += $1 }
        }
        #expect(received.count == 4 * perSender && Set(received).count == 4 * perSender)
        // Each sender's elements arrive in the order it sent them.
        for sender in 0..<4 {
            let own = received.filter { $0 / perSender == sender }
            #expect(own == own.sorted())
        }
    }

    /// The captured 3.17.2 session's traces, assembled.
    static func traces() throws -> [AssembledTrace] {
        let assembled = CaptureReplay.assemble(try CaptureReplay.uploads(try CaptureReplay.exchanges("01_sync")))
        return assembled.traces
    }

    @Test func everyReleasedTraceIsTranslatedInOrderAndShutdownDrainsTheBuffer() async throws {
        let traces = try Self.traces()
        try #require(!traces.isEmpty)
        let settings = TranslationSettings(serviceName: "svc", resourceAttributes: [], scopeVersion: "test")
        let handed = NIOLockedValueBox<[(id: String, spans: Int)]>([])
        let stage = TranslationStage(settings: settings, capacity: 1) { trace, translated in
            handed.withLockedValue { $0.append((trace.mlflowTraceID, translated.reduce(0) { $0 + $1.scopeSpans.reduce(0) { $0 + $1.spans.count } })) }
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: stage)], gracefulShutdownSignals: [], cancellationSignals: [], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        for trace in traces { await stage.submit([trace]) }
        await stage.processedSubmitted()  // returns once every one submitted before it was handed on
        #expect(handed.withLockedValue { $0.map(\.id) } == traces.map(\.mlflowTraceID))
        #expect(handed.withLockedValue { $0.map(\.spans) } == traces.map(\.spans.count))
        await stage.submit([traces[0]])
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(handed.withLockedValue { $0.count } == traces.count + 1)
        // After the stage ended, a late release is translated on the caller's task: nothing is left behind.
        await stage.submit([traces[0]])
        #expect(handed.withLockedValue { $0.count } == traces.count + 2)
        await stage.processedSubmitted()
    }

    @Test func anOfferToAWaitingConsumerWakesItWhenTheCallerSaysOrDropsTheWake() async throws {
        let buffer = BoundedBuffer<Int>(capacity: 2)
        let received = NIOLockedValueBox<[Int]>([])
        let consumer = Task {
            while let element = await buffer.next() { received.withLockedValue { $0.append(element) } }
        }
        var offered = 0
        /// Offers the next number once the consumer has taken everything before it (so it is waiting, or about to
        /// be), until one is handed to it rather than buffered; bounded, however slow the machine.
        func offerUntilHanded() async -> (@Sendable () -> Void)? {
            for _ in 0..<200 {
                for _ in 0..<10_000 where received.withLockedValue({ $0.count }) < offered { await Task.yield() }
                for _ in 0..<100 { await Task.yield() }
                offered += 1
                let (taken, wake) = buffer.offer { offered }
                #expect(taken)
                if let wake { return wake }
            }
            return nil
        }
        let wake = try #require(await offerUntilHanded(), "no wake for an element handed to a waiting consumer")
        let handed = offered
        // Handed, not woken: an element offered meanwhile waits in the buffer behind it.
        #expect(buffer.offer { -1 }.taken)
        for _ in 0..<1000 { await Task.yield() }
        let before = received.withLockedValue { $0 }
        #expect(before == Array(1..<handed), "the consumer ran before its wake")
        wake()
        wake()  // a second call does nothing
        for _ in 0..<10_000 where received.withLockedValue({ $0.count }) < handed + 1 { await Task.yield() }
        #expect(received.withLockedValue { $0 } == before + [handed, -1])
        // A wake dropped uncalled still wakes the consumer.
        offered += 1  // -1 counted: the consumer has it
        let dropped = await offerUntilHanded()
        #expect(dropped != nil)
        _ = consume dropped
        for _ in 0..<10_000 where received.withLockedValue({ $0.last }) != offered { await Task.yield() }
        #expect(received.withLockedValue { $0.last } == offered)
        buffer.finish()
        await consumer.value
    }

    @Test func anOfferIsTakenOnlyWhileThereIsRoomAndNumbersOnlyWhatIsTaken() async throws {
        let buffer = BoundedBuffer<Int>(capacity: 1)
        let made = NIOLockedValueBox(0)
        func make(_ value: Int) -> () -> Int {
            {
                made.withLockedValue { $0 += 1 }
                return value
            }
        }
        #expect(buffer.offer(make(1)).taken)
        #expect(!buffer.offer(make(2)).taken, "taken into a full buffer")
        #expect(made.withLockedValue { $0 } == 1, "an element was built for a refused offer")
        #expect(await buffer.next() == 1)
        let consumer = Task { await buffer.next() }
        for _ in 0..<100 { await Task.yield() }
        let (taken, wake) = buffer.offer(make(3))  // room again (or a waiting consumer)
        #expect(taken)
        wake?()
        #expect(await consumer.value == 3)
        buffer.finish()
        #expect(await buffer.next() == nil)
        #expect(!buffer.offer(make(4)).taken, "taken after the consumer ended")

        // The stage: a refused offer leaves no gap in the numbering, so the checkpoint's event still comes.
        let traces = try Self.traces()
        let trace = try #require(traces.first)
        let handed = NIOLockedValueBox(0)
        let stage = TranslationStage(settings: TranslationSettings(serviceName: nil, resourceAttributes: [], scopeVersion: "test"), capacity: 1) {
            _, _ in handed.withLockedValue { $0 += 1 }
        }
        #expect(stage.trySubmit([trace]).taken)
        #expect(!stage.trySubmit([trace]).taken, "taken into a full stage")
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: stage)], gracefulShutdownSignals: [], cancellationSignals: [], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        await stage.submit([trace])
        await stage.processedSubmitted()
        #expect(handed.withLockedValue { $0 } == 2)
        await group.triggerGracefulShutdown()
        try await running.value
    }

    @Test func processedSubmittedWaitsForAReleaseStillInTheBuffer() async throws {
        let traces = try Self.traces()
        let trace = try #require(traces.first)
        let stage = TranslationStage(settings: TranslationSettings(serviceName: nil, resourceAttributes: [], scopeVersion: "test")) { _, _ in }
        await stage.submit([trace])  // buffered: the stage is not running yet
        let waited = NIOLockedValueBox(false)
        let waiter = Task {
            await stage.processedSubmitted()
            waited.withLockedValue { $0 = true }
        }
        for _ in 0..<1000 { await Task.yield() }
        #expect(!waited.withLockedValue { $0 }, "the checkpoint's event came before the trace was handed on")
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: stage)], gracefulShutdownSignals: [], cancellationSignals: [], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        await waiter.value
        #expect(waited.withLockedValue { $0 })
        await group.triggerGracefulShutdown()
        try await running.value
    }
}
