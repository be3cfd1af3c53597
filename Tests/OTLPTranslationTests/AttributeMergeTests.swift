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
