import Testing

@testable import ProxyServer

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
