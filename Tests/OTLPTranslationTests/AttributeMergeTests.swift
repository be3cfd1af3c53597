import MLflowWire
import OTLPProto
import SwiftProtobuf
import Testing

@testable import OTLPTranslation

/// The translator's attribute merge (trace-level data onto the root, resource settings onto the resource): with many
/// additions it finds keys through a table, and must set exactly what one scan per addition sets.
struct AttributeMergeTests {
    typealias KeyValue = Opentelemetry_Proto_Common_V1_KeyValue

    /// The merge as a scan per addition: the first attribute of the key replaced, otherwise appended.
    static func scanMerge(_ additions: [KeyValue], into attributes: inout [KeyValue]) {
        for addition in additions {
            if let index = attributes.firstIndex(where: { $0.key == addition.key }) {
                attributes[index] = addition
            } else {
                attributes.append(addition)
            }
        }
    }

    @Test func mergeSetsWhatAScanPerAdditionSets() {
        let keys = ["a", "b", "mlflow.trace_id", "mlflow.trace.tag.team", "session.id", "c", "d"]
        func attributes(_ count: Int, tag: String) -> [KeyValue] {
            (0..<count).map { index in
                .with {
                    $0.key = keys.randomElement() ?? ""
                    $0.value.stringValue = "\(tag)\(index)"
                }
            }
        }
        for _ in 0..<2000 {
            let original = attributes(Int.random(in: 0...10), tag: "o")
            let additions = attributes(Int.random(in: 0...8), tag: "n")  // repeated keys in both, on purpose
            var expected = original
            Self.scanMerge(additions, into: &expected)
            var merged = original
            OTLPTraceTranslator.merge(additions, into: &merged)
            #expect(merged == expected)
        }
    }
}

/// The trace-level attributes the root gets: fixed ones first, then tags and metadata each in key order (a stable
/// order, so the same trace always exports the same bytes).
struct TraceLevelAttributeTests {
    @Test func tagsAndMetadataComeInKeyOrderWithTheirValues() {
        var tags: [String: String] = [:]
        var metadata: [String: String] = [:]
        for index in 0..<40 {
            tags["tag.\((index * 7) % 40)"] = "t\(index)"
            metadata["meta.\((index * 11) % 40)"] = "m\(index)"
        }
        metadata["mlflow.trace.session"] = "s-1"
        let info = TraceInfo(traceID: "tr-1", state: "OK", metadata: metadata, tags: tags)
        let attributes = OTLPTraceTranslator.traceLevelAttributes(from: info)
        let keys = attributes.map(\.key)
        let tagKeys = keys.filter { $0.hasPrefix("mlflow.trace.tag.") }
        let metadataKeys = keys.filter { $0.hasPrefix("mlflow.trace.metadata.") }
        #expect(tagKeys == tags.keys.sorted().map { "mlflow.trace.tag." + $0 })
        #expect(metadataKeys == metadata.keys.sorted().map { "mlflow.trace.metadata." + $0 })
        #expect(keys == Array(keys.prefix(keys.count - tagKeys.count - metadataKeys.count)) + tagKeys + metadataKeys)
        for attribute in attributes where attribute.key.hasPrefix("mlflow.trace.tag.") {
            #expect(attribute.value.stringValue == tags[String(attribute.key.dropFirst("mlflow.trace.tag.".count))])
        }
        for attribute in attributes where attribute.key.hasPrefix("mlflow.trace.metadata.") {
            #expect(attribute.value.stringValue == metadata[String(attribute.key.dropFirst("mlflow.trace.metadata.".count))])
        }
    }
}
