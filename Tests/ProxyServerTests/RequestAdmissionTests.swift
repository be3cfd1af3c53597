import HTTPListener
import HTTPTypes
import Intake
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Testing

@testable import ProxyServer

/// The passthrough admits NIO's heads as the listener's decoder made them, the application HTTPTypes' requests made
/// of them: the same request is admitted, normalized, routed, stripped of the proxy's token or refused the same way.
@Suite struct RequestAdmissionTests {
    static let targets = [
        "/api/2.0/mlflow/experiments/get?experiment_id=1", "/ajax-api/2.0/mlflow/./experiments/get?experiment_id=1", "/v1/traces",
        "/api/2.0/mlflow-artifacts/artifacts/1/%2e%2e/2/model.pkl?path=../x", "/../etc/passwd", "/api/2.0/mlflow/traces/tr-1/info",
        "*", "http://evil.example:8080/api/2.0/mlflow/runs/get?run_id=1", "",
    ]
    static let headerSets: [[(String, String)]] = [
        [("Host", "proxy")],
        [("Host", "proxy"), ("Via", "1.0 other")],
        [("Host", "proxy"), ("Via", "1.0 other"), ("via", "1.1 a, \(LoopGuard.viaEntry)")],
        [("Host", "proxy"), ("Authorization", "Bearer t0ken")],
        [("Host", "proxy"), ("AUTHORIZATION", "bearer   t0ken  ")],
        [("Host", "proxy"), ("Authorization", "Bearer wrong")],
        [("Host", "proxy"), ("Authorization", "Basic dXNlcjpwdw=="), ("X-MLflow-OTel-Proxy-Token", "t0ken")],
        [("Host", "proxy"), ("x-mlflow-otel-proxy-token", "wrong"), ("Authorization", "Bearer t0ken")],
        [("Host", "proxy"), ("X-MLflow-OTel-Proxy-Token", "t0ken"), ("X-MLflow-OTel-Proxy-Token", "t0ken")],
        [("Host", "proxy"), ("Authorization", "Bearer t0ken"), ("Authorization", "Bearer t0ken")],
        // NIO's decoder leaves spaces and tabs at a value's end; HTTPTypes trims them.
        [("Host", "proxy"), ("X-MLflow-OTel-Proxy-Token", "t0ken \t"), ("Via", "1.0 a, \(LoopGuard.viaEntry) ")],
        [("Host", "proxy"), ("X-MLflow-OTel-Proxy-Token", "t0ken \t")],
        [("Authorization", "Bearer t0ken"), ("Content-Type", "application/json"), ("Host", "proxy")],
    ]

    /// The outcome as a comparable text, the admitted head as the application would get it.
    static func describe<Head>(_ outcome: RequestAdmission.Outcome<Head>, request: (Head) throws -> HTTPRequest) rethrows -> String {
        switch outcome {
        case .admitted(let head, let route, let normalizedFrom):
            let admitted = try request(head)
            return "admitted \(admitted.path ?? "-") \(admitted.headerFields) \(route) \(normalizedFrom ?? "-")"
        case .unsafePath(let reason): return "unsafe \(reason)"
        case .looped(let route): return "looped \(route)"
        case .unauthenticated(let route): return "unauthenticated \(route)"
        }
    }

    @Test func nioHeadsAndHTTPTypesRequestsAreAdmittedAlike() throws {
        var outcomes: Set<String> = []
        for authentication in [nil, InboundAuthentication(tokens: ["t0ken"])] {
            for target in Self.targets {
                for headers in Self.headerSets {
                    for method in [HTTPMethod.GET, .POST] {
                        let received = HTTPRequestHead(version: .http1_1, method: method, uri: target, headers: HTTPHeaders(headers))
                        let application = try HTTPRequest(received, secure: false, splitCookie: false)
                        let expected = Self.describe(RequestAdmission.admit(application, authentication: authentication)) { $0 }
                        guard let passthroughHead = received.inOriginForm else {
                            Issue.record("no origin form for \(target)")
                            continue
                        }
                        let actual = try Self.describe(RequestAdmission.admit(passthroughHead, authentication: authentication)) {
                            try HTTPRequest($0, secure: false, splitCookie: false)
                        }
                        #expect(actual == expected, "\(method) \(target) \(headers)")
                        outcomes.insert(String(expected.prefix { $0 != " " }))
                    }
                }
            }
        }
        // Every kind of outcome was compared.
        #expect(outcomes == ["admitted", "unsafe", "looped", "unauthenticated"])
    }

    @Test func anAbsoluteFormTargetBecomesThePathTheApplicationSees() throws {
        let head = HTTPRequestHead(
            version: .http1_1, method: .GET, uri: "http://evil.example:8080/api/2.0/mlflow/runs/get?run_id=1", headers: ["Host": "evil.example"])
        let origin = try #require(head.inOriginForm)
        #expect(origin.uri == "/api/2.0/mlflow/runs/get?run_id=1" && origin.headers == head.headers)
        let plain = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/a?b", headers: [:])
        #expect(plain.inOriginForm?.uri == "/a?b")
    }
}
