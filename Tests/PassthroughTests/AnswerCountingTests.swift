import ProxyObservability
import Testing

@testable import Passthrough

/// The passthrough's counts through the cells it keeps land on the same counters as counting through a lookup each
/// time, whatever the order of routes, methods and status classes.
@Suite struct AnswerCountingTests {
    @Test func keptCellsCountWhereLookupsWould() {
        let kept = ProxyCounters()
        let looked = ProxyCounters()
        var counting = AnswerCounting(counters: kept)
        let answers: [(route: String, method: String, code: Int)] = [
            ("passthrough", "GET", 200), ("passthrough", "GET", 200), ("passthrough", "POST", 404), ("otlp_traces", "POST", 200),
            ("passthrough", "GET", 503), ("passthrough", "GET", 200), ("otlp_traces", "POST", 200), ("passthrough", "GET", 42),
            ("passthrough", "GET", 42), ("passthrough", "GET", 99),
        ]
        for answer in answers {
            counting.upstreamAnswered(code: answer.code, method: answer.method, seconds: 0.001)
            counting.answered(route: answer.route, code: answer.code)
            looked.observe(.upstreamDurationSeconds, answer.method, seconds: 0.001)
            looked.increment(.upstreamResponses, ProxyMetric.statusClass(answer.code))
            looked.increment(.requests, labels: [answer.route, ProxyMetric.statusClass(answer.code)])
        }
        #expect(kept.snapshot().map { "\($0.key)=\($0.value)" } == looked.snapshot().map { "\($0.key)=\($0.value)" })
        #expect(kept.value(.requests, labels: ["passthrough", "2xx"]) == 3)
        #expect(kept.value(.requests, labels: ["passthrough", "0xx"]) == 3)
        #expect(kept.value(.upstreamResponses, "2xx") == 5)
    }
}
