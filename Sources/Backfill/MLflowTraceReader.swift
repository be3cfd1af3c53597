import AsyncHTTPClient
import Foundation
import JSONText
import Logging
import MLflowWire
import NIOCore
import NIOHTTP1
import SharedSettings
import UpstreamAccess

/// Why a backfill could not go on, in words for the operator (never a credential).
public struct BackfillError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var description: String
    /// Whether the run was interrupted (`Ctrl-C`, `SIGTERM`) rather than failed.
    public var isCancellation = false
    /// Creates an error.
    public init(_ description: String) { self.description = description }
    /// The run was interrupted.
    public static let cancelled: BackfillError = {
        var error = BackfillError("interrupted")
        error.isCancellation = true
        return error
    }()
}

/// Spaces MLflow requests to at most `rate` per second (`--rate`): each request takes the next free slot, so
/// concurrent readers share the rate. Waits through the clock it is given.
public actor RequestPacer<C: Clock> where C.Duration == Duration {
    private let interval: Duration?
    private let clock: C
    private var nextSlot: C.Instant?

    /// Creates a pacer; `rate` `nil` or not above 0 means no limit.
    public init(rate: Double?, clock: C) {
        self.clock = clock
        interval = rate.flatMap { $0 > 0 ? Duration.nanoseconds(Int64(1e9 / $0)) : nil }
    }

    /// Waits for this request's slot.
    public func wait() async throws {
        guard let interval else { return }
        let now = clock.now
        let slot = nextSlot.map { max($0, now) } ?? now
        nextSlot = slot.advanced(by: interval)
        if slot > now { try await clock.sleep(until: slot, tolerance: nil) }
    }
}

/// Reads stored traces from an MLflow server with the calls MLflow's own client makes for `mlflow.search_traces`
/// and to load spans: `SearchTracesV3` (falling back to the v2 `SearchTraces` on a 2.x server, as the client
/// does), `BatchGetTraces` for spans in the tracking store, the `traces.json` artifact otherwise. Sends the
/// configured upstream credentials (headers or an OAuth token), retries what MLflow's client retries (429 and
/// 5xx, connection failures) with backoff, and never sends more than the pacer allows.
public actor MLflowTraceReader {
    /// The traces of one search page, most `maxResults` (MLflow's limit for `SearchTracesV3` is 500).
    public static let pageSize = 100
    /// `BatchGetTraces` takes at most this many ids per call (MLflow's client sends the same).
    public static let batchGetSize = 10

    private let base: String
    private let client: HTTPClient
    private let headers: [KeyValuePair]
    private let tokenSource: UpstreamTokenSource?
    private let timeout: Duration
    private let pacer: RequestPacer<ContinuousClock>
    private let logger: Logger
    private let maxAttempts: Int
    private var searchV2 = false
    private var batchGetMissing = false
    /// MLflow requests made (for the summary and the benchmark).
    public private(set) var requests = 0

    /// Creates a reader of `upstream`.
    public init(
        upstream: UpstreamURL, client: HTTPClient, headers: [KeyValuePair], tokenSource: UpstreamTokenSource?, timeout: Duration,
        pacer: RequestPacer<ContinuousClock>, logger: Logger, maxAttempts: Int = 6
    ) {
        base = String(upstream.description.dropLast(upstream.path.count)) + upstream.basePath
        self.client = client
        self.headers = headers
        self.tokenSource = tokenSource
        self.timeout = timeout
        self.pacer = pacer
        self.logger = logger
        self.maxAttempts = max(1, maxAttempts)
    }

    /// The id of the experiment named `name` (`GET /api/2.0/mlflow/experiments/get-by-name`).
    public func experimentID(named name: String) async throws(BackfillError) -> String {
        let answer = try await call(.GET, "/api/2.0/mlflow/experiments/get-by-name", query: [("experiment_name", name)])
        guard answer.status == 200 else {
            throw BackfillError("experiment \"\(name)\": \(answer.errorText)")
        }
        guard let id = JSONValue(parsing: answer.body)?["experiment"]?["experiment_id"]?.stringValue else {
            throw BackfillError("experiment \"\(name)\": the answer has no experiment.experiment_id")
        }
        return id
    }

    /// One page of the traces of `experimentIDs` matching `filter`, oldest first.
    public func search(experimentIDs: [String], filter: String?, pageToken: String?) async throws(BackfillError) -> StoredTraceDecoder.SearchPage {
        if !searchV2 {
            var body: [(key: String, value: JSONValue)] = [
                (
                    "locations",
                    .array(
                        experimentIDs.map {
                            .object([("type", .string("MLFLOW_EXPERIMENT")), ("mlflow_experiment", .object([("experiment_id", .string($0))]))])
                        })
                ),
                ("max_results", .number(String(Self.pageSize))),
                ("order_by", .array([.string("timestamp_ms ASC")])),
            ]
            if let filter { body.append(("filter", .string(filter))) }
            if let pageToken { body.append(("page_token", .string(pageToken))) }
            let answer = try await call(.POST, "/api/3.0/mlflow/traces/search", body: JSONValue.object(body).text)
            if answer.status == 404 || answer.errorCode == "ENDPOINT_NOT_FOUND" {
                logger.info("the MLflow server has no SearchTracesV3; using the v2 trace search (a 2.x server)")
                searchV2 = true
            } else {
                return try decodePage(answer, call: "SearchTracesV3")
            }
        }
        var query: [(String, String)] = experimentIDs.map { ("experiment_ids", $0) }
        query.append(("max_results", String(Self.pageSize)))
        query.append(("order_by", "timestamp_ms ASC"))
        if let filter { query.append(("filter", filter)) }
        if let pageToken { query.append(("page_token", pageToken)) }
        return try decodePage(try await call(.GET, "/api/2.0/mlflow/traces", query: query), call: "SearchTraces")
    }

    private func decodePage(_ answer: Answer, call name: String) throws(BackfillError) -> StoredTraceDecoder.SearchPage {
        guard answer.status == 200 else { throw BackfillError("\(name): \(answer.errorText)") }
        do {
            return try StoredTraceDecoder.searchPage(answer.body)
        } catch {
            throw BackfillError("\(name): \(error.message)")
        }
    }

    /// The spans of traces kept in the tracking store, by MLflow trace id (`BatchGetTraces`, at most
    /// ``batchGetSize`` ids per call). A trace the server did not return is missing from the result.
    public func trackingStoreSpans(of traceIDs: [String]) async throws(BackfillError) -> [String: SpanBatch] {
        var result: [String: SpanBatch] = [:]
        var start = 0
        while start < traceIDs.count {
            let ids = Array(traceIDs[start..<min(start + Self.batchGetSize, traceIDs.count)])
            start += ids.count
            if !batchGetMissing {
                let answer = try await call(.GET, "/api/3.0/mlflow/traces/batchGet", query: ids.map { ("trace_ids", $0) })
                if answer.status == 200 {
                    do {
                        result.merge(try StoredTraceDecoder.batchGet(answer.body)) { $1 }
                    } catch {
                        throw BackfillError("BatchGetTraces: \(error.message)")
                    }
                    continue
                }
                guard answer.status == 404 || answer.errorCode == "ENDPOINT_NOT_FOUND" else {
                    throw BackfillError("BatchGetTraces: \(answer.errorText)")
                }
                // A server before BatchGetTraces (3.2–3.4): one GetTrace per trace, as the client falls back.
                batchGetMissing = true
            }
            for id in ids {
                let answer = try await call(.GET, "/api/3.0/mlflow/traces/get", query: [("trace_id", id), ("allow_partial", "false")])
                if answer.status == 404 { continue }
                guard answer.status == 200 else { throw BackfillError("GetTrace \(id): \(answer.errorText)") }
                do {
                    result.merge(try StoredTraceDecoder.batchGet(answer.body)) { $1 }
                } catch {
                    throw BackfillError("GetTrace \(id): \(error.message)")
                }
            }
        }
        return result
    }

    /// The spans of a trace kept as a `traces.json` artifact: through the server's artifact proxy for an
    /// `mlflow-artifacts:` location (as the client downloads it), else through `get-trace-artifact`, where the
    /// server reads its artifact store itself. `nil` when the server has no such artifact (404).
    public func artifactSpans(of stored: StoredTraceInfo) async throws(BackfillError) -> SpanBatch? {
        var answer: Answer?
        if case .artifact(let location?) = stored.spansLocation, location.hasPrefix("mlflow-artifacts:") {
            var path = String(location.dropFirst("mlflow-artifacts:".count))
            while path.hasPrefix("/") { path.removeFirst() }
            let escaped = path.split(separator: "/", omittingEmptySubsequences: true).map { Self.escapePathSegment(String($0)) }
            let direct = try await call(.GET, "/api/2.0/mlflow-artifacts/artifacts/" + escaped.joined(separator: "/") + "/traces.json")
            if direct.status == 200 { answer = direct }
        }
        if answer == nil {
            answer = try await call(.GET, "/ajax-api/2.0/mlflow/get-trace-artifact", query: [("request_id", stored.info.traceID)])
        }
        guard let answer else { return nil }
        if answer.status == 404 { return nil }
        guard answer.status == 200 else { throw BackfillError("traces.json of \(stored.info.traceID): \(answer.errorText)") }
        do {
            return try TracesArtifactDecoder.decode(Data(answer.body), experimentID: nil)
        } catch {
            throw BackfillError("traces.json of \(stored.info.traceID): \(error.message)")
        }
    }

    // MARK: HTTP

    struct Answer {
        var status: Int
        var body: [UInt8]
        /// MLflow's `error_code`, when the body is MLflow's JSON error.
        var errorCode: String? { JSONValue(parsing: body)?["error_code"]?.stringValue }
        /// The status and MLflow's error message, cut short.
        var errorText: String {
            let json = JSONValue(parsing: body)
            let message = json?["message"]?.stringValue ?? String(decoding: body.prefix(300), as: UTF8.self)
            let code = json?["error_code"]?.stringValue.map { " \($0)" } ?? ""
            return "HTTP \(status)\(code): \(message.prefix(300))"
        }
    }

    /// One request, retried as MLflow's client retries it (429, 500, 502, 503, 504 and connection failures),
    /// with exponential backoff from 1 s (`Retry-After` honoured, at most 60 s per wait).
    func call(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: String? = nil) async throws(BackfillError) -> Answer {
        var url = base + path
        if !query.isEmpty {
            url += "?" + query.map { Self.escapeQuery($0.0) + "=" + Self.escapeQuery($0.1) }.joined(separator: "&")
        }
        var wait = Duration.seconds(1)
        var attempt = 1
        while true {
            do {
                try await pacer.wait()
            } catch {
                throw .cancelled
            }
            requests += 1
            var request = HTTPClientRequest(url: url)
            request.method = method
            for header in headers { request.headers.replaceOrAdd(name: header.key, value: header.value) }
            if let tokenSource {
                do {
                    request.headers.replaceOrAdd(name: "Authorization", value: "Bearer \(try await tokenSource.accessToken())")
                } catch {
                    throw BackfillError("no access token for the MLflow server: \(error)")
                }
            }
            request.headers.add(name: "User-Agent", value: "mlflow-otel-proxy-backfill")
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: body))
            }
            var retryAfter: Duration?
            var problem: String
            do {
                let response = try await client.execute(request, timeout: .nanoseconds(timeout.nanosecondsClamped))
                let collected = try await response.body.collect(upTo: 512 * 1024 * 1024)
                let status = Int(response.status.code)
                if ![429, 500, 502, 503, 504].contains(status) {
                    return Answer(status: status, body: Array(buffer: collected))
                }
                problem = "HTTP \(status)"
                retryAfter = response.headers.first(name: "retry-after").flatMap(Double.init).map { .milliseconds(Int64(min($0, 60) * 1000)) }
            } catch is CancellationError {
                throw .cancelled
            } catch {
                if Task.isCancelled { throw .cancelled }
                problem = "\(error)"
            }
            guard attempt < maxAttempts else {
                throw BackfillError("\(method.rawValue) \(path) failed after \(attempt) attempts: \(problem)")
            }
            let delay = max(wait, retryAfter ?? .zero)
            logger.warning(
                "MLflow request failed; retrying", metadata: ["path": "\(path)", "attempt": "\(attempt)", "error": "\(problem)", "wait": "\(delay)"])
            do {
                try await Task.sleep(for: delay)
            } catch {
                throw .cancelled
            }
            wait = min(wait * 2, .seconds(30))
            attempt += 1
        }
    }

    static func escapeQuery(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    static func escapePathSegment(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~:@!$&'()*+,;=")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

extension Duration {
    /// The duration in nanoseconds, clamped to `Int64`.
    var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        guard seconds < Int64.max / 1_000_000_000 else { return .max }
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
