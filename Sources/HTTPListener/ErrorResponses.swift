import Foundation
import HTTPTypes
import Hummingbird
import JSONText
import NIOCore
import OTLPProto
import SwiftProtobuf

/// A whole answer held in memory: what the proxy answers itself, written by the listener's pipeline
/// (``response`` makes it a Hummingbird `Response` where the application answers).
public struct ListenerAnswer: Sendable {
    /// The status.
    public var status: HTTPResponse.Status
    /// The headers, without `Content-Length` (the writer sets it from the body).
    public var headers: HTTPFields
    /// The body.
    public var body: ByteBuffer

    /// An answer with these parts.
    public init(status: HTTPResponse.Status, headers: HTTPFields = [:], body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The answer as the application returns it.
    public var response: Response {
        Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }
}

/// Error answers in the formats clients understand.
public enum ErrorResponses {
    /// MLflow's JSON error body `{"error_code": "...", "message": "..."}`.
    ///
    /// `code` must be a name MLflow's `ErrorCode` enum knows: the Python client turns the name back into
    /// the enum and fails on unknown names.
    public static func mlflow(status: HTTPResponse.Status, code: String, message: String, headers: HTTPFields = [:]) -> Response {
        mlflowAnswer(status: status, code: code, message: message, headers: headers).response
    }

    /// ``mlflow(status:code:message:headers:)`` as a ``ListenerAnswer``.
    public static func mlflowAnswer(status: HTTPResponse.Status, code: String, message: String, headers: HTTPFields = [:]) -> ListenerAnswer {
        var fields = headers
        fields[.contentType] = "application/json"
        return ListenerAnswer(status: status, headers: fields, body: ByteBuffer(string: mlflowBody(code: code, message: message)))
    }

    /// The text of MLflow's JSON error body.
    public static func mlflowBody(code: String, message: String) -> String {
        JSONValue.object([("error_code", .string(code)), ("message", .string(message))]).text
    }

    /// OTLP/HTTP's error body: a `google.rpc.Status`, as protobuf or JSON to match the request.
    public static func otlp(status: HTTPResponse.Status, message: String, json: Bool) -> ListenerAnswer {
        var rpcStatus = Google_Rpc_Status()
        rpcStatus.code = grpcCode(for: status.code)
        rpcStatus.message = message
        let bytes: [UInt8]
        if json {
            bytes = Array((try? rpcStatus.jsonUTF8Data()) ?? Data("{}".utf8))
        } else {
            bytes = (try? rpcStatus.serializedBytes()) ?? []
        }
        return ListenerAnswer(
            status: status, headers: [.contentType: json ? "application/json" : "application/x-protobuf"], body: ByteBuffer(bytes: bytes))
    }

    /// The gRPC status code matching an HTTP status (INVALID_ARGUMENT for 400, and so on).
    public static func grpcCode(for httpStatus: Int) -> Int32 {
        switch httpStatus {
        case 400, 415: 3  // INVALID_ARGUMENT
        case 404: 5  // NOT_FOUND
        case 413: 8  // RESOURCE_EXHAUSTED
        case 429: 8
        case 501: 12  // UNIMPLEMENTED
        case 503: 14  // UNAVAILABLE
        case 504: 4  // DEADLINE_EXCEEDED
        default: 13  // INTERNAL
        }
    }
}
