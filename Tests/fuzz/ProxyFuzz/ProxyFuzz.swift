import Foundation
import JSONText
import MLflowWire
import NIOCore
import OTLPProto
import OTLPTranslation
import ProxyConfig
import ProxySettings
import SharedSettings
import SpanShaping
import TraceAssembly

// libFuzzer entry points for every decoder of untrusted input. Built only with `-sanitize=fuzzer` by
// Tests/scripts/fuzz.sh, which selects the decoder with the first argument and passes the rest to libFuzzer:
//   ProxyFuzz otlp-protobuf CORPUS_DIR -runs=1000000
// A decoder may reject its input (that is its job); it must never crash, hang or leak.

/// The decoders, by the name given on the command line.
let targets: [String: @Sendable (UnsafeBufferPointer<UInt8>) -> Void] = [
    // OTLP/HTTP protobuf, into assembly and translation, as /v1/traces does.
    "otlp-protobuf": { bytes in assembleAndTranslate(try? OTLPRequestDecoder.decode(buffer(bytes), format: .protobuf, experimentID: "0")) },
    // OTLP/HTTP JSON, the same path.
    "otlp-json": { bytes in assembleAndTranslate(try? OTLPRequestDecoder.decode(buffer(bytes), format: .json, experimentID: "0")) },
    // gzip-encoded bodies: the decompression limit must hold for any input.
    "otlp-gzip": { bytes in _ = try? OTLPRequestDecoder.decompress(buffer(bytes), contentEncoding: "gzip", limit: 1 << 20) },
    // traces.json (the 2.x and 3.x shapes), into assembly and translation.
    "traces-json": { bytes in
        assembleAndTranslate((try? TracesArtifactDecoder.decode(Data(bytes), experimentID: "0")).map { [$0] })
    },
    // StartTraceV3's TraceInfo JSON: the one-pass reading and the tree reading must agree (the same record and
    // answer, or the same error).
    "trace-info-v3": { bytes in
        let body = [UInt8](bytes)
        let pass = Result { () throws(WireError) in try StartTraceV3Decoder.decode(body) }
        let tree = Result { () throws(WireError) in try StartTraceV3Decoder.decodeAsTree(body) }
        switch (pass, tree) {
        case (.success(let decoded), .success(let reference)):
            precondition(decoded.info == reference.info, "the readings disagree on the record")
            let answer = JSONValue(parsing: decoded.answer(hadSpans: true))
            let expected = StartTraceV3Decoder.answerAsTree(info: reference.info, traceInfoObject: reference.traceInfoObject, hadSpans: true)
            precondition(answer == expected, "the answers disagree")
        case (.failure(let error), .failure(let expected)):
            precondition(error == expected, "the readings disagree on the error")
        default:
            preconditionFailure("one reading failed, the other did not")
        }
    },
    // StartTrace / EndTrace (2.x) JSON.
    "trace-info-v2": { bytes in
        _ = try? TraceInfoV2Decoder.decodeStartTrace(Data(bytes))
        _ = try? TraceInfoV2Decoder.decodeEndTrace(Data(bytes), requestID: "tr-0")
        _ = TraceInfoV2Decoder.decodeTraceInfoAnswer(Data(bytes))
    },
    // A span's inputs and outputs (the JSON text clients put in mlflow.spanInputs/Outputs), through every
    // message format the GenAI and OpenInference mappings read, redaction and truncation.
    "genai-json": { bytes in
        let text = String(decoding: bytes, as: UTF8.self)
        for (type, format) in [
            ("CHAT_MODEL", "openai"), ("CHAT_MODEL", "anthropic"), ("LLM", "gemini"), ("LLM", "bedrock"), ("TOOL", "openai"), ("RETRIEVER", "openai"),
        ] {
            var span = Opentelemetry_Proto_Trace_V1_Span()
            span.traceID = Data(repeating: 1, count: 16)
            span.spanID = Data(repeating: 2, count: 8)
            for (key, value) in [
                ("mlflow.spanType", type), ("mlflow.message.format", format), ("mlflow.spanInputs", text), ("mlflow.spanOutputs", text),
            ] {
                var attribute = Opentelemetry_Proto_Common_V1_KeyValue()
                attribute.key = key
                attribute.value.stringValue = value
                span.attributes.append(attribute)
            }
            var item = Opentelemetry_Proto_Trace_V1_ResourceSpans()
            item.scopeSpans = [Opentelemetry_Proto_Trace_V1_ScopeSpans()]
            item.scopeSpans[0].spans = [span]
            shape([item])
        }
    },
    // What an MLflow server answers a backfill (search pages, BatchGetTraces), into assembly and translation.
    "mlflow-read": { bytes in
        let body = [UInt8](bytes)
        _ = try? StoredTraceDecoder.searchPage(body)
        assembleAndTranslate((try? StoredTraceDecoder.batchGet(body)).map { Array($0.values) })
    },
    // The YAML configuration file.
    "config-file": { bytes in
        _ = try? ProxyConfiguration.load(environment: ["FUZZ_SECRET": "x"], fileText: String(decoding: bytes, as: UTF8.self))
    },
]

func buffer(_ bytes: UnsafeBufferPointer<UInt8>) -> ByteBuffer { ByteBuffer(bytes: bytes) }

/// Runs decoded batches through assembly (all at once, then drained) and translation, as the proxy does.
func assembleAndTranslate(_ batches: [SpanBatch]?) {
    guard let batches else { return }
    var state = TraceAssemblyState(settings: AssemblySettings(maxTracesInFlight: 100, maxSpansPerTrace: 1000, maxBytesHeld: 1 << 22))
    let now = ContinuousClock.now
    var traces: [AssembledTrace] = []
    for batch in batches { traces += state.add(batch, now: now) }
    traces += state.drain(now: now)
    let settings = TranslationSettings(serviceName: "fuzz", scopeVersion: "0")
    for trace in traces { shape(OTLPTraceTranslator.translate(trace, settings: settings)) }
}

/// A destination policy that uses every shaping step (conventions, every kind of redaction, limits, splitting).
let fuzzShaper = DestinationShaper(
    policy: DataPolicy(
        conventions: [.mlflow, .genai, .openinference],
        redaction: RedactionSettings(
            dropAttributes: ["x.*"], maskJSONPaths: ["$.messages[*].content", "$..text", "$[-1]"],
            maskPatterns: ["preset:email", "preset:api_key", "preset:card_number"]),
        limits: SpanSizeLimits(maxAttributeValueLength: 200, maxAttributesPerSpan: 50)))

/// Shapes translated spans for a destination as an export pipeline does, then splits them to a small request size.
func shape(_ resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) {
    for item in fuzzShaper.shape(resourceSpans).spans { _ = DestinationShaper.split(item, budget: 4096) }
}

// Set once in `ProxyFuzz_main` before libFuzzer starts calling `testOneInput` (single-threaded), then only read.
nonisolated(unsafe) var selected: (@Sendable (UnsafeBufferPointer<UInt8>) -> Void)?

@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selected?(UnsafeBufferPointer(start: data, count: size))
    return 0
}

/// SwiftPM links an executable's entry point as `<module>_main`; libFuzzer's driver runs from here.
@_cdecl("ProxyFuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let arguments = CommandLine.arguments
    guard arguments.count >= 2, let target = targets[arguments[1]] else {
        let names = targets.keys.sorted().joined(separator: ", ")
        FileHandle.standardError.write(Data("usage: ProxyFuzz TARGET [libFuzzer options] [CORPUS...]\ntargets: \(names)\n".utf8))
        return 2
    }
    selected = target
    // libFuzzer sees the program name and the options after the target name.
    guard let argv else { return 2 }
    var shifted: [UnsafeMutablePointer<CChar>?] = [argv[0]] + (2..<Int(argc)).map { argv[$0] } + [nil]
    var count = argc - 1
    return shifted.withUnsafeMutableBufferPointer { pointers in
        var base = pointers.baseAddress
        return runDriver(&count, &base, testOneInput)
    }
}
