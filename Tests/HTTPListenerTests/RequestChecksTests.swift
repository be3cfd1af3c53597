import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore
import OTLPProto
import SwiftProtobuf
import Testing

@testable import HTTPListener

/// What every request passes through on the listener: the inbound token, the loop guard, the body budget, and the
/// error answers in MLflow's and OTLP's formats.
@Suite struct RequestChecksTests {
    static func request(_ fields: HTTPFields, body: ByteBuffer = ByteBuffer()) -> Request {
        Request(
            head: HTTPRequest(method: .post, scheme: "http", authority: "proxy", path: "/v1/traces", headerFields: fields), body: .init(buffer: body))
    }

    @Test func theProxysTokenIsCheckedAndRemoved() throws {
        let authentication = InboundAuthentication(tokens: ["t0ken"])
        guard case .allowed(let bearer) = authentication.check(Self.request([.authorization: "Bearer t0ken"])) else {
            Issue.record("a valid bearer token was refused")
            return
        }
        #expect(bearer.headers[.authorization] == nil)
        // The MLflow server's own credentials stay when the token comes in its own header.
        guard
            case .allowed(let header) = authentication.check(
                Self.request([.authorization: "Basic dXNlcjpwdw==", InboundAuthentication.tokenHeader: "t0ken"]))
        else {
            Issue.record("a valid token header was refused")
            return
        }
        #expect(header.headers[.authorization] == "Basic dXNlcjpwdw==" && header.headers[InboundAuthentication.tokenHeader] == nil)
        for fields: HTTPFields in [
            [:], [.authorization: "Bearer wrong"], [InboundAuthentication.tokenHeader: "wrong", .authorization: "Bearer t0ken"],
        ] {
            guard case .denied(let response) = authentication.check(Self.request(fields)) else {
                Issue.record("accepted \(fields)")
                continue
            }
            #expect(response.status == .unauthorized && response.headers[.connection] == "close")
            #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
        }
    }

    @Test func aRequestThisProxyForwardedIsRecognised() {
        #expect(!LoopGuard.hasLooped(Self.request([:])))
        #expect(LoopGuard.hasLooped(Self.request([.via: "1.0 other, \(LoopGuard.viaEntry)"])))
        #expect(!LoopGuard.hasLooped(Self.request([.via: "1.1 another-proxy"])))
    }

    @Test func errorAnswersAreInTheClientsFormat() async throws {
        let mlflow = ErrorResponses.mlflow(status: .badRequest, code: "INVALID_PARAMETER_VALUE", message: "bad \"value\"")
        let mlflowBody = try await mlflow.collectBody()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(mlflowBody.readableBytesView)) as? [String: String])
        #expect(object == ["error_code": "INVALID_PARAMETER_VALUE", "message": "bad \"value\""])
        #expect(mlflow.headers[.contentType] == "application/json")

        let protobuf = ErrorResponses.otlp(status: .contentTooLarge, message: "too big", json: false)
        let status = try Google_Rpc_Status(serializedBytes: Array(protobuf.body.readableBytesView))
        #expect(status.code == 8 && status.message == "too big" && protobuf.headers[.contentType] == "application/x-protobuf")
        let json = ErrorResponses.otlp(status: .serviceUnavailable, message: "later", json: true)
        let decoded = try Google_Rpc_Status(jsonUTF8Data: Data(json.body.readableBytesView))
        #expect(decoded.code == 14 && decoded.message == "later")
    }

    @Test func theBodyBudgetRefusesWhatWouldNotFitAndGetsItsBytesBack() async throws {
        let budget = BodyMemoryBudget(capacity: 1000)
        var first = Self.request([.contentLength: "600"], body: ByteBuffer(repeating: 1, count: 600))
        let held = try await budget.collect(&first, limit: 10_000)
        #expect(budget.bytesHeld == 600)
        var second = Self.request([.contentLength: "600"], body: ByteBuffer(repeating: 2, count: 600))
        await #expect(throws: BodyMemoryBudget.Refusal.overBudget) { _ = try await budget.collect(&second, limit: 10_000) }
        var large = Self.request([.contentLength: "20000"], body: ByteBuffer(repeating: 3, count: 20_000))
        await #expect(throws: BodyMemoryBudget.Refusal.tooLarge) { _ = try await budget.collect(&large, limit: 10_000) }
        // Without a declared length, the limit is enforced as the body arrives.
        var undeclared = Self.request([:], body: ByteBuffer(repeating: 4, count: 300))
        await #expect(throws: BodyMemoryBudget.Refusal.tooLarge) { _ = try await budget.collect(&undeclared, limit: 200) }
        #expect(budget.bytesHeld == 600)
        let moved = held.transfer()  // a dual-mode copy keeps the bytes after the request
        held.release()
        #expect(budget.bytesHeld == 600)
        moved.release()
        moved.release()
        #expect(budget.bytesHeld == 0)
        // The collected body is there for the handler.
        #expect(try await first.body.collect(upTo: 1000).readableBytes == 600)
    }
}

/// Reads a response's body the way the server would write it.
struct CollectingWriter: ResponseBodyWriter {
    let collected: NIOLockedValueBox<ByteBuffer>
    mutating func write(_ buffer: ByteBuffer) async throws {
        collected.withLockedValue { collected in
            var buffer = buffer
            collected.writeBuffer(&buffer)
        }
    }
    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

extension Response {
    /// The whole body.
    func collectBody() async throws -> ByteBuffer {
        let collected = NIOLockedValueBox(ByteBuffer())
        try await body.write(CollectingWriter(collected: collected))
        return collected.withLockedValue { $0 }
    }
}
