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

@Suite struct RequestPathPartTests {
    @Test(arguments: [
        ("/api/2.0/mlflow/experiments/get?experiment_id=1", "/api/2.0/mlflow/experiments/get"),
        ("/v1/traces", "/v1/traces"),
        ("/a#frag?x", "/a"),
        ("/a?x#y", "/a"),
        ("?only", ""),
        ("/caf\u{E9}/\u{1F600}?q=\u{E9}", "/caf\u{E9}/\u{1F600}"),
        ("", ""),
    ])
    func thePathEndsAtTheQueryOrFragment(target: String, path: String) {
        #expect(RequestPathNormalizer.pathPart(of: target) == path[...])
    }

    /// The byte scan against the character scan it replaced, on random targets of ASCII and non-ASCII characters
    /// (combining marks after `?` and `#` included).
    @Test func agreesWithACharacterScan() {
        var generator = SystemRandomNumberGenerator()
        let pieces = ["/", "a", "?", "#", "%3F", "\u{301}", "\u{E9}", "\u{1F600}", "=", "&", "."]
        for _ in 0..<2_000 {
            // `pieces` is not empty, so `randomElement` has one to give.
            let target = (0..<Int.random(in: 0...12, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
            let expected: Substring = target.unicodeScalars.firstIndex(where: { $0 == "?" || $0 == "#" }).map { target[..<$0] } ?? target[...]
            #expect(RequestPathNormalizer.pathPart(of: target) == expected, "\(target.debugDescription)")
        }
    }
}
