import AdminSite
import Delivery
import Foundation
import HTTPListener
import HTTPTypes
import Hummingbird
import Intake
import JSONText
import Logging
import MLflowWire
import NIOCore
import Passthrough
import ProxyObservability
import ProxySettings
import SharedSettings

/// Routes every request by the export mode: pass it through, answer it locally, or forward it and
/// export a copy (dual mode).
struct ProxyResponder: HTTPResponder {
    typealias Context = ProxyRequestContext

    let mode: ExportMode
    let forwarder: UpstreamForwarder?
    let intake: TraceIntake?
    /// The uploads the proxy answers itself (OpenTelemetry-only and standalone, with an intake); the listener's
    /// pipeline answers them with the same definitions before they reach the application.
    let localAnswers: LocalTraceAnswers?
    /// Settings a reload can change (inbound tokens), read per request.
    let live: LiveSettings
    let experiments: StandaloneExperiments
    let counters: ProxyCounters
    /// Request bodies held in memory, over all connections.
    let bodyBudget: BodyMemoryBudget
    /// Dual-mode copies still being decoded (shutdown waits for them).
    let copies: DualCopies

    func respond(to request: Request, context: ProxyRequestContext) async throws -> Response {
        switch RequestAdmission.admit(request.head, authentication: live.current.authentication) {
        case .admitted(let head, let route, let normalizedFrom):
            if let normalizedFrom {
                context.logger.debug("request path normalized", metadata: ["path": "\(normalizedFrom)", "normalized": "\(head.path ?? "")"])
            }
            let admitted = head == request.head ? request : Request(head: head, body: request.body)
            let response = await dispatch(admitted, route: route, context: context)
            counters.increment(.requests, labels: [route.name, ProxyMetric.statusClass(response.status.code)])
            return response
        case .unsafePath(let reason):
            counters.increment(.rejectedRequests, "unsafe_path")
            counters.increment(.requests, labels: ["passthrough", "4xx"])
            context.logger.warning("request path rejected", metadata: ["reason": "\(reason)"])
            return ErrorResponses.mlflow(status: .badRequest, code: "INVALID_PARAMETER_VALUE", message: "Rejected the request path: \(reason).")
        case .looped(let route):
            counters.increment(.rejectedRequests, "loop_detected")
            counters.increment(.requests, labels: [route.name, "5xx"])
            context.logger.error(
                "request loop: a request this proxy forwarded came back to it; the upstream leads to the proxy itself",
                metadata: ["path": "\(request.uri.path)"])
            return LoopGuard.loopDetected()
        case .unauthenticated(let route):
            counters.increment(.rejectedRequests, "unauthenticated")
            context.logger.warning("request without a valid proxy token", metadata: ["path": "\(request.uri.path)"])
            counters.increment(.requests, labels: [route.name, "4xx"])
            return InboundAuthentication.deniedResponse()
        }
    }

    private func dispatch(_ request: Request, route: MLflowRoute, context: ProxyRequestContext) async -> Response {
        context.logger.debug("request", metadata: ["method": "\(request.method.rawValue)", "path": "\(request.uri.path)", "route": "\(route.name)"])
        var request = request
        if route.isTraceUpload, let intake {
            switch mode {
            case .dual, .mlflowOnly:
                // MLflow-only has an intake only when span metrics are exported: as in an application, the
                // metrics variables work whatever the traces' destination (the copy feeds the metrics alone).
                if let forwarder {
                    return await tee(&request, route: route, context: context, forwarder: forwarder, intake: intake)
                }
            case .openTelemetryOnly, .standalone:
                if let localAnswers {
                    return await answerLocally(&request, route: route, context: context, intake: intake, answers: localAnswers)
                }
            }
        }
        if let forwarder { return await forwarder.forward(request, context: context) }
        return await answerStandalone(&request, route: route, context: context)
    }

    /// OpenTelemetry-only and standalone: the proxy is the trace API. Attachments stream to disk; every other upload
    /// is read whole and answered as the listener answers it (``LocalTraceAnswers``).
    private func answerLocally(
        _ request: inout Request, route: MLflowRoute, context: ProxyRequestContext, intake: TraceIntake, answers: LocalTraceAnswers
    ) async -> Response {
        if let answering = answers.answering(route, headers: request.headers) {
            return await LocalTraceAnswers.answer(&request, answering: answering, logger: context.logger)
        }
        guard case .traceAttachment(_, let traceID, let attachmentID) = route else {
            return await answerStandalone(&request, route: route, context: context)
        }
        if let problem = answers.spoolProblem() {
            return intake.spoolUnwritable(problem, route: route, json: false, logger: context.logger).response
        }
        return await intake.answerAttachment(request, context: context, traceID: traceID, attachmentID: attachmentID)
    }

    /// Dual mode: the upload goes upstream unchanged and the client gets the upstream's answer; a copy is
    /// decoded and exported, without delaying that answer, when the upstream accepted the upload or could not
    /// judge it. Attachments are only forwarded.
    private func tee(
        _ request: inout Request, route: MLflowRoute, context: ProxyRequestContext, forwarder: UpstreamForwarder, intake: TraceIntake
    ) async -> Response {
        if case .traceAttachment = route { return await forwarder.forward(request, context: context) }
        let reservation: BodyMemoryBudget.Reservation
        do {
            reservation = try await bodyBudget.collect(&request, limit: intake.maxBodyBytes)
        } catch {
            if error != .unreadable { await BodyMemoryBudget.discardDeclaredBody(of: &request) }
            let json = (try? OTLPRequestDecoder.bodyFormat(contentType: request.headers.value(of: .contentType))) == .json
            return intake.refused(error, route: route, json: json, budget: bodyBudget.capacity, logger: context.logger).response
        }
        defer { reservation.release() }
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: intake.maxBodyBytes)
        } catch {
            intake.record(WireError(.bodyTooLarge, "the body exceeds \(intake.maxBodyBytes) bytes"), route: route.name, logger: context.logger)
            return ErrorResponses.mlflow(
                status: .contentTooLarge, code: "MAX_READ_SIZE_EXCEEDED", message: "The trace upload exceeds \(intake.maxBodyBytes) bytes."
            )
        }
        let headers = request.headers
        let logger = context.logger
        if case .startTraceV2 = route {
            // The request id is the upstream's: read its (small) answer before filing the trace info under it.
            let (response, answer) = await forwarder.forwardReadingAnswer(request, context: context, bufferedBody: body, limit: 1024 * 1024)
            if let answer, let requestID = TraceInfoV2Decoder.decodeTraceInfoAnswer(Data(answer.readableBytesView))?.requestID {
                let held = reservation.transfer()
                copies.start {
                    await report(intake.ingestStartTraceV2(body: body, requestID: requestID).map { _ in 0 }, route: route, logger: logger)
                    held.release()
                }
            }
            return response
        }
        let response = await forwarder.forward(request, context: context, bufferedBody: body)
        // The copy is exported only for what MLflow accepted (2xx), or could not judge (unreachable, timed out, 5xx:
        // the promise that export goes on while MLflow is down); never after a 4xx, or anyone who reaches the
        // proxy could write into the destinations with the proxy's keys uploads MLflow itself refuses.
        // One exception: a 404 to a 3.x-only call (`StartTraceV3`, `/v1/traces`) means a server older than the call,
        // not a refusal (authentication fails with 401/403 before routing); the client then sends the same trace the
        // 2.x way, and the copy keeps the trace info it carried.
        let status = Int(response.status.code)
        let olderServer: Bool
        switch route {
        case .startTraceV3, .otlpTraces: olderServer = status == 404
        default: olderServer = false
        }
        guard (200..<300).contains(status) || status >= 500 || olderServer else {
            counters.increment(.copiesNotExported, "upstream_\(status / 100)xx")
            logger.info(
                "the upstream refused a trace upload; its copy is not exported", metadata: ["route": "\(route.name)", "status": "\(status)"])
            return response
        }
        // The copy keeps the body's share of the memory budget until it is decoded.
        let held = reservation.transfer()
        copies.start {
            defer { held.release() }
            let result: Result<Int, WireError>
            switch route {
            case .otlpTraces: result = await intake.ingestOTLP(body: body, headers: headers).map(\.spans)
            case .startTraceV3: result = await intake.ingestStartTraceV3(body: body).map { _ in 0 }
            case .endTraceV2(let requestID): result = await intake.ingestEndTraceV2(body: body, requestID: requestID).map { _ in 0 }
            case .tracesArtifact(let experimentID, let traceID):
                result = await intake.ingestTracesArtifact(body: body, headers: headers, experimentID: experimentID, traceID: traceID).map(\.spans)
            default: return
            }
            report(result, route: route, logger: logger)
        }
        return response
    }

    /// Logs and counts a copy that could not be decoded (dual mode: the upstream got the upload unchanged).
    private func report(_ result: Result<Int, WireError>, route: MLflowRoute, logger: Logger) {
        guard case .failure(let error) = result else { return }
        counters.increment(.rejectedRequests, error.kind.rawValue)
        logger.warning(
            "could not export a copy of a trace upload (the upstream got it unchanged)",
            metadata: ["route": "\(route.name)", "reason": "\(error.kind.rawValue)", "error": "\(error.message)"]
        )
    }

    /// No upstream: answer what a tracing client needs, and say clearly that the rest needs an upstream.
    private func answerStandalone(_ request: inout Request, route: MLflowRoute, context: ProxyRequestContext) async -> Response {
        switch route {
        case .version:
            return Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: ProxyVersion.emulatedMLflowVersion))
            )
        case .experimentGetByName:
            let name = request.uri.queryParameters["experiment_name"].map(String.init) ?? ""
            guard let experiment = experiments.find(name: name) else {
                return ErrorResponses.mlflow(
                    status: .notFound, code: "RESOURCE_DOES_NOT_EXIST", message: "Could not find experiment with name '\(name)'")
            }
            return json(StandaloneExperiments.json(experiment))
        case .experimentGet:
            let id = request.uri.queryParameters["experiment_id"].map(String.init) ?? ""
            guard let experiment = experiments.find(id: id) else {
                return ErrorResponses.mlflow(status: .notFound, code: "RESOURCE_DOES_NOT_EXIST", message: "No Experiment with id=\(id) exists")
            }
            return json(StandaloneExperiments.json(experiment))
        case .experimentCreate:
            let body = try? await request.collectBody(upTo: 1024 * 1024)
            let object = body.flatMap { JSONValue(parsing: Array($0.readableBytesView)) }
            guard let name = object?["name"]?.stringValue, !name.isEmpty else {
                return ErrorResponses.mlflow(
                    status: .badRequest, code: "INVALID_PARAMETER_VALUE", message: "Missing value for required parameter 'name'.")
            }
            switch experiments.create(name: name) {
            case .success(let experiment):
                return json(.object([("experiment_id", .string(experiment.id))]))
            case .failure(.exists):
                return ErrorResponses.mlflow(
                    status: .badRequest, code: "RESOURCE_ALREADY_EXISTS", message: "Experiment '\(name)' already exists.")
            case .failure(.nameTooLong):
                counters.increment(.rejectedRequests, "experiment_name_too_long")
                return ErrorResponses.mlflow(
                    status: .badRequest, code: "INVALID_PARAMETER_VALUE",
                    message: "Experiment names are limited to \(StandaloneExperiments.maxNameBytes) bytes.")
            case .failure(.tooMany):
                counters.increment(.rejectedRequests, "experiments_limit")
                context.logger.warning("standalone experiment limit reached", metadata: ["limit": "\(StandaloneExperiments.maxExperiments)"])
                return ErrorResponses.mlflow(
                    status: .badRequest, code: "RESOURCE_LIMIT_EXCEEDED",
                    message: "mlflow-otel-proxy keeps at most \(StandaloneExperiments.maxExperiments) experiments without an upstream.")
            }
        default:
            counters.increment(.rejectedRequests, "no_upstream")
            return ErrorResponses.mlflow(
                status: .notImplemented, code: "NOT_IMPLEMENTED",
                message: "mlflow-otel-proxy runs without an upstream MLflow server (standalone), so it cannot serve "
                    + "\(request.method.rawValue) \(request.uri.path). Start it with --upstream URL or MLFLOW_TRACKING_URI to pass such calls through."
            )
        }
    }

    private func json(_ value: JSONValue) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: value.text)))
    }
}

/// The checks every request passes before it is routed, in order: a safe path (normalized as nginx would), no loop
/// back to this proxy, the proxy's own token when one is required (removed from the request). Pure: the caller
/// counts, logs and answers. The listener's passthrough (``PassthroughHandler``) and ``ProxyResponder`` both decide
/// with it, so a request is admitted the same way whichever of them forwards it.
enum RequestAdmission {
    /// What the checks decided.
    enum Outcome<Head: ListenerRequestHead> {
        /// Passed; the head to route (path normalized, token removed), its route, and the path before normalizing.
        case admitted(Head, MLflowRoute, normalizedFrom: String?)
        /// A path that cannot be forwarded safely.
        case unsafePath(reason: String)
        /// A request this proxy already forwarded.
        case looped(MLflowRoute)
        /// No valid proxy token.
        case unauthenticated(MLflowRoute)
    }

    /// Checks a head: HTTPTypes' (the application's requests) or NIO's (the passthrough's), with the same outcome
    /// for the same request.
    static func admit<Head: ListenerRequestHead>(_ head: Head, authentication: InboundAuthentication?) -> Outcome<Head> {
        var head = head
        var normalizedFrom: String?
        switch RequestPathNormalizer.normalize(head.target) {
        case .unchanged:
            break
        case .normalized(let target):
            normalizedFrom = head.target
            head.target = target
        case .rejected(let reason):
            return .unsafePath(reason: reason)
        }
        let route = MLflowRoute.classify(method: head.methodName, path: path(of: head.target))
        if LoopGuard.hasLooped(head) { return .looped(route) }
        if let authentication {
            guard let allowed = authentication.allowedHead(head) else { return .unauthenticated(route) }
            head = allowed
        }
        return .admitted(head, route, normalizedFrom: normalizedFrom)
    }

    /// A target's path without its query (what routes are matched on).
    static func path(of target: String) -> Substring {
        guard !target.isEmpty else { return "/" }
        return RequestPathNormalizer.pathPart(of: target)
    }
}
