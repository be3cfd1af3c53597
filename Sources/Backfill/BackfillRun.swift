import AsyncAlgorithms
import Foundation
import Logging
import MLflowWire
import NIOConcurrencyHelpers
import OTLPExport
import OTLPProto
import OTLPTranslation
import SpanShaping
import TraceAssembly

/// Which stored traces a backfill exports.
public struct BackfillSelection: Sendable {
    /// Experiments by id.
    public var experimentIDs: [String]
    /// Experiments by name (resolved with `get-by-name`).
    public var experimentNames: [String]
    /// Traces that started at or after this instant.
    public var since: Date?
    /// Traces that started before this instant (the run's start when not given, so the selection is fixed and a
    /// trace logged during the run is left for the live path).
    public var until: Date
    /// An MLflow trace filter string, passed through (`tags.team = 'search'`).
    public var filter: String?

    /// Creates a selection.
    public init(experimentIDs: [String], experimentNames: [String], since: Date?, until: Date, filter: String?) {
        self.experimentIDs = experimentIDs
        self.experimentNames = experimentNames
        self.since = since
        self.until = until
        self.filter = filter
    }

    /// The filter string sent to MLflow: the time range and the operator's filter, joined with `AND`.
    public var mlflowFilter: String {
        var parts: [String] = []
        if let since { parts.append("timestamp_ms >= \(Int64((since.timeIntervalSince1970 * 1000).rounded(.up)))") }
        parts.append("timestamp_ms < \(Int64((until.timeIntervalSince1970 * 1000).rounded(.up)))")
        if let filter, !filter.trimmingCharacters(in: .whitespaces).isEmpty { parts.append(filter) }
        return parts.joined(separator: " AND ")
    }
}

/// One destination of a backfill: its exporter, its data policy and the request being formed.
public final class BackfillDestination {
    /// The destination's name in the configuration (the checkpoint's key).
    public let name: String
    let exporter: any SpanExporter
    let shaper: DestinationShaper
    var packer: ExportRequestPacker
    /// Spans the destination's policy left out (routing, sampling) or the destination rejected in a partial
    /// success: for the summary.
    var filtered = 0
    var rejected = 0

    /// Creates a destination. - Parameters: `maxSpans`/`maxBytes`: the request bounds (the delivery settings' batch
    /// size and bytes, and the destination's request limit).
    public init(name: String, exporter: any SpanExporter, shaper: DestinationShaper, maxSpans: Int, maxBytes: Int) {
        self.name = name
        self.exporter = exporter
        self.shaper = shaper
        packer = ExportRequestPacker(maxSpans: maxSpans, maxBytes: maxBytes)
    }
}

/// What a backfill did.
public struct BackfillSummary: Sendable {
    /// Traces the selection holds.
    public var selected = 0
    /// Traces delivered to every destination by this run.
    public var exported = 0
    /// Spans of those traces.
    public var spansExported = 0
    /// Traces an earlier run had delivered everywhere (the checkpoint).
    public var alreadyDelivered = 0
    /// Traces not exported, by reason.
    public var skipped: [String: Int] = [:]
    /// Spans not sent to a destination although their trace was, by destination and why (its policy filtered them,
    /// they could not be encoded, it rejected them in a partial success).
    public var spansLeftOut: [String: Int] = [:]
    /// Why the run stopped early, if it did.
    public var stoppedBecause: String?
    /// Whether the run was interrupted (`Ctrl-C`, `SIGTERM`).
    public var interrupted = false
    /// MLflow requests made.
    public var mlflowRequests = 0
    /// How long it took.
    public var elapsed: Duration = .zero
    /// A dry run: nothing was sent; `exported` counts what would have been.
    public var dryRun = false

    /// Whether every selected trace was delivered (now or by an earlier run).
    public var complete: Bool {
        stoppedBecause == nil && !interrupted && skipped.isEmpty && exported + alreadyDelivered == selected
    }
}

/// Progress counters the display reads while the run updates them.
public final class BackfillProgress: Sendable {
    private struct State {
        var totalTraces: Int?
        var totalSpans: Int?
        var tracesDone = 0
        var spansDone = 0
        var waitingFor: (destination: String, since: ContinuousClock.Instant)?
    }
    private let state = NIOLockedValueBox(State())
    private let started = ContinuousClock.now

    /// Creates counters at zero.
    public init() {}

    func setTotals(traces: Int, spans: Int?) {
        state.withLockedValue {
            $0.totalTraces = traces
            $0.totalSpans = spans
        }
    }

    func done(traces: Int, spans: Int) {
        state.withLockedValue {
            $0.tracesDone += traces
            $0.spansDone += spans
        }
    }

    func waiting(for destination: String?) {
        state.withLockedValue { $0.waitingFor = destination.map { ($0, ContinuousClock.now) } }
    }

    /// One line: traces and spans done / total, rate, ETA, and a destination being waited for.
    public func line() -> String {
        let snapshot = state.withLockedValue { $0 }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        guard let total = snapshot.totalTraces else { return "backfill: counting the selected traces…" }
        let rate = seconds > 0 ? Double(snapshot.tracesDone) / seconds : 0
        var text = "backfill: \(snapshot.tracesDone)/\(total) traces"
        text += snapshot.totalSpans.map { " · \(snapshot.spansDone)/\($0) spans" } ?? " · \(snapshot.spansDone) spans"
        text += String(format: " · %.1f traces/s", rate)
        if rate > 0 && total > snapshot.tracesDone {
            text += " · ETA " + Self.clock(Double(total - snapshot.tracesDone) / rate)
        }
        if let waiting = snapshot.waitingFor, ContinuousClock.now - waiting.since > .seconds(2) {
            text += " · waiting for destination \(waiting.destination) (\(Int((ContinuousClock.now - waiting.since).components.seconds)) s, retrying)"
        }
        return text
    }

    static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return total >= 3600
            ? String(format: "%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60) : String(format: "%d:%02d", total / 60, total % 60)
    }
}

/// A backfill: reads the selected traces from MLflow (the next page read while the current one is exported),
/// turns each into the trace the live path would have assembled, translates it, shapes it per destination and
/// delivers it; records each trace in the checkpoint once every destination acknowledged it.
///
/// Delivery uses the destination's exporter and retry rules with no time budget: a destination that is down
/// pauses the backfill (nothing is dropped); one that rejects a request for good (a 4xx, rejected credentials)
/// stops it, with what was delivered so far in the checkpoint.
public actor BackfillRun {
    let reader: MLflowTraceReader
    let destinations: [BackfillDestination]
    let translation: TranslationSettings
    let checkpoint: BackfillCheckpoint
    let progress: BackfillProgress
    let logger: Logger
    /// Span requests in flight to MLflow at once (`BatchGetTraces` calls, artifact downloads).
    let concurrency: Int

    /// Creates a run.
    public init(
        reader: MLflowTraceReader, destinations: [BackfillDestination], translation: TranslationSettings, checkpoint: BackfillCheckpoint,
        progress: BackfillProgress, logger: Logger, concurrency: Int = 4
    ) {
        self.reader = reader
        self.destinations = destinations
        self.translation = translation
        self.checkpoint = checkpoint
        self.progress = progress
        self.logger = logger
        self.concurrency = max(1, concurrency)
    }

    /// Runs the backfill of `selection`; a dry run only counts what would be sent.
    public func run(_ selection: BackfillSelection, dryRun: Bool) async -> BackfillSummary {
        let started = ContinuousClock.now
        var summary = BackfillSummary()
        summary.dryRun = dryRun
        do {
            var experiments = selection.experimentIDs
            for name in selection.experimentNames { experiments.append(try await reader.experimentID(named: name)) }
            let filter = selection.mlflowFilter
            // Pass 1: the totals (trace infos only, a page per call), and what earlier runs delivered.
            var pageToken: String?
            var spansKnown = true
            var totalSpans = 0
            repeat {
                try Task.checkCancellation()
                let page = try await reader.search(experimentIDs: experiments, filter: filter, pageToken: pageToken)
                for stored in page.traces {
                    summary.selected += 1
                    if destinations.allSatisfy({ checkpoint.isDelivered(stored.info.traceID, to: $0.name) }) {
                        summary.alreadyDelivered += 1
                    } else if let count = stored.expectedSpanCount {
                        totalSpans += count
                    } else {
                        spansKnown = false
                    }
                }
                pageToken = page.nextPageToken
            } while pageToken != nil
            let toSend = summary.selected - summary.alreadyDelivered
            progress.setTotals(traces: toSend, spans: spansKnown ? totalSpans : nil)
            logger.info(
                "backfill selection",
                metadata: ["traces": "\(summary.selected)", "already_delivered": "\(summary.alreadyDelivered)", "filter": "\(filter)"])
            if dryRun {
                summary.exported = toSend
                summary.spansExported = totalSpans
            } else if toSend > 0 {
                try await export(experiments: experiments, filter: filter, summary: &summary)
            }
        } catch is CancellationError {
            summary.interrupted = true
        } catch let error as BackfillError {
            if Task.isCancelled || error.isCancellation {
                summary.interrupted = true
            } else {
                summary.stoppedBecause = error.description
            }
        } catch {
            summary.stoppedBecause = "\(error)"
        }
        summary.mlflowRequests = await reader.requests
        summary.elapsed = ContinuousClock.now - started
        return summary
    }

    /// A page of traces with their spans (`nil`: MLflow has none for it).
    typealias LoadedPage = [(stored: StoredTraceInfo, spans: SpanBatch?)]

    /// Pass 2: pages read (one ahead) and exported.
    private func export(experiments: [String], filter: String, summary: inout BackfillSummary) async throws {
        let pages = AsyncThrowingChannel<LoadedPage, any Error>()
        let destinationNames = destinations.map(\.name)
        // What earlier runs delivered everywhere is left out before spans are fetched.
        let alreadyDone = checkpoint.deliveredEverywhere(destinationNames)
        let reader = self.reader
        let concurrency = self.concurrency
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    var pageToken: String?
                    repeat {
                        let page = try await reader.search(experimentIDs: experiments, filter: filter, pageToken: pageToken)
                        let wanted = page.traces.filter { !alreadyDone.contains($0.info.traceID) }
                        if !wanted.isEmpty {
                            await pages.send(try await Self.loadSpans(of: wanted, reader: reader, concurrency: concurrency))
                        }
                        pageToken = page.nextPageToken
                    } while pageToken != nil
                    pages.finish()
                } catch {
                    pages.fail(error)
                }
            }
            var outstanding: [String: (destinations: Int, spans: Int)] = [:]
            for try await page in pages {
                for (stored, batch) in page {
                    let id = stored.info.traceID
                    guard let batch else {
                        summary.skipped["spans_missing", default: 0] += 1
                        logger.warning("trace skipped: MLflow holds no span data for it", metadata: ["trace_id": "\(id)"])
                        continue
                    }
                    let assembled: AssembledTrace
                    switch StoredTraceDecoder.assemble(stored, spans: batch) {
                    case .success(let trace): assembled = trace
                    case .failure(let reason):
                        summary.skipped[reason.skip.rawValue, default: 0] += 1
                        logger.warning("trace skipped", metadata: ["trace_id": "\(id)", "reason": "\(reason.skip.rawValue)"])
                        continue
                    }
                    let translated = OTLPTraceTranslator.translate(assembled, settings: translation)
                    let pending = destinations.filter { !checkpoint.isDelivered(id, to: $0.name) }
                    outstanding[id] = (pending.count, assembled.spans.count)
                    for destination in pending {
                        let (shaped, outcome) = destination.shaper.shape(translated)
                        destination.filtered += outcome.filtered + outcome.sampledOut
                        let addition = destination.packer.add(shaped, tag: id)
                        if addition.nothingToSend { try finished([id], at: destination, outstanding: &outstanding, summary: &summary) }
                        for request in addition.full {
                            try await deliver(request, to: destination, outstanding: &outstanding, summary: &summary)
                        }
                    }
                }
            }
            for destination in destinations {
                if let request = destination.packer.takeRequest() {
                    try await deliver(request, to: destination, outstanding: &outstanding, summary: &summary)
                }
            }
            try await group.waitForAll()
        }
        for destination in destinations {
            if destination.filtered > 0 { summary.spansLeftOut["\(destination.name): filtered by its policy", default: 0] += destination.filtered }
            if destination.rejected > 0 { summary.spansLeftOut["\(destination.name): rejected by it", default: 0] += destination.rejected }
        }
    }

    /// Sends one request (the exporter retries a retryable failure for as long as it takes) and records the traces it
    /// completed. - Throws: ``BackfillError`` on a permanent failure or when the checkpoint cannot be written.
    private func deliver(
        _ request: ExportRequestPacker.Request, to destination: BackfillDestination, outstanding: inout [String: (destinations: Int, spans: Int)],
        summary: inout BackfillSummary
    ) async throws {
        progress.waiting(for: destination.name)
        defer { progress.waiting(for: nil) }
        do {
            destination.rejected += try await destination.exporter.export(ExportBatch(bytes: request.bytes, spans: request.spans))
        } catch {
            if error.isCancellation || Task.isCancelled { throw CancellationError() }
            throw BackfillError("destination \(destination.name) refused a request: \(error.message)")
        }
        try finished(request.completedTags, at: destination, outstanding: &outstanding, summary: &summary)
    }

    private func finished(
        _ traceIDs: [String], at destination: BackfillDestination, outstanding: inout [String: (destinations: Int, spans: Int)],
        summary: inout BackfillSummary
    ) throws {
        try checkpoint.record(traceIDs, delivered: destination.name)
        for id in traceIDs {
            guard var entry = outstanding[id] else { continue }
            entry.destinations -= 1
            if entry.destinations > 0 {
                outstanding[id] = entry
            } else {
                outstanding[id] = nil
                summary.exported += 1
                summary.spansExported += entry.spans
                progress.done(traces: 1, spans: entry.spans)
            }
        }
    }

    /// The spans of a page's traces: `BatchGetTraces` for those in the tracking store, `traces.json` for the
    /// others, `concurrency` requests at a time.
    static func loadSpans(of traces: [StoredTraceInfo], reader: MLflowTraceReader, concurrency: Int) async throws -> LoadedPage {
        var spans: [String: SpanBatch] = [:]
        let inStore = traces.filter { $0.spansLocation == .trackingStore }.map(\.info.traceID)
        let chunks = stride(from: 0, to: inStore.count, by: MLflowTraceReader.batchGetSize).map {
            Array(inStore[$0..<min($0 + MLflowTraceReader.batchGetSize, inStore.count)])
        }
        let artifacts = traces.filter { $0.spansLocation != .trackingStore }
        try await withThrowingTaskGroup(of: [String: SpanBatch].self) { group in
            var jobs: [@Sendable () async throws -> [String: SpanBatch]] = chunks.map { chunk in { try await reader.trackingStoreSpans(of: chunk) } }
            jobs += artifacts.map { stored in
                {
                    guard let batch = try await reader.artifactSpans(of: stored) else { return [:] }
                    return [stored.info.traceID: batch]
                }
            }
            var next = 0
            while next < min(concurrency, jobs.count) {
                group.addTask(operation: jobs[next])
                next += 1
            }
            while let result = try await group.next() {
                spans.merge(result) { $1 }
                if next < jobs.count {
                    group.addTask(operation: jobs[next])
                    next += 1
                }
            }
        }
        return traces.map { ($0, spans[$0.info.traceID]) }
    }
}
