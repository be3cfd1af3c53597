import Testing

@testable import Intake

struct RouteTests {
    @Test func traceRoutesAreRecognised() {
        #expect(MLflowRoute.classify(method: "POST", path: "/v1/traces") == .otlpTraces)
        #expect(MLflowRoute.classify(method: "POST", path: "/api/3.0/mlflow/traces") == .startTraceV3)
        #expect(
            MLflowRoute.classify(method: "PUT", path: "/api/2.0/mlflow-artifacts/artifacts/1/traces/tr-abc/artifacts/traces.json")
                == .tracesArtifact(experimentID: "1", traceID: "tr-abc")
        )
        #expect(
            MLflowRoute.classify(method: "PUT", path: "/api/2.0/mlflow-artifacts/artifacts/1/traces/tr-abc/artifacts/attachments/u-1")
                == .traceAttachment(experimentID: "1", traceID: "tr-abc", attachmentID: "u-1")
        )
        #expect(MLflowRoute.classify(method: "GET", path: "/version") == .version)
        #expect(MLflowRoute.classify(method: "POST", path: "/api/2.0/mlflow/traces") == .startTraceV2)
        #expect(MLflowRoute.classify(method: "PATCH", path: "/api/2.0/mlflow/traces/c4a0b072") == .endTraceV2(requestID: "c4a0b072"))
    }

    @Test func everythingElsePassesThrough() {
        #expect(MLflowRoute.classify(method: "GET", path: "/v1/traces") == .other)
        #expect(MLflowRoute.classify(method: "GET", path: "/api/2.0/mlflow-artifacts/artifacts/1/traces/tr-abc/artifacts/traces.json") == .other)
        #expect(MLflowRoute.classify(method: "PUT", path: "/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/model.pkl") == .other)
        #expect(MLflowRoute.classify(method: "PUT", path: "/api/2.0/mlflow-artifacts/artifacts/../traces/x/artifacts/traces.json") == .other)
        #expect(MLflowRoute.classify(method: "POST", path: "/api/2.0/mlflow/runs/create") == .other)
        // SetTraceTag, not EndTrace.
        #expect(MLflowRoute.classify(method: "PATCH", path: "/api/2.0/mlflow/traces/c4a0b072/tags") == .other)
        #expect(MLflowRoute.classify(method: "PATCH", path: "/api/2.0/mlflow/traces/") == .endTraceV2(requestID: ""))
    }
}

/// Standalone experiments are bounded in number and name length.
struct StandaloneExperimentsTests {
    @Test func experimentsAreBounded() {
        let experiments = StandaloneExperiments()
        guard case .success(let first) = experiments.create(name: "a") else {
            Issue.record("the first experiment must be created")
            return
        }
        #expect(experiments.find(id: first.id)?.name == "a")
        guard case .failure(.exists) = experiments.create(name: "a") else {
            Issue.record("a second experiment of the same name must be refused")
            return
        }
        guard case .failure(.nameTooLong) = experiments.create(name: String(repeating: "n", count: StandaloneExperiments.maxNameBytes + 1)) else {
            Issue.record("an overlong name must be refused")
            return
        }
        // `Default` and `a` exist: fill up to the limit, then one more is refused.
        for index in 0..<(StandaloneExperiments.maxExperiments - 2) { _ = experiments.create(name: "e\(index)") }
        guard case .failure(.tooMany) = experiments.create(name: "one-too-many") else {
            Issue.record("the experiment limit must hold")
            return
        }
    }
}

/// The byte comparison of routes against the `String` comparison it replaced.
struct RouteBytesTests {
    /// The classification as it was written before (a `switch` on `(method, path)` with `String` equality).
    static func reference(method: String, path: String) -> MLflowRoute {
        switch (method, path) {
        case ("POST", "/v1/traces"): return .otlpTraces
        case ("POST", "/api/3.0/mlflow/traces"): return .startTraceV3
        case ("POST", "/api/2.0/mlflow/traces"): return .startTraceV2
        case ("PATCH", _) where path.hasPrefix("/api/2.0/mlflow/traces/"):
            let requestID = path.dropFirst("/api/2.0/mlflow/traces/".count)
            guard !requestID.contains("/") else { return .other }
            return .endTraceV2(requestID: String(requestID))
        case ("GET", "/version"): return .version
        case ("GET", "/api/2.0/mlflow/experiments/get-by-name"): return .experimentGetByName
        case ("GET", "/api/2.0/mlflow/experiments/get"): return .experimentGet
        case ("POST", "/api/2.0/mlflow/experiments/create"): return .experimentCreate
        case ("PUT", _) where path.hasPrefix("/api/2.0/mlflow-artifacts/artifacts/"):
            return MLflowRoute.classifyArtifact(path.dropFirst("/api/2.0/mlflow-artifacts/artifacts/".count))
        default: return .other
        }
    }

    static let routes = [
        "/v1/traces", "/api/3.0/mlflow/traces", "/api/2.0/mlflow/traces", "/api/2.0/mlflow/traces/tr-1",
        "/api/2.0/mlflow/traces/tr-1/tags", "/version", "/api/2.0/mlflow/experiments/get-by-name",
        "/api/2.0/mlflow/experiments/get", "/api/2.0/mlflow/experiments/create",
        "/api/2.0/mlflow-artifacts/artifacts/1/traces/tr-abc/artifacts/traces.json",
        "/api/2.0/mlflow-artifacts/artifacts/1/traces/tr-abc/artifacts/attachments/u-1",
    ]

    /// Every route, and ASCII variants of it (a byte changed, dropped or added, the case of a letter changed, a
    /// prefix, the route twice), under every method: the same route as the reference.
    @Test func sameRoutesAsTheStringComparison() {
        var generator = SystemRandomNumberGenerator()
        let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "post"]
        for route in Self.routes {
            var variants = [route, route + "/", route + route, String(route.dropLast()), ""]
            for _ in 0..<200 {
                var bytes = Array(route.utf8)
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<4, using: &generator) {
                case 0: bytes[index] = UInt8.random(in: 0x21...0x7E, using: &generator)
                case 1: bytes.remove(at: index)
                case 2: bytes.insert(UInt8.random(in: 0x21...0x7E, using: &generator), at: index)
                default: bytes[index] ^= 0x20
                }
                variants.append(String(decoding: bytes, as: UTF8.self))
            }
            for path in variants {
                for method in methods {
                    #expect(MLflowRoute.classify(method: method, path: path) == Self.reference(method: method, path: path), "\(method) \(path)")
                    #expect(
                        MLflowRoute.classify(method: method, path: (path + "?q=1").prefix(path.count)) == Self.reference(method: method, path: path))
                }
            }
        }
    }
}
