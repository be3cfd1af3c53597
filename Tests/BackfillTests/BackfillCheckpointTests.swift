import Foundation
import Testing

@testable import Backfill

struct BackfillCheckpointTests {
    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("backfill-\(UUID().uuidString).checkpoint").path
    }

    @Test func deliveredTracesSurviveANewRunPerDestination() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let checkpoint = try BackfillCheckpoint(path: path)
            try checkpoint.record(["tr-a", "tr-b"], delivered: "vendor")
            try checkpoint.record(["tr-a"], delivered: "collector")
            try checkpoint.record(["tr-a"], delivered: "vendor")  // recorded once
        }
        let reopened = try BackfillCheckpoint(path: path)
        #expect(reopened.isDelivered("tr-a", to: "vendor") && reopened.isDelivered("tr-b", to: "vendor"))
        #expect(reopened.isDelivered("tr-a", to: "collector") && !reopened.isDelivered("tr-b", to: "collector"))
        #expect(reopened.deliveredEverywhere(["vendor", "collector"]) == ["tr-a"])
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix(BackfillCheckpoint.header + "\n"))
        #expect(text.components(separatedBy: "\n").filter { $0 == "vendor\ttr-a" }.count == 1)
    }

    @Test func aLineCutShortByACrashIsIgnoredAndTheNextRecordStartsOnItsOwnLine() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try (BackfillCheckpoint.header + "\nvendor\ttr-a\nvendor\ttr-b").write(toFile: path, atomically: true, encoding: .utf8)
        let checkpoint = try BackfillCheckpoint(path: path)
        #expect(checkpoint.isDelivered("tr-a", to: "vendor"))
        #expect(!checkpoint.isDelivered("tr-b", to: "vendor"))
        try checkpoint.record(["tr-c"], delivered: "vendor")
        let reopened = try BackfillCheckpoint(path: path)
        #expect(reopened.isDelivered("tr-c", to: "vendor") && !reopened.isDelivered("tr-b", to: "vendor"))
    }

    @Test func aDryRunReadsWithoutCreatingAndAnotherFileIsRefused() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let dry = try BackfillCheckpoint(path: path, readOnly: true)
        try dry.record(["tr-a"], delivered: "vendor")
        #expect(!FileManager.default.fileExists(atPath: path))
        try "some other file\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: BackfillError.self) { try BackfillCheckpoint(path: path) }
        #expect(throws: BackfillError.self) { try BackfillCheckpoint(path: "/nonexistent-directory/x.checkpoint") }
    }

    @Test func idsThatCouldNotBeReadBackAreNotRecorded() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let checkpoint = try BackfillCheckpoint(path: path)
        try checkpoint.record(["tr-a\nvendor\ttr-forged", "tr-ok"], delivered: "vendor")
        let reopened = try BackfillCheckpoint(path: path)
        #expect(!reopened.isDelivered("tr-forged", to: "vendor") && reopened.isDelivered("tr-ok", to: "vendor"))
    }
}

struct BackfillTimeTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func relativeTimesAreBeforeNow() {
        #expect(BackfillTime.parse("24h", now: now) == now.addingTimeInterval(-86_400))
        #expect(BackfillTime.parse("30m", now: now) == now.addingTimeInterval(-1800))
        #expect(BackfillTime.parse("7d", now: now) == now.addingTimeInterval(-604_800))
        #expect(BackfillTime.parse("1.5h", now: now) == now.addingTimeInterval(-5400))
    }

    @Test func isoInstantsAndDates() {
        #expect(BackfillTime.parse("2026-11-30T12:00:00Z", now: now) == Date(timeIntervalSince1970: 1_796_040_000))
        #expect(BackfillTime.parse("2026-11-30T12:00:00.500Z", now: now) == Date(timeIntervalSince1970: 1_796_040_000.5))
        #expect(BackfillTime.parse("2026-11-30T13:00:00+01:00", now: now) == Date(timeIntervalSince1970: 1_796_040_000))
        #expect(BackfillTime.parse("2026-11-30", now: now) == Date(timeIntervalSince1970: 1_795_996_800))
    }

    @Test func anythingElseIsRefused() {
        for text in ["", "yesterday", "24x", "-5h", "2026-13-01", "h"] { #expect(BackfillTime.parse(text, now: now) == nil, "\(text)") }
    }

    @Test func theFilterJoinsTheRangeAndTheOperatorsFilter() {
        let selection = BackfillSelection(
            experimentIDs: ["1"], experimentNames: [], since: Date(timeIntervalSince1970: 1000), until: Date(timeIntervalSince1970: 2000.0005),
            filter: "tags.team = 'search'")
        #expect(selection.mlflowFilter == "timestamp_ms >= 1000000 AND timestamp_ms < 2000001 AND tags.team = 'search'")
        let open = BackfillSelection(experimentIDs: ["1"], experimentNames: [], since: nil, until: Date(timeIntervalSince1970: 5), filter: " ")
        #expect(open.mlflowFilter == "timestamp_ms < 5000")
    }
}
