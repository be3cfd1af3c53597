"""The compatibility matrix, end to end: MLflow clients 2.22.5, 3.1.4 and 3.17.2, async logging on and off,
in OpenTelemetry-only, dual and standalone modes, against a real MLflow 3.17.2 server; plus the 3.17.2 client
through the proxy to a real MLflow 2.22.5 server (the client's v2 fallback)."""

import json

import pytest

from conftest import MLflowServer, read_traces, run_workload, wait_for
from spans import attributes, kinds

CLIENTS = ["2.22.5", "3.1.4", "3.17.2"]


def async_env(client, enabled):
    # 2.x switches async logging with MLFLOW_ENABLE_ASYNC_LOGGING, 3.x with MLFLOW_ENABLE_ASYNC_TRACE_LOGGING.
    return {"MLFLOW_ENABLE_ASYNC_LOGGING": enabled, "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": enabled}


def traces_by_mlflow_id(receiver):
    """Received spans grouped by OTel trace id, keyed by the MLflow id the proxy put on each root span."""
    groups = {}
    for _, _, span in receiver.all_spans():
        groups.setdefault(span.trace_id, []).append(span)
    result = {}
    for spans in groups.values():
        roots = [span for span in spans if not span.parent_span_id]
        if roots:
            result[attributes(roots[0]).get("mlflow.trace_id")] = spans
    return result


def check_received(expected, receiver):
    total = sum(len(item["spans"]) for item in expected)
    wait_for(lambda: len(receiver.all_spans()) >= total and len(traces_by_mlflow_id(receiver)) >= len(expected), timeout=40,
             message=f"{total} spans at the receiver")
    assert len(receiver.all_spans()) == total, "a span was exported more than once"
    received = traces_by_mlflow_id(receiver)
    for item in expected:
        spans = received[item["trace_id"]]
        assert sorted(span.name for span in spans) == sorted(item["spans"])
        assert len({span.span_id for span in spans}) == len(spans)
        assert len({span.trace_id for span in spans}) == 1
        names = {span.span_id: span.name for span in spans}
        for span in spans:
            assert names.get(span.parent_span_id) == item["spans"][span.name], f"parent of {span.name}"
        root = attributes(next(span for span in spans if span.name == item["name"]))
        assert root["mlflow.trace.state"] == item["state"]
        if item["name"] == "agent_root":
            assert root["mlflow.trace.tag.team"] == "wire" and root["mlflow.trace.tag.env"] == "test"
            if item["metadata"]:
                assert root["session.id"] == "session-123" and root["user.id"] == "alice"
            agent = next(span for span in spans if span.name == "agent_root")
            assert kinds(agent)["int_attr"] == "int_value" and root["int_attr"] == 42
            assert root["mlflow.spanType"] == "CHAIN"
            assert json.loads(root["dict_attr"]) == {"a": 1, "b": [True, None]}
            retrieve = next(span for span in spans if span.name == "retrieve")
            event = retrieve.events[0]
            # Event times are nanoseconds within the span, whatever unit the client wrote.
            assert retrieve.start_time_unix_nano <= event.time_unix_nano <= retrieve.end_time_unix_nano


@pytest.mark.parametrize("mode", ["opentelemetry-only", "dual", "standalone"])
@pytest.mark.parametrize("async_logging", ["true", "false"])
@pytest.mark.parametrize("client", CLIENTS)
def test_matrix(client, async_logging, mode, mlflow_server, receiver, start_proxy):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "matrix"}
    args = []
    if mode != "standalone":
        args = ["--upstream", mlflow_server.url]
    if mode == "dual":
        env["MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT"] = "true"
    proxy = start_proxy(args, env=env)
    experiment = f"matrix-{client}-{async_logging}-{mode}"
    expected, _ = run_workload(proxy.url, client=client, WORKLOAD_EXPERIMENT=experiment, **async_env(client, async_logging))
    check_received(expected, receiver)
    if mode == "dual":
        direct, _ = run_workload(mlflow_server.url, client=client, WORKLOAD_EXPERIMENT=experiment + "-direct",
                                 **async_env(client, async_logging))
        through_proxy = wait_for(lambda: _complete(read_traces(mlflow_server.url, experiment), expected), message="traces in MLflow")
        assert through_proxy == _complete(read_traces(mlflow_server.url, experiment + "-direct"), direct)
    elif mode == "opentelemetry-only":
        assert read_traces(mlflow_server.url, experiment) == [], "trace uploads must not reach the upstream"


def _complete(traces, expected):
    if len(traces) < len(expected) or any(len(t["spans"]) != len(e["spans"]) for t, e in zip(
            sorted(traces, key=lambda t: len(t["spans"])), sorted(expected, key=lambda e: len(e["spans"])))):
        return None
    return traces


@pytest.fixture(scope="module")
def server_2_22_5(tmp_path_factory):
    server = MLflowServer(tmp_path_factory.mktemp("mlflow-2.22.5"), version="2.22.5")
    yield server
    server.stop()


def test_317_client_through_the_proxy_to_a_2_22_5_server(server_2_22_5, receiver, start_proxy):
    """An old upstream makes the 3.17 client skip /v1/traces and fall back to the v2 calls (mismatched ids)."""
    proxy = start_proxy(["--upstream", server_2_22_5.url],
                        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT": "true",
                             "OTEL_SERVICE_NAME": "matrix"})
    expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT="fallback", MLFLOW_ENABLE_ASYNC_TRACE_LOGGING="false")
    direct, _ = run_workload(server_2_22_5.url, WORKLOAD_EXPERIMENT="fallback-direct", MLFLOW_ENABLE_ASYNC_TRACE_LOGGING="false")
    total = sum(len(item["spans"]) for item in expected)
    wait_for(lambda: len(receiver.all_spans()) >= total, timeout=40, message="spans at the receiver")
    assert len(receiver.all_spans()) == total
    by_trace = {}
    for _, _, span in receiver.all_spans():
        by_trace.setdefault("tr-" + span.trace_id.hex(), []).append(span)
    for item in expected:
        spans = by_trace[item["trace_id"]]  # the client's own tr- id is the OTel trace id
        assert sorted(span.name for span in spans) == sorted(item["spans"])
        root = attributes(next(span for span in spans if span.name == item["name"]))
        # mlflow.trace_id is the id the 2.22.5 server stored the trace under (a v2 request id).
        assert len(root["mlflow.trace_id"]) == 32 and not root["mlflow.trace_id"].startswith("tr-")
        assert root["mlflow.trace.state"] == item["state"]
        if item["name"] == "agent_root":
            assert root["mlflow.trace.tag.team"] == "wire" and root["session.id"] == "session-123"
    via_proxy = read_traces(server_2_22_5.url, "fallback")  # the 2.22.5 client cannot read traces a 3.x client wrote
    assert via_proxy == read_traces(server_2_22_5.url, "fallback-direct")
    assert len(via_proxy) == len(expected)
