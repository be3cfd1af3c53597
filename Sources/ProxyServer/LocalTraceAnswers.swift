import HTTPListener
import HTTPTypes
import Hummingbird
import Intake
import Logging
import MLflowWire
import Passthrough
import TraceAssembly

/// The trace uploads the proxy answers itself (OpenTelemetry-only and standalone modes): every upload whose body is
/// read whole (`/v1/traces`, `StartTraceV3`, v2 `StartTrace`/`EndTrace`, `traces.json`), defined once as a
/// ``LocalAnswering`` that the listener runs in its pipeline (``PassthroughHandler``) and the application runs for a
/// request that reaches it (``answer(_:answering:logger:)``).
struct LocalTraceAnswers: Sendable {
    let intake: TraceIntake
    /// Request bodies held in memory, over all connections.
    let budget: BodyMemoryBudget
    /// Whether the export queue is full (span uploads then get 503 before their body is read).
    let exportIsSaturated: @Sendable () -> Bool
    /// Why a destination's spool cannot be written, if one cannot (every trace upload then gets 503).
    let spoolProblem: @Sendable () -> String?

    /// How `route` is answered; `nil` for a route that is not a whole-body trace upload (attachments stream to disk
    /// in the application).
    func answering(_ route: MLflowRoute, headers: HTTPFields) -> LocalAnswering? {
        let intake = self.intake
        let answer: @Sendable (ByteBuffer, Logger) async -> ListenerAnswer
        var answerNow: (@Sendable (ByteBuffer, Logger) -> TraceIntake.ImmediateAnswer?)?
        switch route {
        case .otlpTraces:
            answer = { body, logger in await intake.answerOTLP(headers: headers, body: body, logger: logger) }
            answerNow = { body, logger in intake.answerOTLPNow(headers: headers, body: body, logger: logger) }
        case .startTraceV3:
            answer = { body, logger in await intake.answerStartTraceV3(headers: headers, body: body, logger: logger) }
            answerNow = { body, logger in intake.answerStartTraceV3Now(headers: headers, body: body, logger: logger) }
        case .startTraceV2: answer = { body, logger in await intake.answerStartTraceV2(headers: headers, body: body, logger: logger) }
        case .endTraceV2(let requestID):
            answer = { body, logger in await intake.answerEndTraceV2(headers: headers, body: body, logger: logger, requestID: requestID) }
        case .tracesArtifact(let experimentID, let traceID):
            answer = { body, logger in
                await intake.answerTracesArtifact(headers: headers, body: body, logger: logger, experimentID: experimentID, traceID: traceID)
            }
        default:
            return nil
        }
        let json = (try? OTLPRequestDecoder.bodyFormat(contentType: headers.value(of: .contentType))) == .json
        let budget = self.budget
        let exportIsSaturated = self.exportIsSaturated
        let spoolProblem = self.spoolProblem
        return LocalAnswering(
            budget: budget, maxBodyBytes: intake.maxBodyBytes,
            beforeBody: { logger in
                intake.answerBeforeBody(route, json: json, spoolProblem: spoolProblem(), exportIsSaturated: exportIsSaturated, logger: logger)
            },
            refused: { refusal, logger in intake.refused(refusal, route: route, json: json, budget: budget.capacity, logger: logger) },
            answerNow: answerNow.map { Self.listenerForm($0, intake: intake) }, answer: answer)
    }

    /// An immediate answer as the listener takes it: the traces the upload completed, if the next stage could not take
    /// them at once, are delivered before the answer is written; if it took them, its task is woken after.
    private static func listenerForm(
        _ answerNow: @escaping @Sendable (ByteBuffer, Logger) -> TraceIntake.ImmediateAnswer?, intake: TraceIntake
    ) -> @Sendable (ByteBuffer, Logger) -> LocalAnswering.Immediate? {
        { body, logger in
            guard let immediate = answerNow(body, logger) else { return nil }
            let wake = immediate.handoff.wake
            guard let release = immediate.handoff.release else {
                return LocalAnswering.Immediate(answer: immediate.answer, before: nil, after: wake)
            }
            let before: @Sendable () async -> Void = {
                wake?()
                await intake.deliver(release)
            }
            return LocalAnswering.Immediate(answer: immediate.answer, before: before)
        }
    }

    /// The same answer for a request that reached the application: the body collected under the budget, the refusal
    /// sent after a declared body was read and dropped (as the listener does).
    static func answer(_ request: inout Request, answering: LocalAnswering, logger: Logger) async -> Response {
        if let answer = answering.beforeBody(logger) { return answer.response }
        let reservation: BodyMemoryBudget.Reservation
        do {
            reservation = try await answering.budget.collect(&request, limit: answering.maxBodyBytes)
        } catch {
            if error != .unreadable { await BodyMemoryBudget.discardDeclaredBody(of: &request) }
            var refusal = answering.refused(error, logger)
            refusal.headers[.connection] = "close"
            return refusal.response
        }
        defer { reservation.release() }
        let body = (try? await request.collectBody(upTo: answering.maxBodyBytes)) ?? .init()
        return await answering.answer(body, logger).response
    }
}
