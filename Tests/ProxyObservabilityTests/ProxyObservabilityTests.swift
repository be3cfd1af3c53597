import Foundation
import ProxyObservability
import Testing

/// The counters every stage increments and the status board the admin site shows.
@Suite struct ProxyObservabilityTests {
    @Test func countersAreKeptPerNameAndLabels() {
        let counters = ProxyCounters()
        counters.increment(.spansReceived, "otlp")
        counters.increment(.spansReceived, "otlp", by: 4)
        counters.increment(.spansDropped, labels: ["honeycomb", "queue_full"], by: 3)
        #expect(counters.value(.spansReceived, "otlp") == 5)
        #expect(counters.value(.spansReceived, "v3") == 0)
        let snapshot = Dictionary(uniqueKeysWithValues: counters.snapshot().map { ($0.key.description, $0.value) })
        #expect(snapshot["spans_received{otlp}"] == 5)
        #expect(snapshot["spans_dropped{honeycomb,queue_full}"] == 3)
    }

    @Test func statusClassesNameTheHundreds() {
        for code in [100, 101, 199, 200, 204, 299, 301, 404, 429, 500, 503, 599, 600, 999, 0] {
            #expect(ProxyMetric.statusClass(code) == "\(code / 100)xx")
        }
    }

    @Test func aDestinationsStateFollowsItsDeliveries() throws {
        let board = StatusBoard(destinations: [(name: "a", endpoint: "https://a.example/v1/traces"), (name: "b", endpoint: "grpc://b:4317")])
        board.traceExported(id: "tr-1", otelTraceID: "0102", name: "chat", spans: 3)
        board.failed(destination: "a", error: "503", final: false)
        #expect(board.snapshot().destinations[0].state == .retrying)
        board.credentialsRejected(destination: "a", error: "401")
        #expect(board.snapshot().destinations[0].state == .credentialsRejected)
        board.delivered(to: "a", spans: 3, otelTraceIDs: ["0102"])
        let snapshot = board.snapshot()
        #expect(snapshot.destinations[0].state == .healthy && snapshot.destinations[0].lastError == nil)
        #expect(snapshot.destinations[0].spansDelivered == 3)
        #expect(snapshot.destinations[1].state == .idle)
        #expect(snapshot.recent.first?.deliveredTo == ["a"])
        board.failed(destination: "b", error: "refused", final: true)
        #expect(board.snapshot().destinations[1].state == .failing)
        // A reload keeps what an unchanged destination had and forgets a removed one.
        board.setDestinations([(name: "a", endpoint: "https://a.example/v1/traces"), (name: "c", endpoint: "http://c")])
        let reloaded = board.snapshot().destinations
        #expect(reloaded.map(\.name) == ["a", "c"] && reloaded[0].spansDelivered == 3 && reloaded[1].state == .idle)
    }

    @Test func recentTracesAreBounded() {
        let board = StatusBoard(destinations: [])
        for index in 0..<120 { board.traceExported(id: "tr-\(index)", otelTraceID: "\(index)", name: "n", spans: 1) }
        let recent = board.snapshot().recent
        #expect(recent.count == 50 && recent.first?.id == "tr-119")
    }
}
