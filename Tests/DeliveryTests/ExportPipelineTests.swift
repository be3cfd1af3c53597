import DeadlineClocks
import Foundation
import Logging
import NIOConcurrencyHelpers
import OTLPExport
import OTLPProto
import ProxyObservability
import ProxySettings
import ServiceLifecycle
import SharedSettings
import SwiftProtobuf
import TestSupport
import Testing

@testable import Delivery

/// An in-memory exporter double: records every batch it is given and answers from a script (success when the
/// script is empty). The pipeline's real exporters are tested against real receivers in Tests/e2e.
final class RecordingExporter: SpanExporter {
    let name: String
    private let script: NIOLockedValueBox<[ExportFailure?]>
    private let received: NIOLockedValueBox<[ExportBatch]> = NIOLockedValueBox([])
    let batches: AsyncStream<ExportBatch>
    private let continuation: AsyncStream<ExportBatch>.Continuation

    /// While closed, every delivery waits (a destination that does not answer yet).
    private let gate: NIOLockedValueBox<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>

    init(name: String = "memory", failures: [ExportFailure?] = [], open: Bool = true) {
        self.name = name
        script = NIOLockedValueBox(failures)
        gate = NIOLockedValueBox((open, []))
        (batches, continuation) = AsyncStream.makeStream()
    }

    /// Lets the waiting deliveries and every later one through.
    func openGate() {
        let waiting = gate.withLockedValue { gate in
            gate.open = true
            defer { gate.waiting = [] }
            return gate.waiting
        }
        for waiter in waiting { waiter.resume() }
    }

    var delivered: [ExportBatch] { received.withLockedValue { $0 } }

    func export(_ batch: ExportBatch) async throws(ExportFailure) -> Int {
        let failure = script.withLockedValue { $0.isEmpty ? nil : $0.removeFirst() }
        continuation.yield(batch)
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let isOpen = gate.withLockedValue { gate in
                if !gate.open { gate.waiting.append(waiter) }
                return gate.open
            }
            if isOpen { waiter.resume() }
        }
        if let failure { throw failure }
        received.withLockedValue { $0.append(batch) }
        return 0
    }

    func shutdown() async { continuation.finish() }
}

/// The export pipeline on a manual clock with the exporter double: when a batch is sealed (size or deadline), what
/// shutdown delivers, the credentials hold, permanent failures and the full policy — without a network or sleeps.
@Suite(.timeLimit(.minutes(1))) struct ExportPipelineTests {
    static func spans(_ count: Int, trace: UInt8 = 1) -> [Opentelemetry_Proto_Trace_V1_ResourceSpans] {
        var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        for index in 0..<count {
            var span = Opentelemetry_Proto_Trace_V1_Span()
            span.traceID = Data(repeating: trace, count: 16)
            span.spanID = Data((0..<8).map { UInt8(truncatingIfNeeded: index >> (8 * $0)) })
            span.name = "span \(index)"
            scope.spans.append(span)
        }
        var resource = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        resource.scopeSpans = [scope]
        return [resource]
    }

    static func spanCount(_ batch: ExportBatch) throws -> Int {
        try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: batch.bytes).spanCount
    }

    /// Runs `pipeline` in a service group for the body, then shuts it down gracefully and waits for it to end.
    static func running(_ pipeline: ExportPipeline, _ body: () async throws -> Void) async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: pipeline)], gracefulShutdownSignals: [], cancellationSignals: [], logger: Logger(label: "test")))
        let task = Task { try await group.run() }
        do {
            try await body()
        } catch {
            await group.triggerGracefulShutdown()
            _ = try? await task.value
            throw error
        }
        await group.triggerGracefulShutdown()
        try await task.value
    }

    @Test func aBatchIsSealedWhenItsOldestSpanHasWaitedTheScheduleDelay() async throws {
        let clock = ManualClock()
        let exporter = RecordingExporter()
        let pipeline = ExportPipeline(
            settings: DeliverySettings(scheduleDelay: .seconds(5), maxExportBatchSize: 100), exporters: [exporter], counters: ProxyCounters(),
            logger: Logger(label: "test"), clock: clock)
        try await Self.running(pipeline) {
            pipeline.submit(Self.spans(3))
            let armed = await clock.waitForSleepers(1)
            #expect(armed)  // the timer is armed for the batch's deadline
            clock.advance(by: .milliseconds(4_900))
            for _ in 0..<1000 { await Task.yield() }
            #expect(exporter.delivered.isEmpty, "sealed before its deadline")
            pipeline.submit(Self.spans(2, trace: 2))  // joins the forming batch; the deadline stays the first span's
            for _ in 0..<1000 { await Task.yield() }
            clock.advance(by: .milliseconds(100))
            var batches = exporter.batches.makeAsyncIterator()
            let batch = try #require(await batches.next())
            let count = try Self.spanCount(batch)
            #expect(count == 5 && batch.spans == 5)
        }
        #expect(exporter.delivered.count == 1)
    }

    @Test func aFullBatchGoesAtOnceAndShutdownDeliversTheRest() async throws {
        let clock = ManualClock()
        let exporter = RecordingExporter()
        let counters = ProxyCounters()
        let pipeline = ExportPipeline(
            settings: DeliverySettings(scheduleDelay: .seconds(3600), maxExportBatchSize: 10), exporters: [exporter], counters: counters,
            logger: Logger(label: "test"), clock: clock)
        try await Self.running(pipeline) {
            for trace in 1...3 { pipeline.submit(Self.spans(5, trace: UInt8(trace))) }
            var batches = exporter.batches.makeAsyncIterator()
            let first = try #require(await batches.next())  // 10 spans: full, sent without the clock moving
            let count = try Self.spanCount(first)
            #expect(count == 10)
        }
        // Shutdown sealed the last 5 and delivered them.
        let counts = try exporter.delivered.map(Self.spanCount)
        #expect(counts == [10, 5])
        #expect(counters.value(.spansExported, "memory") == 15)
        #expect(pipeline.queuedSpanCount == 0)
    }

    @Test func sealSubmittedReturnsOnceTheSpansAreQueued() async throws {
        let clock = ManualClock()
        let exporter = RecordingExporter()
        let pipeline = ExportPipeline(
            settings: DeliverySettings(scheduleDelay: .seconds(3600), maxExportBatchSize: 100), exporters: [exporter], counters: ProxyCounters(),
            logger: Logger(label: "test"), clock: clock)
        try await Self.running(pipeline) {
            pipeline.submit(Self.spans(4))
            await pipeline.sealSubmitted()  // the event, not the hour-long deadline
            var batches = exporter.batches.makeAsyncIterator()
            let batch = try #require(await batches.next())
            let count = try Self.spanCount(batch)
            #expect(count == 4)
        }
    }

    @Test func rejectedCredentialsHoldTheBatchUntilTheRetryInterval() async throws {
        let clock = ManualClock()
        let rejected = ExportFailure(reason: .http4xx, message: "401 Unauthorized", credentialsRejected: true, httpStatus: 401)
        let exporter = RecordingExporter(name: "vendor", failures: [rejected])
        let status = StatusBoard(destinations: [(name: "vendor", endpoint: "https://vendor.example")])
        let counters = ProxyCounters()
        var settings = DeliverySettings(scheduleDelay: .seconds(1), maxExportBatchSize: 3)
        settings.authRetryInterval = .seconds(30)
        let pipeline = ExportPipeline(
            settings: settings, exporters: [exporter], counters: counters, logger: Logger(label: "test"), status: status, clock: clock)
        try await Self.running(pipeline) {
            pipeline.submit(Self.spans(3))
            var batches = exporter.batches.makeAsyncIterator()
            _ = try #require(await batches.next())  // refused: held, not dropped
            let holding = await clock.waitForSleepers(1)
            #expect(holding)  // the hold's wait
            #expect(status.snapshot().destinations[0].state == .credentialsRejected)
            clock.advance(by: .seconds(29))
            for _ in 0..<1000 { await Task.yield() }
            #expect(exporter.delivered.isEmpty, "retried before auth_retry_interval")
            clock.advance(by: .seconds(1))
            let retried = try #require(await batches.next())
            #expect(retried.spans == 3)
        }
        #expect(exporter.delivered.count == 1)
        #expect(counters.value(.spansExported, "vendor") == 3)
        #expect(counters.snapshot().allSatisfy { $0.key.metric != .spansDropped })
        #expect(status.snapshot().destinations[0].state == .healthy)
    }

    @Test func aPermanentFailureDropsTheBatchAndCountsItsSpans() async throws {
        let exporter = RecordingExporter(failures: [ExportFailure(reason: .http4xx, message: "400 Bad Request", httpStatus: 400)])
        let counters = ProxyCounters()
        let pipeline = ExportPipeline(
            settings: DeliverySettings(scheduleDelay: .seconds(1), maxExportBatchSize: 2), exporters: [exporter], counters: counters,
            logger: Logger(label: "test"), clock: ManualClock())
        try await Self.running(pipeline) {
            pipeline.submit(Self.spans(2, trace: 1))  // a full batch each: sealed at once
            pipeline.submit(Self.spans(2, trace: 2))
            var batches = exporter.batches.makeAsyncIterator()
            _ = try #require(await batches.next())
            _ = try #require(await batches.next())
        }
        #expect(counters.value(.spansDropped, "") == 0)
        let dropped = counters.snapshot().first { $0.key.metric == .spansDropped }
        #expect(dropped?.key.labels == ["memory", "http_4xx"] && dropped?.value == 2)
        #expect(counters.value(.spansExported, "memory") == 2)
    }

    @Test func theRefusePolicySaturatesInsteadOfDropping() async throws {
        // The destination does not answer: the first batch stays in flight and the queue fills behind it.
        let exporter = RecordingExporter(open: false)
        let counters = ProxyCounters()
        var settings = DeliverySettings(scheduleDelay: .seconds(1), maxExportBatchSize: 2, maxQueueSize: 6)
        settings.fullPolicy = .refuse
        let pipeline = ExportPipeline(
            settings: settings, exporters: [exporter], counters: counters, logger: Logger(label: "test"), clock: ManualClock())
        try await Self.running(pipeline) {
            var batches = exporter.batches.makeAsyncIterator()
            pipeline.submit(Self.spans(2))
            _ = try #require(await batches.next())  // in flight, unanswered
            #expect(!pipeline.isSaturated)
            for trace in 2...3 { pipeline.submit(Self.spans(2, trace: UInt8(trace))) }
            await pipeline.sealSubmitted()
            #expect(pipeline.isSaturated, "a full queue under the refuse policy must ask clients to retry")
            pipeline.submit(Self.spans(2, trace: 4))  // refused by the queue: kept out, counted
            await pipeline.sealSubmitted()
            exporter.openGate()
            for _ in 0..<2 { _ = try #require(await batches.next()) }  // the two queued behind the first
        }
        #expect(!pipeline.isSaturated)
        #expect(exporter.delivered.count == 3 && counters.value(.spansExported, "memory") == 6)
        let refused = counters.snapshot().first { $0.key.metric == .spansDropped }
        #expect(refused?.key.labels == ["memory", "queue_full"] && refused?.value == 2)
    }
}
