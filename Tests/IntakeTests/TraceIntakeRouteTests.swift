import Foundation
import HTTPListener
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import MLflowWire
import NIOConcurrencyHelpers
import NIOCore
import ProxyObservability
import TestSupport
import Testing
import TraceAssembly

@testable import Intake

/// The intake's routes in-process (Hummingbird's router test client, no sockets): the exchanges MLflow 3.17.2 sent
/// in a captured session, replayed byte for byte, get the answers the client expects, and the assembler gets the
/// trace whole; bad uploads get OTLP's or MLflow's error format with a counter.
@Suite(.timeLimit(.minutes(1))) struct TraceIntakeRouteTests {
    struct Harness {
        let intake: TraceIntake
        let released: NIOLockedValueBox<[AssembledTrace]>
        let counters: ProxyCounters
        let application: Application<RouterResponder<ProxyRequestContext>>
    }

    static func harness() throws -> Harness {
        let released = NIOLockedValueBox<[AssembledTrace]>([])
        let assembler = TraceAssembler(settings: AssemblySettings(), logger: Logger(label: "test")) { traces in
            released.withLockedValue { $0.append(contentsOf: traces) }
        }
        let counters = ProxyCounters()
        let attachments = try AttachmentStore(directory: nil, maxBytes: 0, counters: counters)
        let intake = TraceIntake(
            assembler: assembler, counters: counters, maxBodyBytes: 1024 * 1024, attachments: attachments, status: StatusBoard(destinations: []))
        let router = Router(context: ProxyRequestContext.self)
        router.post("/v1/traces") { request, context in
            let body = try await request.body.collect(upTo: 1024 * 1024)
            return await intake.answerOTLP(headers: request.headers, body: body, logger: context.logger).response
        }
        router.post("/api/3.0/mlflow/traces") { request, context in
            let body = try await request.body.collect(upTo: 1024 * 1024)
            return await intake.answerStartTraceV3(headers: request.headers, body: body, logger: context.logger).response
        }
        return Harness(intake: intake, released: released, counters: counters, application: Application(router: router))
    }

    static func fields(_ headers: [String: String]) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in headers where !["host", "content-length", "connection", "transfer-encoding"].contains(name) {
            if let name = HTTPField.Name(name) { fields[name] = value }
        }
        return fields
    }

    @Test func aCapturedSessionIsAnsweredAndAssembled() async throws {
        let harness = try Self.harness()
        let uploads = try CaptureReplay.exchanges("01_sync").filter {
            $0.method == "POST" && ($0.path == "/v1/traces" || $0.path == "/api/3.0/mlflow/traces")
        }
        try #require(uploads.count >= 2)
        let requests = uploads.map { (path: $0.path, headers: Self.fields($0.headers), body: $0.body) }
        try await harness.application.test(.router) { client in
            for upload in requests {
                let response = try await client.execute(
                    uri: upload.path, method: .post, headers: upload.headers, body: ByteBuffer(bytes: upload.body))
                #expect(response.status == .ok, "\(upload.path): \(String(buffer: response.body))")
                if upload.path == "/api/3.0/mlflow/traces" {
                    // MLflow's client reads the trace info back from the answer.
                    let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                    #expect((object?["trace"] as? [String: Any])?["trace_info"] != nil)
                }
            }
        }
        let traces = harness.released.withLockedValue { $0 }
        let spans = try uploads.filter { $0.path == "/v1/traces" }.map { upload in
            try OTLPRequestDecoder.decode(ByteBuffer(bytes: upload.body), format: .protobuf, experimentID: nil).reduce(0) { $0 + $1.spans.count }
        }.reduce(0, +)
        let starts = uploads.filter { $0.path == "/api/3.0/mlflow/traces" }.count
        #expect(traces.count == starts)
        #expect(traces.reduce(0) { $0 + $1.spans.count } == spans && spans > 0)
        #expect(traces.allSatisfy { $0.info != nil && $0.completion == .complete })
    }

    @Test func badUploadsGetTheRoutesErrorFormat() async throws {
        let harness = try Self.harness()
        try await harness.application.test(.router) { client in
            let garbage = try await client.execute(
                uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf", .init("x-mlflow-experiment-id")!: "1"],
                body: ByteBuffer(bytes: [0xff, 0xff, 0xff, 0x01]))
            #expect(garbage.status == .badRequest && garbage.headers[.contentType] == "application/x-protobuf")
            let json = try await client.execute(
                uri: "/v1/traces", method: .post, headers: [.contentType: "application/json", .init("x-mlflow-experiment-id")!: "1"],
                body: ByteBuffer(string: "{not json"))
            #expect(json.status == .badRequest && json.headers[.contentType] == "application/json")
            let info = try await client.execute(
                uri: "/api/3.0/mlflow/traces", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "[]"))
            #expect(info.status == .badRequest)
            let object = try JSONSerialization.jsonObject(with: Data(info.body.readableBytesView)) as? [String: Any]
            #expect(object?["error_code"] as? String == "INVALID_PARAMETER_VALUE" || object?["error_code"] as? String == "MALFORMED_REQUEST")
        }
        #expect(harness.counters.snapshot().filter { $0.key.metric == .rejectedRequests }.reduce(0) { $0 + $1.value } >= 3)
        #expect(harness.released.withLockedValue { $0.isEmpty })
    }
}
