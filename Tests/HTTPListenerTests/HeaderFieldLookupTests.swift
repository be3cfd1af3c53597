import HTTPTypes
import Testing

@testable import HTTPListener

/// `value(of:)` against the subscript it stands for: the same answer for every shape of a header.
@Suite struct HeaderFieldLookupTests {
    @Test func aFieldReadByNameIsTheSubscriptsValue() throws {
        let custom = try #require(HTTPField.Name("X-MLflow-Experiment-Id"))
        let cases: [HTTPFields] = [
            [:],
            [.contentType: "application/x-protobuf"],
            [.contentType: "application/json", .userAgent: "mlflow-python-client/3.17.2"],
            HTTPFields([HTTPField(name: .via, value: "1.1 a"), HTTPField(name: .accept, value: "*/*"), HTTPField(name: .via, value: "1.1 b")]),
            HTTPFields([HTTPField(name: .cookie, value: "a=1"), HTTPField(name: .cookie, value: "b=2")]),
            HTTPFields([HTTPField(name: custom, value: "7"), HTTPField(name: .contentLength, value: "")]),
            HTTPFields([HTTPField(name: HTTPField.Name("x-mlflow-experiment-id")!, value: "lower")]),
        ]
        for fields in cases {
            for name in [HTTPField.Name.contentType, .userAgent, .via, .cookie, .contentLength, .accept, .connection, custom] {
                #expect(fields.value(of: name) == fields[name], "\(name) in \(fields)")
            }
        }
        // The cases above cover a repeated field (joined), a repeated cookie ("; "), an empty value and a name written
        // in another case; checked here so the comparison cannot pass by both sides being nil.
        #expect(cases[3].value(of: .via) == "1.1 a, 1.1 b")
        #expect(cases[4].value(of: .cookie) == "a=1; b=2")
        #expect(cases[5].value(of: .contentLength) == "")
        #expect(cases[6].value(of: custom) == "lower")
    }
}
