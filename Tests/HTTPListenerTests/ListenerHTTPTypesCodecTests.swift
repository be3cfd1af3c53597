import HTTPTypes
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Testing

@testable import HTTPListener

/// The listener's head conversion against NIOHTTPTypesHTTP1's, which it replaces for origin-form targets.
@Suite struct ListenerHTTPTypesCodecTests {
    static let targets = [
        "/api/2.0/mlflow/experiments/get?experiment_id=1", "/", "/v1/traces", "/a//b?x=%2F&y=?#f", "/caf\u{E9}?q=\u{1F600}",
        "//host/path", "/a b", "http://example.com/api/2.0/mlflow/runs/get?run_id=1", "https://example.com", "http://h:8/?q",
        "*", "example.com:443", "", "api/x", "mailto:x", "/%zz",
    ]

    @Test func sameRequestAsTheHTTPTypesCodec() throws {
        let headerSets: [HTTPHeaders] = [
            [:], ["Host": "proxy:5000"], ["host": "a", "HOST": "b", "Cookie": "a=1; b=2", "X-Custom": "v", "Connection": "keep-alive"],
            ["Content-Length": "3", "Transfer-Encoding": "chunked", "User-Agent": "mlflow-python-client/3.17.2"],
            // What Python's clients send, spelt as HTTPTypes' constants and otherwise.
            [
                "X-First": "before host", "HoSt": "h:1", "User-Agent": "python-requests/2.32", "Accept-Encoding": "gzip, deflate",
                "Accept": "*/*", "Connection": "keep-alive", "Content-Type": "application/json", "Content-Length": "2",
                "Authorization": "Bearer t", "Host": "second",
            ],
            [
                "user-agent": "lower", "ACCEPT": "upper", "accept-Encoding": "mixed", "content-type": " padded\t", "Authorization": "a\u{0}b",
                "Bad Name": "dropped", "Zoë": "dropped", "X-Ctl": "a\u{7}b", "X-Empty": "",
            ],
        ]
        for target in Self.targets {
            for headers in headerSets {
                for method in [HTTPMethod.GET, .POST, .PATCH, .RAW(value: "PROPFIND")] {
                    for secure in [false, true] {
                        let head = HTTPRequestHead(version: .http1_1, method: method, uri: target, headers: headers)
                        let expected = try HTTPRequest(head, secure: secure, splitCookie: false)
                        let converted = try ListenerRequestConverter.request(head, secure: secure)
                        #expect(converted == expected, "\(method) \(target.debugDescription)")
                        #expect(converted.headerFields.map(\.name.rawName) == expected.headerFields.map(\.name.rawName))
                        #expect(converted.headerFields.map(\.value) == expected.headerFields.map(\.value))
                        #expect(converted.authority == expected.authority)
                    }
                }
            }
        }
    }
}
