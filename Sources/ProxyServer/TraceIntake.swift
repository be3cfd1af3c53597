import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MLflowWire
import NIOCore
import OTLPProto
import ProxyObservability
import TraceAssembly

/// Decodes trace uploads and feeds them to the assembler; builds the proxy's own answers to them.
///
/// Bad input is answered with a 4xx that says what was wrong (OTLP's `google.rpc.Status` on
/// `/v1/traces`, MLflow's JSON error elsewhere), logged, and counted under `rejected_requests{reason}`.
struct TraceIntake: Sendable {
    let assembler: TraceAssembler
    let counters: ProxyCounters
    let maxBodyBytes: Int

    // MARK: POST /v1/traces

    /// Decodes an OTLP upload and adds its spans. Returns the decode error instead of throwing it, so
    /// dual mode can log it while the upstream's answer stands.
    func ingestOTLP(body: ByteBuffer, headers: HTTPFields) async -> Result<Int, WireError> {
        do throws(WireError) {
            let format = try OTLPRequestDecoder.bodyFormat(contentType: headers[.contentType])
            let plain = try OTLPRequestDecoder.decompress(body, contentEncoding: headers[.contentEncoding], limit: maxBodyBytes)
            let experimentID = headers[HTTPField.Name("x-mlflow-experiment-id")!]  // a valid literal header name
            let batches = try OTLPRequestDecoder.decode(plain, format: format, experimentID: experimentID)
            await assembler.add(batches)
            let spans = batches.reduce(0) { $0 + $1.spans.count }
            counters.increment("spans_received", "otlp", by: spans)
            return .success(spans)
        } catch {
            return .failure(error)
        }
    }

    /// The proxy's own answer to `POST /v1/traces` (OpenTelemetry-only and standalone modes).
    func answerOTLP(_ request: inout Request, context: ProxyRequestContext) async -> Response {
        let json = (try? OTLPRequestDecoder.bodyFormat(contentType: request.headers[.contentType])) == .json
        guard request.headers[HTTPField.Name("x-mlflow-experiment-id")!] != nil else {  // a valid literal header name
            return rejectOTLP(WireError(.missingHeader, "the x-mlflow-experiment-id header is required"), json: json, context: context)
        }
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: maxBodyBytes)
        } catch {
            return rejectOTLP(WireError(.bodyTooLarge, "the body exceeds \(maxBodyBytes) bytes"), json: json, context: context)
        }
        switch await ingestOTLP(body: body, headers: request.headers) {
        case .success(let spans):
            context.logger.debug("spans received", metadata: ["route": "/v1/traces", "spans": "\(spans)"])
            // An empty ExportTraceServiceResponse: 0 bytes in protobuf, {} in JSON (full success).
            return Response(
                status: .ok,
                headers: [.contentType: json ? "application/json" : "application/x-protobuf"],
                body: .init(byteBuffer: ByteBuffer(string: json ? "{}" : ""))
            )
        case .failure(let error):
            return rejectOTLP(error, json: json, context: context)
        }
    }

    // MARK: POST /api/3.0/mlflow/traces

    /// Decodes a `StartTraceV3` body and adds its trace info.
    /// - Returns: the decoded record, the parsed `trace_info` object, and whether the trace's spans had already arrived.
    func ingestStartTraceV3(body: ByteBuffer) async -> Result<(info: TraceInfo, hadSpans: Bool), WireError> {
        do throws(WireError) {
            let decoded = try StartTraceV3Decoder.decode(Data(body.readableBytesView))
            let hadSpans = await assembler.add(info: decoded.info)
            counters.increment("trace_infos_received", "v3")
            return .success((decoded.info, hadSpans))
        } catch {
            return .failure(error)
        }
    }

    /// The proxy's own answer to `StartTraceV3`: the request's trace info echoed, with the artifact location
    /// the proxy serves, and `spansLocation=TRACKING_STORE` only when the spans already came over
    /// `/v1/traces` (otherwise the client uploads them as `traces.json`, which the proxy accepts).
    func answerStartTraceV3(_ request: inout Request, context: ProxyRequestContext) async -> Response {
        guard let body = try? await request.collectBody(upTo: maxBodyBytes) else {
            return rejectMLflow(WireError(.bodyTooLarge, "the body exceeds \(maxBodyBytes) bytes"), context: context)
        }
        let decoded: StartTraceV3Decoder.Decoded
        do {
            decoded = try StartTraceV3Decoder.decode(Data(body.readableBytesView))
        } catch {
            return rejectMLflow(error, context: context)
        }
        let hadSpans = await assembler.add(info: decoded.info)
        counters.increment("trace_infos_received", "v3")
        var traceInfo = decoded.traceInfoObject
        var tags = traceInfo["tags"] as? [String: Any] ?? [:]
        let experiment = decoded.info.experimentID ?? "0"
        tags["mlflow.artifactLocation"] = "mlflow-artifacts:/\(experiment)/traces/\(decoded.info.traceID)/artifacts"
        if hadSpans { tags["mlflow.trace.spansLocation"] = "TRACKING_STORE" }
        traceInfo["tags"] = tags
        return jsonResponse(["trace": ["trace_info": traceInfo]])
    }

    // MARK: PUT …/traces.json

    /// Decodes a `traces.json` artifact and adds its spans, after checking they belong to the trace the path names.
    func ingestTracesArtifact(body: ByteBuffer, headers: HTTPFields, experimentID: String?, traceID: String) async -> Result<Int, WireError> {
        do throws(WireError) {
            guard let otelTraceID = MLflowTraceID.otelTraceID(traceID) else {
                throw WireError(.unknownTrace, "unknown trace id \"\(traceID)\": expected tr- followed by 32 hex digits")
            }
            var batch = try TracesArtifactDecoder.decode(Data(body.readableBytesView), experimentID: experimentID)
            batch.resourceAttributes = ClientResource.attributes(userAgent: headers[.userAgent])
            let expected = Data(otelTraceID)
            if let stray = batch.spans.first(where: { $0.traceID != expected }) {
                throw WireError(.invalidID, "span \"\(stray.name)\" belongs to another trace than \(traceID)")
            }
            await assembler.add([batch])
            counters.increment("spans_received", "traces_json", by: batch.spans.count)
            return .success(batch.spans.count)
        } catch {
            return .failure(error)
        }
    }

    /// The proxy's own answer to the `traces.json` PUT: 200 with an empty body, as MLflow's artifact server.
    func answerTracesArtifact(_ request: inout Request, context: ProxyRequestContext, experimentID: String?, traceID: String) async -> Response {
        guard let body = try? await request.collectBody(upTo: maxBodyBytes) else {
            return rejectMLflow(WireError(.bodyTooLarge, "the body exceeds \(maxBodyBytes) bytes"), context: context)
        }
        switch await ingestTracesArtifact(body: body, headers: request.headers, experimentID: experimentID, traceID: traceID) {
        case .success: return Response(status: .ok)
        case .failure(let error): return rejectMLflow(error, context: context)
        }
    }

    /// Attachments without an upstream are accepted and discarded (counted, logged at debug); the
    /// `mlflow-attachment://` reference stays in the span attribute.
    func answerAttachment(_ request: Request, context: ProxyRequestContext, traceID: String, attachmentID: String) async -> Response {
        var bytes = 0
        do {
            for try await chunk in request.body { bytes += chunk.readableBytes }
        } catch {
            return rejectMLflow(WireError(.malformedBody, "the attachment body could not be read"), context: context)
        }
        counters.increment("attachments_discarded")
        context.logger.debug(
            "attachment accepted and discarded", metadata: ["trace_id": "\(traceID)", "attachment": "\(attachmentID)", "bytes": "\(bytes)"])
        return Response(status: .ok)
    }

    // MARK: Errors

    func rejectOTLP(_ error: WireError, json: Bool, context: ProxyRequestContext) -> Response {
        record(error, route: "/v1/traces", context: context)
        return ErrorResponses.otlp(status: .init(code: error.httpStatus), message: error.message, json: json)
    }

    func rejectMLflow(_ error: WireError, context: ProxyRequestContext) -> Response {
        record(error, route: "mlflow", context: context)
        return ErrorResponses.mlflow(status: .init(code: error.httpStatus), code: error.mlflowErrorCode, message: error.message)
    }

    func record(_ error: WireError, route: String, context: ProxyRequestContext) {
        counters.increment("rejected_requests", error.kind.rawValue)
        context.logger.warning(
            "rejected a trace upload", metadata: ["route": "\(route)", "reason": "\(error.kind.rawValue)", "error": "\(error.message)"])
    }

    func jsonResponse(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
