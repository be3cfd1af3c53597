"""The three export modes and standalone, end to end: real MLflow client → proxy → real MLflow server and
an OTLP receiver that decodes with the official protobuf definitions."""

import json
import urllib.request

import pytest

from conftest import run_workload, wait_for
from spans import attributes, by_trace, check_trace, kinds

SECRET = "s3cr3t-api-key"


def otel_env(receiver, **extra):
    return {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url + "/v1/traces",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"x-api-key={SECRET},x-tenant=team%20a",
            "OTEL_SERVICE_NAME": "checkout-agent", **extra}


def wait_for_spans(receiver, count, timeout=30):
    return wait_for(lambda: len(receiver.all_spans()) >= count and receiver.all_spans(), timeout=timeout,
                    message=f"{count} spans at the receiver")


def check_export(expected, receiver, experiment_id=None):
    total = sum(len(item["spans"]) for item in expected)
    wait_for_spans(receiver, total)
    traces = by_trace(receiver.all_spans())
    assert len(receiver.all_spans()) == total, "spans exported more than once"
    for item in expected:
        received = traces[item["trace_id"][3:]]
        spans = check_trace(item, received)
        root = spans[item["name"]]
        root_attributes = attributes(root)
        assert root_attributes["mlflow.trace_id"] == item["trace_id"]
        assert root_attributes["mlflow.trace.state"] == item["state"]
        assert root_attributes["mlflow.trace.tag.mlflow.traceName"] == item["name"]
        for resource, scope, _ in received:
            resource_attributes = attributes(resource)
            assert resource_attributes["service.name"] == "checkout-agent"
            assert resource_attributes["telemetry.sdk.name"] == "mlflow"
            if experiment_id:
                assert resource_attributes["mlflow.experiment_id"] == experiment_id
            assert scope.name == "mlflow-otel-proxy"
    agent = next(item for item in expected if item["name"] == "agent_root")
    spans = {span.name: span for _, _, span in traces[agent["trace_id"][3:]]}
    root = attributes(spans["agent_root"])
    assert root["mlflow.trace.tag.team"] == "wire"
    assert root["mlflow.trace.tag.env"] == "test"
    assert root["mlflow.trace.metadata.app.version"] == "1.2.3"
    assert root["session.id"] == "session-123"
    assert root["user.id"] == "alice"
    # Typed attributes: JSON-encoded strings decoded once; structured values one JSON string.
    assert kinds(spans["agent_root"])["int_attr"] == "int_value" and root["int_attr"] == 42
    assert root["float_attr"] == 3.14 and root["bool_attr"] is True and root["str_attr"] == "hello"
    assert root["mlflow.spanType"] == "CHAIN"
    assert json.loads(root["list_attr"]) == [1, 2, 3]
    assert json.loads(root["dict_attr"]) == {"a": 1, "b": [True, None]}
    assert json.loads(root["mlflow.spanInputs"]) == {"question": "What is MLflow?"}
    retrieve = spans["retrieve"]
    assert json.loads(attributes(retrieve)["mlflow.spanInputs"]) == {"query": "What is MLflow?"}
    assert retrieve.events[0].name == "cache_miss"
    assert attributes(retrieve.events[0]) == {"key": "mlflow", "n": 3, "ok": False}
    failing = spans["failing_tool"]
    assert failing.status.code == 2 and failing.status.message == "ValueError: tool exploded"
    assert failing.events[0].name == "exception"
    assert attributes(failing.events[0])["exception.type"] == "ValueError"
    assert not any(key.startswith("mlflow.trace.") for key in attributes(failing)), "trace-level data only on the root"
    chat = attributes(spans["chat_completion"])
    assert json.loads(chat["mlflow.chat.tokenUsage"]) == {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17}
    # The destination's headers reached it; the client's never do.
    for request in receiver.requests:
        assert request.headers["x-api-key"] == SECRET
        assert request.headers["x-tenant"] == "team a"
        assert request.headers["Content-Type"] == "application/x-protobuf"
        assert "X-MLflow-Client-Version" not in request.headers


def experiment_id(server, name):
    return server.client().get_experiment_by_name(name).experiment_id


@pytest.mark.parametrize("async_logging", ["true", "false"])
def test_opentelemetry_only_exports_and_never_reaches_upstream(mlflow_server, receiver, start_proxy, async_logging):
    proxy = start_proxy(["--upstream", mlflow_server.url], env=otel_env(receiver))
    name = f"otel-only-{async_logging}"
    expected, _ = run_workload(proxy.url, MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=async_logging, WORKLOAD_EXPERIMENT=name)
    # The experiment calls went through to the real server...
    exp_id = experiment_id(mlflow_server, name)
    check_export(expected, receiver, experiment_id=exp_id)
    # ...but no trace did.
    assert mlflow_server.client().search_traces(locations=[exp_id]) == []
    assert "mode=opentelemetry-only" in proxy.log()
    assert f"upstream={mlflow_server.url}" in proxy.log()


@pytest.mark.parametrize("async_logging", ["true", "false"])
def test_dual_export_matches_a_direct_upload(mlflow_server, receiver, start_proxy, async_logging):
    proxy = start_proxy(["--upstream", mlflow_server.url],
                        env=otel_env(receiver, MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT="true"))
    through_proxy, _ = run_workload(proxy.url, MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=async_logging,
                                    WORKLOAD_EXPERIMENT=f"dual-{async_logging}")
    direct, _ = run_workload(mlflow_server.url, MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=async_logging,
                             WORKLOAD_EXPERIMENT=f"direct-{async_logging}")
    check_export(through_proxy, receiver)
    client = mlflow_server.client()
    for proxied, original in zip(through_proxy, direct):
        got = wait_for(lambda: _trace_or_none(client, proxied["trace_id"]), message="trace in MLflow")
        want = wait_for(lambda: _trace_or_none(client, original["trace_id"]), message="direct trace in MLflow")
        assert _comparable(got) == _comparable(want)
        assert got.info.state == want.info.state
        assert {k: v for k, v in got.info.tags.items() if not k.startswith("mlflow.artifact")} == \
            {k: v for k, v in want.info.tags.items() if not k.startswith("mlflow.artifact")}
    assert "mode=dual" in proxy.log()


def _trace_or_none(client, trace_id):
    try:
        trace = client.get_trace(trace_id)
    except Exception:
        return None
    return trace if trace and trace.data.spans else None


def _comparable(trace):
    """A trace without its ids and timings: names, parents, types, inputs, outputs, attributes, events."""
    names = {span.span_id: span.name for span in trace.data.spans}
    result = []
    for span in trace.data.spans:
        attrs = {k: v for k, v in span.attributes.items() if k not in ("mlflow.traceRequestId",)}
        result.append((span.name, names.get(span.parent_id), span.span_type, json.dumps(span.inputs, sort_keys=True),
                       json.dumps(span.outputs, sort_keys=True), json.dumps(attrs, sort_keys=True, default=str),
                       span.status.status_code, [(e.name, json.dumps(e.attributes, sort_keys=True, default=str))
                                                for e in span.events if e.name != "exception"]))
    return sorted(result)


def test_mlflow_only_passes_traces_through(mlflow_server, receiver, start_proxy):
    proxy = start_proxy(["--upstream", mlflow_server.url])
    expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT="mlflow-only")
    client = mlflow_server.client()
    for item in expected:
        trace = wait_for(lambda: _trace_or_none(client, item["trace_id"]), message="trace in MLflow")
        assert sorted(span.name for span in trace.data.spans) == sorted(item["spans"])
    assert receiver.requests == []
    assert "mode=mlflow-only" in proxy.log()


def test_standalone_demo_writes_otlp_json_lines(tmp_path, start_proxy):
    proxy = start_proxy()
    expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT="demo")
    traces_file = tmp_path / "mlflow-otel-proxy-traces.jsonl"
    total = sum(len(item["spans"]) for item in expected)

    def spans_in_file():
        if not traces_file.exists():
            return None
        spans = [span for line in traces_file.read_text().splitlines() if line
                 for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]]
        return spans if len(spans) >= total else None

    spans = wait_for(spans_in_file, message="spans in the traces file")
    assert len(spans) == total
    for item in expected:
        assert {s["name"] for s in spans if s["traceId"] == item["trace_id"][3:]} == set(item["spans"])
    # One summary line per trace in the log.
    for item in expected:
        assert f"trace_id={item['trace_id']}" in proxy.log()
    assert "mode=standalone" in proxy.log()
    # /status shows each trace as delivered to the traces file, not pending.
    def status_page():
        return urllib.request.urlopen(proxy.admin_url + "/status", timeout=10).read().decode()

    status = wait_for(lambda: (lambda page: page if "pending" not in page else None)(status_page()), timeout=10,
                      message="every recent trace shown as delivered")
    assert expected[0]["trace_id"] in status and "file:./mlflow-otel-proxy-traces.jsonl" in status
    # Calls that need a real server get a clear 501 in MLflow's error format.
    request = urllib.request.Request(proxy.url + "/api/2.0/mlflow/runs/search", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("expected 501")
    except urllib.error.HTTPError as error:
        assert error.code == 501
        body = json.loads(error.read())
        assert body["error_code"] == "NOT_IMPLEMENTED" and "upstream" in body["message"]


def test_standalone_with_an_endpoint_exports(receiver, start_proxy):
    proxy = start_proxy(env=otel_env(receiver))
    expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT="standalone-export")
    check_export(expected, receiver)
    # The experiment id is stable: the same name gets the same id from a new proxy.
    with urllib.request.urlopen(proxy.url + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=standalone-export") as r:
        first = json.loads(r.read())["experiment"]
    assert first["lifecycle_stage"] == "active"
    again = start_proxy(env=otel_env(receiver))
    request = urllib.request.Request(again.url + "/api/2.0/mlflow/experiments/create", method="POST",
                                     data=json.dumps({"name": "standalone-export"}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as r:
        assert json.loads(r.read())["experiment_id"] == first["experiment_id"]
