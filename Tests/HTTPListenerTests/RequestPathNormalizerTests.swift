import Testing

@testable import HTTPListener

@Suite struct RequestPathNormalizerTests {
    @Test(arguments: [
        ("/api/2.0/mlflow/experiments/get?experiment_id=1", RequestPathNormalizer.Outcome.unchanged),
        ("/a/b/../c", .normalized("/a/c")),
        ("/a/./b/.", .normalized("/a/b/")),
        ("/a/%2E%2e/b?x=../y", .normalized("/b?x=../y")),
        ("/a/.%2e", .normalized("/")),
        ("/a/...", .unchanged),
        ("/a/%2e%2e%2e", .unchanged),
        ("/a/b%2F..%2Fc", .unchanged),
    ])
    func safeTargets(target: String, expected: RequestPathNormalizer.Outcome) {
        #expect(RequestPathNormalizer.normalize(target) == expected)
    }

    @Test(arguments: ["/..", "/a/../../b", "/%2e%2e/x", "*", "example.com:443", "/a%00b", "/a\\..\\b", "/a\u{1}b"])
    func unsafeTargets(target: String) {
        guard case .rejected = RequestPathNormalizer.normalize(target) else {
            Issue.record("\(target) was not rejected")
            return
        }
    }
}
