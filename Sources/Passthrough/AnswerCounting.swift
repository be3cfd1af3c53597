import ProxyObservability

/// Counts one connection's answers: requests by route and status class, the upstream's answers by status class and
/// their durations by method. The counter cells last used are kept (a connection's requests mostly go to one route
/// and come back with one status class), so counting an answer takes no lock and no lookup in the shared
/// ``ProxyCounters``; a different route or method replaces the kept cells.
struct AnswerCounting {
    let counters: ProxyCounters
    /// The route whose cells ``requests`` holds.
    private var route: String?
    /// `requests{route, class}` by the status's hundreds (1–9).
    private var requests = [ProxyCounters.Cell?](repeating: nil, count: 10)
    /// `upstream_responses{class}` by the status's hundreds.
    private var upstreamResponses = [ProxyCounters.Cell?](repeating: nil, count: 10)
    private var duration: (method: String, histogram: ProxyCounters.Histogram)?

    init(counters: ProxyCounters) { self.counters = counters }

    /// An answer with status `code` went to the client for a request on `route`.
    mutating func answered(route: String, code: Int) {
        if self.route != route {
            self.route = route
            requests = [ProxyCounters.Cell?](repeating: nil, count: 10)
        }
        let index = Self.index(code)
        if let cell = requests[index] {
            cell.increment()
        } else {
            let cell = counters.cell(.requests, labels: [route, ProxyMetric.statusClass(code)])
            if index > 0 { requests[index] = cell }
            cell.increment()
        }
    }

    /// The upstream's answer head (status `code`) arrived `seconds` after a `method` request's head.
    mutating func upstreamAnswered(code: Int, method: String, seconds: Double) {
        if let duration, duration.method == method {
            duration.histogram.observe(seconds: seconds)
        } else {
            let histogram = counters.histogram(.upstreamDurationSeconds, method)
            duration = (method, histogram)
            histogram.observe(seconds: seconds)
        }
        let index = Self.index(code)
        if let cell = upstreamResponses[index] {
            cell.increment()
        } else {
            let cell = counters.cell(.upstreamResponses, labels: [ProxyMetric.statusClass(code)])
            if index > 0 { upstreamResponses[index] = cell }
            cell.increment()
        }
    }

    /// The slot of a status's class: its hundreds (HTTP/1 status codes have three digits), or 0 for anything else
    /// (not kept: counted through a lookup each time).
    private static func index(_ code: Int) -> Int { (100...999).contains(code) ? code / 100 : 0 }
}
