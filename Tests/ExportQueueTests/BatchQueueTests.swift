import ExportQueue
import Foundation
import OTLPProto
import SwiftProtobuf
import Testing

/// The queue of sealed batches in memory and on disk, the request framing, and the intake journal: no network.
@Suite struct BatchQueueTests {
    static func resourceSpans(_ count: Int, name: String = "s") -> Opentelemetry_Proto_Trace_V1_ResourceSpans {
        var item = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        for index in 0..<count {
            var span = Opentelemetry_Proto_Trace_V1_Span()
            span.traceID = Data(repeating: UInt8(index % 256), count: 16)
            span.spanID = Data(repeating: 7, count: 8)
            span.name = name + String(repeating: "x", count: index)
            scope.spans.append(span)
        }
        item.scopeSpans = [scope]
        return item
    }

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "spool-test-" + UUID().uuidString
        return path
    }

    @Test func theFramingOverheadIsWhatProtobufAddsPerItem() throws {
        // Items of one- and two-byte lengths: the request's size is each item's bytes plus its tag and length.
        let items = [Self.resourceSpans(1), Self.resourceSpans(200, name: String(repeating: "long", count: 50))]
        var request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        request.resourceSpans = items
        let lengths = try items.map { (try $0.serializedBytes() as [UInt8]).count }
        #expect(lengths[0] < 128 && lengths[1] >= 128)
        let framed = lengths.map { ExportRequestEncoding.fieldOverhead(length: $0) + $0 }.reduce(0, +)
        #expect(framed == (try request.serializedBytes() as [UInt8]).count)
    }

    @Test func memoryQueueDropsTheOldestButNeverTheOneInFlight() {
        var queue = BatchQueue(maxBytes: 300, maxSpans: 1000)
        for index in 0..<3 {
            guard
                case .stored(let evicted) = queue.append([UInt8](repeating: UInt8(index), count: 100), spans: 10, traceIDs: [], refuseWhenFull: false)
            else { return #expect(Bool(false)) }
            #expect(evicted == 0)
        }
        let inFlight = queue.nextForDelivery()
        #expect(inFlight?.batch.sequence == 1)
        // Full: the oldest batch not in flight (the second) makes room.
        guard case .stored(let evicted) = queue.append([UInt8](repeating: 9, count: 100), spans: 10, traceIDs: [], refuseWhenFull: false) else {
            return #expect(Bool(false))
        }
        #expect(evicted == 10)
        #expect(queue.count == 3 && queue.storedBytes == 300 && queue.storedSpans == 30)
        if let inFlight { queue.remove(inFlight.batch) }
        let next = queue.nextForDelivery()
        #expect(next?.batch.sequence == 3)
        if case .success(let bytes) = next?.bytes { #expect(bytes == [UInt8](repeating: 2, count: 100)) } else { Issue.record("no bytes") }
    }

    @Test func memoryQueueRefusesWhenThePolicySaysSo() {
        var queue = BatchQueue(maxBytes: 1000, maxSpans: 25)
        _ = queue.append([1], spans: 10, traceIDs: [], refuseWhenFull: true)
        _ = queue.append([2], spans: 10, traceIDs: [], refuseWhenFull: true)
        #expect(!queue.hasRoom(bytes: 1, spans: 10))
        guard case .full = queue.append([3], spans: 10, traceIDs: [], refuseWhenFull: true) else { return #expect(Bool(false)) }
        #expect(queue.storedSpans == 20)
        guard case .full = queue.append([UInt8](repeating: 0, count: 2000), spans: 1, traceIDs: [], refuseWhenFull: false) else {
            return #expect(Bool(false))  // bigger than the whole queue: never stored, nothing evicted for it
        }
        #expect(queue.count == 2)
    }

    @Test func spoolKeepsBatchesAcrossReopeningInOrder() throws {
        let path = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            var queue = try BatchQueue(spool: try SpoolDirectory(path: path, fsync: true), maxBytes: 1 << 20)
            for index in 1...3 {
                _ = queue.append([UInt8](repeating: UInt8(index), count: 10 * index), spans: index, traceIDs: [], refuseWhenFull: false)
            }
            if let first = queue.nextForDelivery() { queue.remove(first.batch) }
            #expect(queue.count == 2)
        }
        // A crash mid-write leaves a temporary file: ignored and removed when the spool opens again.
        FileManager.default.createFile(atPath: path + "/.incoming-00000000000000000009-1.otlp", contents: Data([1, 2]))
        var reopened = try BatchQueue(spool: try SpoolDirectory(path: path, fsync: false), maxBytes: 1 << 20)
        #expect(reopened.count == 2 && reopened.storedSpans == 5 && reopened.storedBytes == 50)
        let next = reopened.nextForDelivery()
        #expect(next?.batch.sequence == 2)
        if case .success(let bytes) = next?.bytes { #expect(bytes == [UInt8](repeating: 2, count: 20)) } else { Issue.record("unreadable") }
        _ = reopened.append([4], spans: 1, traceIDs: [], refuseWhenFull: false)
        let names = try FileManager.default.contentsOfDirectory(atPath: path).filter { !$0.hasPrefix(".lock") }.sorted()
        #expect(names == ["00000000000000000002-2.otlp", "00000000000000000003-3.otlp", "00000000000000000004-1.otlp"])
    }

    @Test func aFullSpoolDropsItsOldestFilesButNotTheOneInFlight() throws {
        let path = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var queue = try BatchQueue(spool: try SpoolDirectory(path: path, fsync: false), maxBytes: 300)
        for index in 1...3 { _ = queue.append([UInt8](repeating: UInt8(index), count: 100), spans: 1, traceIDs: [], refuseWhenFull: false) }
        _ = queue.nextForDelivery()  // batch 1 in flight
        guard case .stored(let evicted) = queue.append([9], spans: 1, traceIDs: [], refuseWhenFull: false) else {
            return #expect(Bool(false))
        }
        #expect(evicted == 1)
        let names = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".otlp") }.sorted()
        #expect(names == ["00000000000000000001-1.otlp", "00000000000000000003-1.otlp", "00000000000000000004-1.otlp"])
        guard case .full = queue.append([UInt8](repeating: 0, count: 301), spans: 1, traceIDs: [], refuseWhenFull: false) else {
            return #expect(Bool(false))
        }
    }

    @Test func aSpoolDirectoryIsUsedByOneOwnerAtATime() throws {
        let path = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var first: SpoolDirectory? = try SpoolDirectory(path: path, fsync: false)
        #expect(first != nil)
        #expect(throws: SpoolDirectory.SpoolError.self) { _ = try SpoolDirectory(path: path, fsync: false) }
        do {
            _ = try SpoolDirectory(path: path, fsync: false)
        } catch {
            #expect(error.locked && error.description.contains("in use"))
        }
        first = nil  // released
        _ = try SpoolDirectory(path: path, fsync: false)
    }

    @Test func anUnwritableSpoolIsAClearError() {
        do {
            _ = try SpoolDirectory(path: "/proc/no-spool-here", fsync: false)
            Issue.record("opened a spool under /proc")
        } catch {
            #expect(!error.locked && error.description.contains("/proc/no-spool-here"))
        }
    }

    @Test func theIntakeJournalKeepsUploadsUntilSettled() throws {
        let path = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = IntakeJournal.Entry(route: "otlp", headers: ["content-type": "application/x-protobuf"], parameters: [:], body: Data([0, 1, 255]))
        let second = IntakeJournal.Entry(route: "end_trace_v2", headers: [:], parameters: ["request_id": "abc"], body: Data("{}".utf8))
        do {
            let journal = try IntakeJournal(path: path, fsync: true)
            try journal.record(first, keys: ["t:0af7651916cd43dd8448eb211c80319c"])
            let cutoff = ContinuousClock.now
            try journal.record(second, keys: ["r:abc"])
            #expect(journal.settled(before: cutoff) == [1])
            #expect(journal.unsettled(excluding: [1]).map(\.sequence) == [2])
            #expect(journal.count == 2)
        }
        // A new run recovers both, in order; settling then removes them.
        let journal = try IntakeJournal(path: path, fsync: false)
        #expect(throws: SpoolDirectory.SpoolError.self) { _ = try IntakeJournal(path: path, fsync: false) }  // one owner
        let recovered = try journal.recover()
        #expect(recovered.entries.map(\.entry) == [first, second] && recovered.entries.map(\.sequence) == [1, 2])
        #expect(recovered.problems.isEmpty)
        #expect(journal.unsettled(excluding: []).isEmpty)  // keys of replayed entries are known once replayed
        journal.track(2, keys: ["r:abc"])
        #expect(journal.unsettled(excluding: []).map(\.keys) == [["r:abc"]])
        try journal.remove(journal.settled(before: .now))
        #expect(journal.count == 0)
        #expect(try journal.recover().entries.isEmpty)
    }
}
