import Foundation
import MLflowWire
import NIOCore
import TraceAssembly

/// One captured HTTP exchange from ../shared/fixtures/mlflow (copied under Fixtures/).
public struct CapturedExchange {
    public var sequence: Int
    public var method: String
    public var path: String
    public var headers: [String: String]
    public var body: Data
    /// The capture's own decoding of the body (protobuf decoded with hex ids), for independent expectations.
    public var decodedBody: Any?
    /// The exact response body, when the capture kept it.
    public var responseBody: Data?

    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// Loads captures and replays them through the proxy's decoders and assembler.
public enum CaptureReplay {
    /// A capture folder: `name` is `<client version>/<scenario>`, or a 3.17.2 scenario alone.
    public static func directory(_ name: String) -> URL {
        let relative = name.contains("/") ? name : "3.17.2/\(name)"
        return Bundle.module.resourceURL!.appendingPathComponent("Fixtures/mlflow/\(relative)")
    }

    /// The exchanges of a capture, in the order the server saw them.
    public static func exchanges(_ name: String) throws -> [CapturedExchange] {
        let dir = directory(name)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") && $0.first?.isNumber == true }
            .sorted()
        return try files.map { file in
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent(file))) as! [String: Any]
            let request = object["request"] as! [String: Any]
            var headers: [String: String] = [:]
            for pair in request["headers"] as! [[String]] { headers[pair[0].lowercased()] = pair[1] }
            let bin = dir.appendingPathComponent(String(file.dropLast(5)) + ".req.bin")
            let body = (try? Data(contentsOf: bin)) ?? Data()
            let responseBin = dir.appendingPathComponent(String(file.dropLast(5)) + ".resp.bin")
            return CapturedExchange(
                sequence: object["seq"] as! Int, method: request["method"] as! String, path: request["path"] as! String,
                headers: headers, body: body, decodedBody: request["body"], responseBody: try? Data(contentsOf: responseBin)
            )
        }
    }

    /// A trace upload decoded as the proxy decodes it.
    public enum Upload {
        case spans([SpanBatch])
        case info(TraceInfo)
    }

    /// Decodes every trace upload of a capture (OTLP, StartTraceV3, traces.json), skipping other calls.
    public static func uploads(_ exchanges: [CapturedExchange]) throws -> [Upload] {
        var uploads: [Upload] = []
        for exchange in exchanges {
            switch (exchange.method, exchange.path) {
            case ("POST", "/v1/traces"):
                let format = try OTLPRequestDecoder.bodyFormat(contentType: exchange.header("content-type"))
                uploads.append(
                    .spans(
                        try OTLPRequestDecoder.decode(
                            ByteBuffer(bytes: exchange.body), format: format, experimentID: exchange.header("x-mlflow-experiment-id")))
                )
            case ("POST", "/api/3.0/mlflow/traces"):
                uploads.append(.info(try StartTraceV3Decoder.decode(exchange.body).info))
            case ("PUT", let path) where path.hasSuffix("/traces.json"):
                var batch = try TracesArtifactDecoder.decode(exchange.body, experimentID: "1")
                batch.mlflowTraceID = path.split(separator: "/").dropLast(2).last.map(String.init)
                uploads.append(.spans([batch]))
            case ("POST", "/api/2.0/mlflow/traces"):
                // The request id is the server's: read it from the captured answer.
                guard let answer = exchange.responseBody, let requestID = TraceInfoV2Decoder.decodeTraceInfoAnswer(answer)?.requestID else {
                    continue
                }
                uploads.append(.info(try TraceInfoV2Decoder.decodeStartTrace(exchange.body).traceInfo(requestID: requestID)))
            case ("PATCH", let path) where path.hasPrefix("/api/2.0/mlflow/traces/") && !path.hasSuffix("/tags"):
                let requestID = String(path.split(separator: "/").last!)
                uploads.append(.info(try TraceInfoV2Decoder.decodeEndTrace(exchange.body, requestID: requestID)))
            default:
                continue
            }
        }
        return uploads
    }

    /// Feeds uploads to a fresh assembler state and returns everything it released (draining at the end).
    public static func assemble(_ uploads: [Upload], settings: AssemblySettings = AssemblySettings()) -> (
        traces: [AssembledTrace], state: TraceAssemblyState
    ) {
        var state = TraceAssemblyState(settings: settings)
        let now = ContinuousClock.now
        var traces: [AssembledTrace] = []
        for upload in uploads {
            switch upload {
            case .spans(let batches): for batch in batches { traces += state.add(batch, now: now) }
            case .info(let info): traces += state.add(info: info, now: now)
            }
        }
        traces += state.drain(now: now)
        return (traces, state)
    }
}
