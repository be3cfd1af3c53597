import ExportQueue
import Foundation
import HTTPListener
import HTTPTypes
import Hummingbird
import JSONText
import Logging
import MLflowWire
import NIOCore
import NIOPosix
import OTLPJSON
import OTLPProto
import ProxyObservability
import TraceAssembly

/// Decodes trace uploads and feeds them to the assembler; builds the proxy's own answers to them.
///
/// Bad input is answered with a 4xx that says what was wrong (OTLP's `google.rpc.Status` on
/// `/v1/traces`, MLflow's JSON error elsewhere), logged, and counted under `rejected_requests{reason}`.
/// The routes the intake journal files uploads under (its stored text: the raw value), each replayed through the
/// decoding it had when it arrived.
public enum JournalRoute: String, Sendable {
    /// `POST /v1/traces`.
    case otlp
    /// `StartTraceV3`.
    case startTraceV3 = "start_trace_v3"
    /// A `traces.json` upload.
    case tracesArtifact = "traces_artifact"
    /// v2 `StartTrace`.
    case startTraceV2 = "start_trace_v2"
    /// v2 `EndTrace`.
    case endTraceV2 = "end_trace_v2"
}

/// What an upload added: its span count and the keys of the traces it touched (`t:<trace id hex>`, or
/// `r:<request id>` for v2 records), which the intake journal asks the assembler about.
public struct SpanIngest: Sendable {
    /// Spans added.
    public var spans: Int
    /// The assembler keys of the traces it touched.
    public var keys: Set<AssemblyKey>
}

/// The trace API's uploads: each route's body decoded (``MLflowWire``), its spans and trace info handed to the
/// assembler, the answer the client expects, errors in MLflow's or OTLP's format with a counter and a log line.
public struct TraceIntake: Sendable {
    let assembler: TraceAssembler
    let counters: ProxyCounters
    /// The largest trace upload body taken.
    public let maxBodyBytes: Int
    let attachments: AttachmentStore
    let status: StatusBoard
    /// Where acknowledged uploads are kept until their spans are in every destination's spool (spool on, and the
    /// proxy answering uploads itself); `nil` otherwise.
    public var journal: IntakeJournal?
    /// Set on the copy that replays the journal (it has no journal of its own but needs the keys).
    public var isReplay = false

    /// An intake that hands what it decodes to `assembler`; bodies over `maxBodyBytes` are refused.
    public init(assembler: TraceAssembler, counters: ProxyCounters, maxBodyBytes: Int, attachments: AttachmentStore, status: StatusBoard) {
        self.assembler = assembler
        self.counters = counters
        self.maxBodyBytes = maxBodyBytes
        self.attachments = attachments
        self.status = status
    }

    // MARK: Answered at once

    /// An answer made without waiting, and what is left of handing on the traces the upload completed: those the
    /// next stage could not take yet are delivered (``TraceAssembler/deliver(_:)``) before the answer is sent, the
    /// next stage is woken for those it took after the answer is sent (``TraceAssembler/Handoff``).
    public typealias ImmediateAnswer = (answer: ListenerAnswer, handoff: TraceAssembler.Handoff)

    /// The largest body answered at once on the caller's thread (the listener's event loop): decoding it takes well
    /// under a millisecond.
    public static let immediateBodyLimit = 256 * 1024

    /// Whether an upload can be answered at once: nothing to write to the journal, and a body that is neither
    /// compressed (its size says what decoding costs) nor over ``immediateBodyLimit``.
    func answersImmediately(headers: HTTPFields, body: ByteBuffer) -> Bool {
        journal == nil && body.readableBytes <= Self.immediateBodyLimit
            && (headers.value(of: .contentEncoding).map { $0.lowercased() == "identity" } ?? true)
    }

    /// Hands on the traces an immediate answer's upload completed (waiting while the next stage is full).
    public func deliver(_ release: TraceAssembler.Release) async { await assembler.deliver(release) }

    // MARK: POST /v1/traces

    private static let experimentIDHeader = HTTPField.Name("x-mlflow-experiment-id")!  // a valid literal header name

    /// Decodes an OTLP upload and adds its spans. Returns the decode error instead of throwing it, so
    /// dual mode can log it while the upstream's answer stands.
    public func ingestOTLP(body: ByteBuffer, headers: HTTPFields) async -> Result<SpanIngest, WireError> {
        do throws(WireError) {
            let batches = try decodeOTLP(body: body, headers: headers)
            await assembler.add(batches)
            return .success(counted(batches))
        } catch {
            return .failure(error)
        }
    }

    private func decodeOTLP(body: ByteBuffer, headers: HTTPFields) throws(WireError) -> [SpanBatch] {
        let format = try OTLPRequestDecoder.bodyFormat(contentType: headers.value(of: .contentType))
        let plain = try OTLPRequestDecoder.decompress(body, contentEncoding: headers.value(of: .contentEncoding), limit: maxBodyBytes)
        var batches = try OTLPRequestDecoder.decode(plain, format: format, experimentID: headers.value(of: Self.experimentIDHeader))
        let spans = batches.reduce(0) { $0 + $1.spans.count }
        for index in batches.indices { batches[index].bytesPerSpan = plain.readableBytes / max(spans, 1) }
        return batches
    }

    /// Counts added spans; the journal's keys only when a journal reads them (not on the plain export path).
    private func counted(_ batches: [SpanBatch]) -> SpanIngest {
        let spans = batches.reduce(0) { $0 + $1.spans.count }
        counters.increment(.spansReceived, "otlp", by: spans)
        status.spansReceived(spans)
        let keys = journal == nil && !isReplay ? [] : Set(batches.flatMap { $0.spans.map { AssemblyKey.trace($0.traceID) } })
        return SpanIngest(spans: spans, keys: keys)
    }

    /// The proxy's own answer to `POST /v1/traces` (OpenTelemetry-only and standalone modes), its body read whole.
    public func answerOTLP(headers: HTTPFields, body: ByteBuffer, logger: Logger) async -> ListenerAnswer {
        let json = (try? OTLPRequestDecoder.bodyFormat(contentType: headers.value(of: .contentType))) == .json
        guard headers.contains(Self.experimentIDHeader) else { return missingExperimentID(json: json, logger: logger) }
        switch await ingestOTLP(body: body, headers: headers) {
        case .success(let ingested):
            if let unavailable = await persist(.otlp, body: body, headers: headers, keys: ingested.keys, logger: logger) {
                return unavailable
            }
            return otlpAccepted(ingested, json: json, logger: logger)
        case .failure(let error):
            return rejectOTLP(error, json: json, logger: logger)
        }
    }

    /// ``answerOTLP(headers:body:logger:)`` without waiting, when ``answersImmediately(headers:body:)``; `nil` otherwise.
    public func answerOTLPNow(headers: HTTPFields, body: ByteBuffer, logger: Logger) -> ImmediateAnswer? {
        guard answersImmediately(headers: headers, body: body) else { return nil }
        let json = (try? OTLPRequestDecoder.bodyFormat(contentType: headers.value(of: .contentType))) == .json
        guard headers.contains(Self.experimentIDHeader) else { return (missingExperimentID(json: json, logger: logger), .none) }
        do throws(WireError) {
            let batches = try decodeOTLP(body: body, headers: headers)
            let handoff = assembler.addNow(batches)
            return (otlpAccepted(counted(batches), json: json, logger: logger), handoff)
        } catch {
            return (rejectOTLP(error, json: json, logger: logger), .none)
        }
    }

    private func missingExperimentID(json: Bool, logger: Logger) -> ListenerAnswer {
        rejectOTLP(WireError(.missingHeader, "the x-mlflow-experiment-id header is required"), json: json, logger: logger)
    }

    /// An empty ExportTraceServiceResponse: 0 bytes in protobuf, {} in JSON (full success).
    private func otlpAccepted(_ ingested: SpanIngest, json: Bool, logger: Logger) -> ListenerAnswer {
        logger.debug("spans received", metadata: ["route": "/v1/traces", "spans": "\(ingested.spans)"])
        return ListenerAnswer(
            status: .ok, headers: [.contentType: json ? "application/json" : "application/x-protobuf"],
            body: json ? ByteBuffer(string: "{}") : ByteBuffer())
    }

    // MARK: POST /api/3.0/mlflow/traces

    /// Decodes a `StartTraceV3` body and adds its trace info.
    /// - Returns: the decoded record, the parsed `trace_info` object, and whether the trace's spans had already arrived.
    public func ingestStartTraceV3(body: ByteBuffer) async -> Result<(info: TraceInfo, hadSpans: Bool), WireError> {
        do throws(WireError) {
            let decoded = try StartTraceV3Decoder.decode(Data(body.readableBytesView))
            let hadSpans = await assembler.add(info: decoded.info)
            counters.increment(.traceInfosReceived, "v3")
            return .success((decoded.info, hadSpans))
        } catch {
            return .failure(error)
        }
    }

    /// The proxy's own answer to `StartTraceV3`: the request's trace info echoed, with the artifact location
    /// the proxy serves, and `spansLocation=TRACKING_STORE` only when the spans already came over
    /// `/v1/traces` (otherwise the client uploads them as `traces.json`, which the proxy accepts).
    public func answerStartTraceV3(headers: HTTPFields, body: ByteBuffer, logger: Logger) async -> ListenerAnswer {
        let decoded: StartTraceV3Decoder.Decoded
        do {
            decoded = try StartTraceV3Decoder.decode(Array(body.readableBytesView))
        } catch {
            return rejectMLflow(error, logger: logger)
        }
        let hadSpans = await assembler.add(info: decoded.info)
        counters.increment(.traceInfosReceived, "v3")
        let keys: Set<AssemblyKey> = decoded.info.otelTraceID.map { [.trace(Data($0))] } ?? []
        if let unavailable = await persist(.startTraceV3, body: body, headers: headers, keys: keys, logger: logger) {
            return unavailable
        }
        return startTraceV3Accepted(decoded, hadSpans: hadSpans)
    }

    /// ``answerStartTraceV3(headers:body:logger:)`` without waiting, when ``answersImmediately(headers:body:)``; `nil`
    /// otherwise.
    public func answerStartTraceV3Now(headers: HTTPFields, body: ByteBuffer, logger: Logger) -> ImmediateAnswer? {
        guard answersImmediately(headers: headers, body: body) else { return nil }
        let decoded: StartTraceV3Decoder.Decoded
        do {
            decoded = try StartTraceV3Decoder.decode(Array(body.readableBytesView))
        } catch {
            return (rejectMLflow(error, logger: logger), .none)
        }
        let (hadSpans, handoff) = assembler.addNow(info: decoded.info)
        counters.increment(.traceInfosReceived, "v3")
        return (startTraceV3Accepted(decoded, hadSpans: hadSpans), handoff)
    }

    /// The record as the client sent it (its own text), with the tags the MLflow server adds.
    private func startTraceV3Accepted(_ decoded: StartTraceV3Decoder.Decoded, hadSpans: Bool) -> ListenerAnswer {
        ListenerAnswer(status: .ok, headers: [.contentType: "application/json"], body: ByteBuffer(bytes: decoded.answer(hadSpans: hadSpans)))
    }

    // MARK: PUT …/traces.json

    /// Decodes a `traces.json` artifact and adds its spans, after checking they belong to the trace the path names.
    public func ingestTracesArtifact(body: ByteBuffer, headers: HTTPFields, experimentID: String?, traceID: String) async -> Result<
        SpanIngest, WireError
    > {
        do throws(WireError) {
            let otelTraceID = MLflowTraceID.otelTraceID(traceID)
            guard otelTraceID != nil || Self.isRequestID(traceID) else {
                throw WireError(
                    .unknownTrace, "unknown trace id \"\(traceID)\": expected tr- followed by 32 hex digits, or a 32-hex-digit request id"
                )
            }
            var batch = try TracesArtifactDecoder.decode(Data(body.readableBytesView), experimentID: experimentID)
            batch.resourceAttributes = ClientResource.attributes(userAgent: headers.value(of: .userAgent))
            batch.mlflowTraceID = traceID
            batch.bytesPerSpan = body.readableBytes / max(batch.spans.count, 1)
            if let expected = otelTraceID.map({ Data($0) }), let stray = batch.spans.first(where: { $0.traceID != expected }) {
                throw WireError(.invalidID, "span \"\(stray.name)\" belongs to another trace than \(traceID)")
            }
            // v2 ids (server request ids) are unrelated to the spans' trace id, but one artifact is one trace.
            if let first = batch.spans.first?.traceID, let stray = batch.spans.first(where: { $0.traceID != first }) {
                throw WireError(.invalidID, "span \"\(stray.name)\" belongs to another trace than the other spans of \(traceID)")
            }
            await assembler.add([batch])
            counters.increment(.spansReceived, "traces_json", by: batch.spans.count)
            status.spansReceived(batch.spans.count)
            var keys = Set(batch.spans.prefix(1).map { AssemblyKey.trace($0.traceID) })
            if otelTraceID == nil { keys.insert(.request(traceID)) }
            return .success(SpanIngest(spans: batch.spans.count, keys: keys))
        } catch {
            return .failure(error)
        }
    }

    /// The proxy's own answer to the `traces.json` PUT: 200 with an empty body, as MLflow's artifact server.
    public func answerTracesArtifact(headers: HTTPFields, body: ByteBuffer, logger: Logger, experimentID: String?, traceID: String) async
        -> ListenerAnswer
    {
        switch await ingestTracesArtifact(body: body, headers: headers, experimentID: experimentID, traceID: traceID) {
        case .success(let ingested):
            var parameters = ["trace_id": traceID]
            if let experimentID { parameters["experiment_id"] = experimentID }
            if let unavailable = await persist(
                .tracesArtifact, body: body, headers: headers, parameters: parameters, keys: ingested.keys, logger: logger)
            {
                return unavailable
            }
            return ListenerAnswer(status: .ok)
        case .failure(let error): return rejectMLflow(error, logger: logger)
        }
    }

    /// Attachments when the proxy answers uploads itself: stored under the attachments directory when one is
    /// configured, otherwise accepted and discarded (counted, logged at debug). The `mlflow-attachment://`
    /// reference stays in the span attribute either way.
    public func answerAttachment(_ request: Request, context: ProxyRequestContext, traceID: String, attachmentID: String) async -> Response {
        do {
            let declaredLength = request.headers.value(of: .contentLength).flatMap(Int.init)
            _ = try await attachments.receive(
                request.body, traceID: traceID, attachmentID: attachmentID, declaredLength: declaredLength, logger: context.logger)
        } catch {
            return rejectMLflow(WireError(.malformedBody, "the attachment body could not be read"), logger: context.logger).response
        }
        return Response(status: .ok)
    }

    // MARK: v2 StartTrace / EndTrace (2.x and 3.0–3.3 clients)

    /// Decodes a v2 `StartTrace` and adds the trace info it announces under `requestID`.
    public func ingestStartTraceV2(body: ByteBuffer, requestID: String) async -> Result<TraceInfoV2Decoder.StartTrace, WireError> {
        do throws(WireError) {
            let start = try TraceInfoV2Decoder.decodeStartTrace(Data(body.readableBytesView))
            await assembler.add(info: start.traceInfo(requestID: requestID))
            counters.increment(.traceInfosReceived, "v2_start")
            return .success(start)
        } catch {
            return .failure(error)
        }
    }

    /// The proxy's own answer to `StartTrace`: a new request id (as the MLflow server makes them: a UUID's 32
    /// hex digits) and the artifact location the proxy serves for it. This call blocks the client's root
    /// span from starting, so it does no I/O.
    public func answerStartTraceV2(headers: HTTPFields, body: ByteBuffer, logger: Logger) async -> ListenerAnswer {
        let requestID = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        switch await ingestStartTraceV2(body: body, requestID: requestID) {
        case .failure(let error):
            return rejectMLflow(error, logger: logger)
        case .success(let start):
            if let unavailable = await persist(
                .startTraceV2, body: body, headers: headers, parameters: ["request_id": requestID], keys: [.request(requestID)], logger: logger)
            {
                return unavailable
            }
            let experiment = start.experimentID ?? "0"
            let tags = start.tags + [("mlflow.artifactLocation", "mlflow-artifacts:/\(experiment)/traces/\(requestID)/artifacts")]
            let traceInfo = JSONValue.object([
                ("request_id", .string(requestID)), ("experiment_id", .string(experiment)),
                ("timestamp_ms", .number(String(start.timestampMillis ?? 0))), ("execution_time_ms", .number("0")),
                ("status", .string("IN_PROGRESS")), ("request_metadata", Self.keyValueList(start.metadata)), ("tags", Self.keyValueList(tags)),
            ])
            return jsonAnswer(.object([("trace_info", traceInfo)]))
        }
    }

    /// Decodes a v2 `EndTrace` and adds the final trace info.
    public func ingestEndTraceV2(body: ByteBuffer, requestID: String) async -> Result<TraceInfo, WireError> {
        do throws(WireError) {
            guard !requestID.isEmpty else {
                throw WireError(.malformedBody, "the request id is missing from the path (PATCH /api/2.0/mlflow/traces/<request_id>)")
            }
            let info = try TraceInfoV2Decoder.decodeEndTrace(Data(body.readableBytesView), requestID: requestID)
            await assembler.add(info: info)
            counters.increment(.traceInfosReceived, "v2_end")
            return .success(info)
        } catch {
            return .failure(error)
        }
    }

    /// The proxy's own answer to `EndTrace`: the final trace info (the client reads nothing from it).
    public func answerEndTraceV2(headers: HTTPFields, body: ByteBuffer, logger: Logger, requestID: String) async -> ListenerAnswer {
        switch await ingestEndTraceV2(body: body, requestID: requestID) {
        case .failure(let error):
            return rejectMLflow(error, logger: logger)
        case .success(let info):
            if let unavailable = await persist(
                .endTraceV2, body: body, headers: headers, parameters: ["request_id": requestID], keys: [.request(requestID)], logger: logger)
            {
                return unavailable
            }
            let traceInfo = JSONValue.object([
                ("request_id", .string(requestID)), ("status", .string(info.state ?? "OK")),
                ("request_metadata", Self.keyValueList(info.metadata.sorted { $0.key < $1.key })),
                ("tags", Self.keyValueList(info.tags.sorted { $0.key < $1.key })),
            ])
            return jsonAnswer(.object([("trace_info", traceInfo)]))
        }
    }

    // MARK: Intake journal

    /// The headers decoding reads, kept with a journal entry.
    public static let journaledHeaders: [HTTPField.Name] = [.contentType, .contentEncoding, .userAgent, HTTPField.Name("x-mlflow-experiment-id")!]

    /// Writes an ingested upload to the journal before it is acknowledged.
    /// - Returns: `nil` when written (or no journal); otherwise the answer: 503 with `Retry-After`, so the client
    ///   retries (the spans it already gave are deduplicated then).
    public func persist(
        _ route: JournalRoute, body: ByteBuffer, headers: HTTPFields, parameters: [String: String] = [:], keys: Set<AssemblyKey>,
        logger: Logger
    ) async -> ListenerAnswer? {
        guard let journal else { return nil }
        var kept: [String: String] = [:]
        for name in Self.journaledHeaders { if let value = headers[name] { kept[name.canonicalName] = value } }
        let entry = IntakeJournal.Entry(route: route.rawValue, headers: kept, parameters: parameters, body: Data(body.readableBytesView))
        do {
            // A disk write (synced with the spool's fsync setting): on NIO's blocking-I/O pool, so the
            // concurrency pool keeps serving other requests meanwhile.
            try await NIOThreadPool.singleton.runIfActive { try journal.record(entry, keys: Set(keys.map(\.journalText))) }
            return nil
        } catch {
            counters.increment(.spoolErrors, "intake")
            counters.increment(.rejectedRequests, "journal_write")
            logger.error("could not write an upload to the intake journal; answered 503", metadata: ["error": "\(error)"])
            let message = "mlflow-otel-proxy could not store the upload durably; retry later"
            let json = headers.value(of: .contentType)?.contains("json") ?? false
            var answer =
                route == .otlp
                ? ErrorResponses.otlp(status: .serviceUnavailable, message: message, json: json)
                : ErrorResponses.mlflowAnswer(status: .serviceUnavailable, code: "TEMPORARILY_UNAVAILABLE", message: message)
            answer.headers[.retryAfter] = "5"
            return answer
        }
    }

    /// Feeds a journaled upload through the same decoding as when it arrived.
    /// - Returns: the keys of what it added to the assembler (see ``IntakeJournal/record(_:keys:)``), or `nil`
    ///   when it did not decode.
    public func replay(_ entry: IntakeJournal.Entry) async -> Set<AssemblyKey>? {
        let body = ByteBuffer(bytes: entry.body)
        var headers = HTTPFields()
        for (name, value) in entry.headers { if let field = HTTPField.Name(name) { headers[field] = value } }
        let requestID = entry.parameters["request_id"] ?? ""
        switch JournalRoute(rawValue: entry.route) {
        case .otlp:
            return try? await ingestOTLP(body: body, headers: headers).get().keys
        case .startTraceV3:
            guard let info = try? await ingestStartTraceV3(body: body).get().info else { return nil }
            return info.otelTraceID.map { [.trace(Data($0))] } ?? []
        case .tracesArtifact:
            let result = await ingestTracesArtifact(
                body: body, headers: headers, experimentID: entry.parameters["experiment_id"], traceID: entry.parameters["trace_id"] ?? "")
            return try? result.get().keys
        case .startTraceV2:
            return (try? await ingestStartTraceV2(body: body, requestID: requestID).get()) == nil ? nil : [.request(requestID)]
        case .endTraceV2:
            return (try? await ingestEndTraceV2(body: body, requestID: requestID).get()) == nil ? nil : [.request(requestID)]
        case nil:
            return nil
        }
    }

    /// Whether an id has the shape of a v2 request id (32 hex digits).
    public static func isRequestID(_ id: String) -> Bool {
        id.utf8.count == 32 && id.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || ($0 >= 65 && $0 <= 70) }
    }

    // MARK: Before the body

    /// The answer given before a trace upload's body is read, when the proxy cannot take it now: a destination's spool
    /// cannot be written (every trace upload), or the export queue is full (spans: `/v1/traces` and `traces.json`).
    /// `nil`: read the body.
    public func answerBeforeBody(_ route: MLflowRoute, json: Bool, spoolProblem: String?, exportIsSaturated: () -> Bool, logger: Logger)
        -> ListenerAnswer?
    {
        if let spoolProblem { return spoolUnwritable(spoolProblem, route: route, json: json, logger: logger) }
        if route == .otlpTraces || route.isTracesArtifact, exportIsSaturated() { return overloaded(route: route, json: json, logger: logger) }
        return nil
    }

    // MARK: Errors

    func rejectOTLP(_ error: WireError, json: Bool, logger: Logger) -> ListenerAnswer {
        record(error, route: "/v1/traces", logger: logger)
        return ErrorResponses.otlp(status: .init(code: error.httpStatus), message: error.message, json: json)
    }

    func rejectMLflow(_ error: WireError, logger: Logger) -> ListenerAnswer {
        record(error, route: "mlflow", logger: logger)
        return ErrorResponses.mlflowAnswer(status: .init(code: error.httpStatus), code: error.mlflowErrorCode, message: error.message)
    }

    /// Counts and logs a rejected upload.
    public func record(_ error: WireError, route: String, logger: Logger) {
        counters.increment(.rejectedRequests, error.kind.rawValue)
        logger.warning("rejected a trace upload", metadata: ["route": "\(route)", "reason": "\(error.kind.rawValue)", "error": "\(error.message)"])
    }

    /// The answer to a trace upload whose body was not read (``BodyMemoryBudget/collect(_:limit:)``, ``BodyCollection``),
    /// in the route's error format, with `Connection: close` (the rest of the body is not read): 413 for a body over
    /// the limit, 503 with `Retry-After` when the proxy holds its budget of request bodies already (MLflow clients and
    /// OTLP exporters retry it), 400 for a body the connection broke off.
    public func refused(_ refusal: BodyMemoryBudget.Refusal, route: MLflowRoute, json: Bool, budget: Int, logger: Logger) -> ListenerAnswer {
        let error: WireError
        var answer: ListenerAnswer
        switch refusal {
        case .tooLarge:
            error = WireError(.bodyTooLarge, "the body exceeds \(maxBodyBytes) bytes")
        case .unreadable:
            error = WireError(.malformedBody, "the body could not be read whole")
        case .overBudget:
            counters.increment(.rejectedRequests, "body_memory_budget")
            logger.warning(
                "request bodies held in memory at their limit; asking the client to retry later",
                metadata: ["route": "\(route.name)", "max_body_bytes_in_memory": "\(budget)"])
            answer = retryLater(
                "mlflow-otel-proxy holds its limit of request bodies in memory (\(budget) bytes); retry shortly", route: route, json: json,
                after: 1)
            answer.headers[.connection] = "close"
            return answer
        }
        answer = route == .otlpTraces ? rejectOTLP(error, json: json, logger: logger) : rejectMLflow(error, logger: logger)
        answer.headers[.connection] = "close"
        return answer
    }

    /// The answer while a destination's spool cannot be written (a full or read-only disk): 503 with `Retry-After`,
    /// as when the journal cannot be written; what was acknowledged before stays in the journal.
    public func spoolUnwritable(_ problem: String, route: MLflowRoute, json: Bool, logger: Logger) -> ListenerAnswer {
        counters.increment(.rejectedRequests, "spool_write")
        logger.warning("a destination's spool cannot be written; asking the client to retry later", metadata: ["route": "\(route.name)"])
        return retryLater("mlflow-otel-proxy cannot store uploads right now (\(problem)); retry later", route: route, json: json, after: 5)
    }

    /// The answer when the export queue is full: 503 with `Retry-After`, which MLflow clients honour.
    public func overloaded(route: MLflowRoute, json: Bool, logger: Logger) -> ListenerAnswer {
        counters.increment(.rejectedRequests, "overloaded")
        logger.warning("export queue is full; asking the client to retry later", metadata: ["route": "\(route.name)"])
        return retryLater("mlflow-otel-proxy is overloaded (its export queue is full); retry later", route: route, json: json, after: 5)
    }

    /// 503 with `Retry-After` in the route's error format (OTLP's on `/v1/traces`, MLflow's elsewhere).
    public func retryLater(_ message: String, route: MLflowRoute, json: Bool, after seconds: Int) -> ListenerAnswer {
        var answer =
            route == .otlpTraces
            ? ErrorResponses.otlp(status: .serviceUnavailable, message: message, json: json)
            : ErrorResponses.mlflowAnswer(status: .serviceUnavailable, code: "TEMPORARILY_UNAVAILABLE", message: message)
        answer.headers[.retryAfter] = "\(seconds)"
        return answer
    }

    /// A 200 with `value` as its JSON body.
    public func jsonAnswer(_ value: JSONValue) -> ListenerAnswer {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(2048)  // a StartTraceV3 answer (the trace info echoed) fits without growing
        value.write(to: &bytes)
        return ListenerAnswer(status: .ok, headers: [.contentType: "application/json"], body: ByteBuffer(bytes: bytes))
    }

    /// MLflow 2.x's `[{"key": …, "value": …}]` form of key-value pairs, in their order.
    public static func keyValueList(_ pairs: [(key: String, value: String)]) -> JSONValue {
        .array(pairs.map { .object([("key", .string($0.key)), ("value", .string($0.value))]) })
    }
}
