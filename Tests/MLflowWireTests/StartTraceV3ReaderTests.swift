import Foundation
import JSONText
import TestSupport
import Testing

@testable import MLflowWire

/// `StartTraceV3` read in one pass over the bytes, answered with the client's text spliced, checked against the
/// reading through a JSON tree (``StartTraceV3Decoder/decodeAsTree(_:)``, the reading the proxy had before): the same
/// record or the same error for every captured body and for thousands of damaged and reshaped ones, and an answer
/// that reads as the same JSON as the tree's answer.
struct StartTraceV3ReaderTests {
    /// Every captured `StartTraceV3` body (3.1 and 3.17 clients).
    static func capturedBodies() throws -> [[UInt8]] {
        var bodies: [[UInt8]] = []
        for version in ["3.1.4", "3.17.2"] {
            let root = CaptureReplay.directory("\(version)/x").deletingLastPathComponent()
            for scenario in try FileManager.default.contentsOfDirectory(atPath: root.path).sorted() {
                guard let exchanges = try? CaptureReplay.exchanges("\(version)/\(scenario)") else { continue }
                bodies += exchanges.filter { $0.method == "POST" && $0.path == "/api/3.0/mlflow/traces" }.map { [UInt8]($0.body) }
            }
        }
        return bodies
    }

    /// Both readings of `body` agree: the same error, or the same record and answers that read as the same JSON.
    static func expectSameReading(_ body: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        let tree = Result { () throws(WireError) in try StartTraceV3Decoder.decodeAsTree(body) }
        let pass = Result { () throws(WireError) in try StartTraceV3Decoder.decode(body) }
        switch (tree, pass) {
        case (.failure(let expected), .failure(let error)):
            #expect(error == expected, "\(String(decoding: body, as: UTF8.self))", sourceLocation: sourceLocation)
        case (.success(let expected), .success(let decoded)):
            #expect(decoded.info == expected.info, sourceLocation: sourceLocation)
            for hadSpans in [false, true] {
                let answer = decoded.answer(hadSpans: hadSpans)
                let reference = StartTraceV3Decoder.answerAsTree(info: expected.info, traceInfoObject: expected.traceInfoObject, hadSpans: hadSpans)
                #expect(JSONValue(parsing: answer) == reference, "\(String(decoding: answer, as: UTF8.self))", sourceLocation: sourceLocation)
            }
        default:
            Issue.record("one reading failed, the other did not: \(String(decoding: body, as: UTF8.self))", sourceLocation: sourceLocation)
        }
    }

    /// The reader keeps the optional string members in a table of six places.
    @Test func theReaderHasAPlaceForEachStringMember() {
        #expect(StartTraceV3Reader.stringKeys.count == 6 && Set(StartTraceV3Reader.infoKeys.keys).count == StartTraceV3Reader.infoKeys.keys.count)
    }

    @Test func capturedBodiesReadAsTheTreeReadsThem() throws {
        let bodies = try Self.capturedBodies()
        #expect(bodies.count >= 5)  // nine today, over both client versions
        for body in bodies { Self.expectSameReading(body) }
        // The answer keeps the client's own text of the trace info, with only the tags added.
        let decoded = try StartTraceV3Decoder.decode(try #require(bodies.first))
        let answer = String(decoding: decoded.answer(hadSpans: true), as: UTF8.self)
        #expect(answer.hasPrefix(#"{"trace":{"trace_info":"#) && answer.contains(#""mlflow.trace.spansLocation":"TRACKING_STORE""#))
    }

    /// Members of every kind where the record expects strings and maps, repeated keys, tags to replace, null tags,
    /// no tags, escapes, and the shapes around `trace_info` that are not a trace.
    @Test func reshapedBodiesReadAsTheTreeReadsThem() {
        let values = [
            #""x""#, #""""#, "null", "1", "-2.5e3", "true", "[]", "[1, \"a\"]", "{}", #"{"a": "b"}"#, #"{"a": 1}"#, #""é \"q\" \u00e9 \ud83d\ude00""#,
            #"{"mlflow.artifactLocation": "old", "k": "v"}"#, #"{"mlflow.trace.spansLocation": "ARTIFACT_REPO", "mlflow.artifactLocation": "a"}"#,
            #"{"a": "1", "b": "x", "a": "2"}"#, #"{"mlflow.artifactLocation": "x", "mlflow.artifactLocation": "y"}"#,
            #"{"mlflow_experiment": {"experiment_id": "7"}}"#, #"{"mlflow_experiment": {"experiment_id": 7}}"#, #"{"mlflow_experiment": null}"#,
        ]
        let keys = [
            "trace_id", "client_request_id", "request_time", "execution_duration", "state", "trace_metadata", "tags", "request_preview",
            "response_preview", "trace_location", "other",
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            var members = [#""trace_id": "tr-0123456789abcdef0123456789abcdef""#]
            for _ in 0..<Int.random(in: 0...8, using: &generator) {
                let key = keys.randomElement(using: &generator) ?? "other"
                let value = key == "trace_id" && Bool.random(using: &generator) ? #""tr-1""# : values.randomElement(using: &generator) ?? "null"
                members.insert("\"\(key)\": \(value)", at: Int.random(in: 0...members.count, using: &generator))
            }
            if Int.random(in: 0..<10, using: &generator) == 0 { members.removeFirst() }
            let info = "{" + members.joined(separator: Bool.random(using: &generator) ? ", " : ",") + "}"
            let shapes = [
                #"{"trace": {"trace_info": \#(info)}}"#, #"{"a": 1, "trace": {"x": [], "trace_info": \#(info)}, "z": null}"#,
                #"{"trace": {"trace_info": \#(info), "trace_info": {}}}"#, #"{"trace": {"trace_info": \#(info)}, "trace": 1}"#,
                #"{"trace": 1, "trace": {"trace_info": \#(info)}}"#, #"{"trace": {"trace_info": []}}"#, "[\(info)]", info,
            ]
            Self.expectSameReading(Array((shapes.randomElement(using: &generator) ?? info).utf8))
        }
    }

    /// Damaged bodies: cut short, bytes changed, inserted or removed at random; deep nesting.
    @Test func damagedBodiesGetTheSameErrorOrRecord() throws {
        let bodies = try Self.capturedBodies()
        var generator = SystemRandomNumberGenerator()
        let interesting = Array(#"{}[]",:\ "0a-.tnu"#.utf8) + [0x00, 0x1F, 0x80, 0xC3, 0xE2, 0xFF]
        for _ in 0..<3000 {
            var body = try #require(bodies.randomElement(using: &generator))
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                guard !body.isEmpty else { break }
                let index = Int.random(in: 0..<body.count, using: &generator)
                switch Int.random(in: 0..<4, using: &generator) {
                case 0: body.removeSubrange(index...)
                case 1: body[index] = interesting.randomElement(using: &generator) ?? 0
                case 2: body.insert(interesting.randomElement(using: &generator) ?? 0, at: index)
                default: body.remove(at: index)
                }
            }
            Self.expectSameReading(body)
        }
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        Self.expectSameReading(Array(#"{"trace": {"trace_info": {"trace_id": "tr-1", "x": \#(deep)}}}"#.utf8))
        let limit = String(repeating: "[", count: JSONValue.maxDepth - 4) + String(repeating: "]", count: JSONValue.maxDepth - 4)
        Self.expectSameReading(Array(#"{"trace": {"trace_info": {"trace_id": "tr-1", "x": \#(limit)}}}"#.utf8))
        for body in ["", " ", "{", "{}", "[]", "null", #"{"trace": null}"#, #"{"trace": {}}"#, #"{"trace": {"trace_info": {}}}"#, "{} x"] {
            Self.expectSameReading(Array(body.utf8))
        }
    }
}
