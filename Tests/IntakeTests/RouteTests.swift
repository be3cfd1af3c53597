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
