"""The proxy's OTLP output, posted to the MLflow server's own /v1/traces ingest and read back, equals the
original trace (as the client uploaded it to MLflow through the proxy in dual mode)."""

import json
import urllib.request

import pytest

from conftest import MLflowServer, run_workload, wait_for
from spans import json_loads_or_value

# Root-span attributes the proxy adds from the trace info (documented in the README), and the GenAI
# attributes the default `semconv: [mlflow, genai]` adds beside MLflow's own (which must survive unchanged).
ADDED = ("mlflow.trace.", "mlflow.trace_id", "session.id", "user.id", "gen_ai.")


@pytest.fixture(scope="module")
def second_server(tmp_path_factory):
    server = MLflowServer(tmp_path_factory.mktemp("mlflow-ingest"))
    yield server
    server.stop()


def normalized(trace):
    names = {span.span_id: span.name for span in trace.data.spans}
    result = {}
    for span in trace.data.spans:
        attrs = {key: json_loads_or_value(value) if isinstance(value, str) else value
                 for key, value in span.attributes.items() if not key.startswith(ADDED)}
        result[span.name] = {
            "parent": names.get(span.parent_id),
            "trace_id": span.trace_id,
            "span_id": span.span_id,
            "start": span.start_time_ns,
            "end": span.end_time_ns,
            "status": (span.status.status_code, span.status.description),
            "inputs": json_loads_or_value(span.inputs) if isinstance(span.inputs, str) else span.inputs,
            "outputs": json_loads_or_value(span.outputs) if isinstance(span.outputs, str) else span.outputs,
            "attributes": attrs,
            "events": [(event.name, event.timestamp, event.attributes) for event in span.events],
        }
    return result


def test_proxy_output_round_trips_through_mlflow_ingest(mlflow_server, second_server, receiver, start_proxy):
    proxy = start_proxy(["--upstream", mlflow_server.url],
                        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT": "true",
                             "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"})
    expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT="round-trip", MLFLOW_ENABLE_ASYNC_TRACE_LOGGING="false")
    total = sum(len(item["spans"]) for item in expected)
    wait_for(lambda: len(receiver.all_spans()) >= total, message="spans at the receiver")
    assert all(request.headers.get("Content-Encoding") == "gzip" for request in receiver.requests)

    experiment = second_server.client().create_experiment("ingested")
    for request in receiver.requests:
        post = urllib.request.Request(second_server.url + "/v1/traces", data=request.message.SerializeToString(), method="POST",
                                      headers={"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": experiment})
        with urllib.request.urlopen(post, timeout=30) as response:
            assert response.status == 200

    original_client, ingested_client = mlflow_server.client(), second_server.client()
    for item in expected:
        original = wait_for(lambda: _full_trace(original_client, item), message="original trace")
        ingested = wait_for(lambda: _full_trace(ingested_client, item), message="ingested trace")
        assert normalized(ingested) == normalized(original)


def _full_trace(client, item):
    try:
        trace = client.get_trace(item["trace_id"])
    except Exception:
        return None
    return trace if trace and len(trace.data.spans) == len(item["spans"]) else None
