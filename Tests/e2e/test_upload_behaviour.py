"""Retries, reordering, late parts, attachments, overload and upstream authentication."""

import http.client
import json
import time

import pytest

from captures import exchanges, is_trace_upload, replay, sent_spans
from conftest import MLflowServer, run_workload, wait_for
from spans import attributes
from upstream_stubs import StubUpstream


def uploads(capture):
    return [e for e in exchanges(capture) if is_trace_upload(e)]


def roots(receiver):
    return {span.trace_id.hex(): attributes(span) for _, _, span in receiver.all_spans() if not span.parent_span_id}


def exported_once(receiver, expected):
    wait_for(lambda: len(receiver.all_spans()) >= len(expected), timeout=20, message="spans at the receiver")
    keys = [(span.trace_id.hex(), span.span_id.hex()) for _, _, span in receiver.all_spans()]
    assert len(keys) == len(set(keys)) == len(expected)
    assert set(keys) == set(expected)


def test_the_same_uploads_sent_twice_are_exported_once(receiver, start_proxy):
    calls = uploads("3.17.2/01_sync")
    proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    replay(proxy.port, calls, order=calls + calls)
    exported_once(receiver, sent_spans(calls))
    time.sleep(1.5)
    replay(proxy.port, calls)  # a retry long after the export
    time.sleep(1.5)
    assert len(receiver.all_spans()) == len(sent_spans(calls))
    assert all("mlflow.trace.tag.mlflow.traceName" in root for root in roots(receiver).values())


def test_patch_before_put(receiver, start_proxy):
    calls = uploads("2.22.5/01_sync_default")
    # The client's async mode can send EndTrace before the traces.json PUT.
    reordered = []
    for index in range(0, len(calls), 3):
        start, put, patch = calls[index:index + 3]
        assert put["method"] == "PUT" and patch["method"] == "PATCH"
        reordered += [start, patch, put]
    proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    replay(proxy.port, calls, order=reordered)
    exported_once(receiver, sent_spans(calls))
    for root in roots(receiver).values():
        assert root["mlflow.trace.state"] in ("OK", "ERROR")
        assert len(root["mlflow.trace_id"]) == 32  # the request id the proxy handed out
        assert "mlflow.trace.tag.mlflow.traceName" in root


@pytest.mark.parametrize("info_first", [True, False])
def test_start_trace_v3_before_and_after_the_spans(receiver, start_proxy, info_first):
    calls = uploads("3.17.2/01_sync")
    infos = [c for c in calls if c["path"] == "/api/3.0/mlflow/traces"]
    spans = [c for c in calls if c["path"] == "/v1/traces"]
    proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    replay(proxy.port, calls, order=(infos + spans) if info_first else (spans + infos))
    exported_once(receiver, sent_spans(calls))
    assert len(roots(receiver)) == 4
    assert all(root["mlflow.trace.state"] in ("OK", "ERROR") for root in roots(receiver).values())


@pytest.mark.serial
def test_spans_after_the_trace_info_wait_expired(receiver, start_proxy):
    calls = uploads("3.17.2/01_sync")
    infos = [c for c in calls if c["path"] == "/api/3.0/mlflow/traces"]
    spans = [c for c in calls if c["path"] == "/v1/traces"]
    proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}, args=["--trace-info-wait", "1"])
    replay(proxy.port, calls, order=spans[:2])  # part of the first trace
    time.sleep(2.5)  # its wait runs out: exported without trace info
    assert len(receiver.all_spans()) == 2
    replay(proxy.port, calls, order=spans + infos)  # the rest, the retried first part, and the infos
    exported_once(receiver, sent_spans(calls))
    proxy.stop()
    log = proxy.log()
    assert "traces_assembled{timed_out}" in log
    assert "trace info arrived after its spans were exported" in log


def test_attachments_are_stored_when_configured(receiver, start_proxy, tmp_path):
    calls = uploads("3.17.2/03_attachments_dup_names")
    attachment = next(c for c in calls if "/attachments/" in c["path"])
    store = tmp_path / "attachments"
    proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}, args=["--attachments-dir", str(store)])
    statuses = replay(proxy.port, calls, order=calls + [attachment])  # the attachment retried
    assert all(status == 200 for _, _, status in statuses)
    trace_id, attachment_id = attachment["path"].split("/traces/")[1].split("/artifacts/attachments/")
    stored = store / trace_id / attachment_id
    assert stored.read_bytes() == attachment["body"]
    assert [p.name for p in (store / trace_id).iterdir()] == [attachment_id]
    # The reference stays in the span attribute.
    exported_once(receiver, sent_spans(calls))
    values = [str(v) for _, _, span in receiver.all_spans() for v in attributes(span).values()]
    assert any(f"mlflow-attachment://{attachment_id}" in v for v in values)


def test_attachments_are_discarded_and_counted_by_default(receiver, start_proxy):
    calls = uploads("3.17.2/03_attachments_dup_names")
    proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    assert all(status == 200 for _, _, status in replay(proxy.port, calls))
    proxy.stop()
    assert "attachments_discarded{storage_off}=1" in proxy.log()


@pytest.mark.serial
def test_overload_answers_503_with_retry_after(start_proxy):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    # Mock destination: one that accepts connections and never answers keeps the export queue full.
    black_hole = StubUpstream("silent")
    try:
        proxy = start_proxy(["--shutdown-timeout", "2"],
                            env={"OTEL_EXPORTER_OTLP_ENDPOINT": black_hole.url, "OTEL_EXPORTER_OTLP_TIMEOUT": "60000",
                                 "OTEL_BSP_MAX_QUEUE_SIZE": "20", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "5",
                                 "MLFLOW_OTEL_PROXY_QUEUE_FULL_POLICY": "refuse"})
        answer = None
        for attempt in range(1, 200):
            request = ExportTraceServiceRequest()
            spans = request.resource_spans.add().scope_spans.add().spans
            for index in range(5):  # a complete trace of plain OTel spans: ready as soon as it arrives
                span = spans.add(trace_id=attempt.to_bytes(16, "big"), span_id=(index + 1).to_bytes(8, "big"), name=f"s{index}")
                if index:
                    span.parent_span_id = (1).to_bytes(8, "big")
            connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            connection.request("POST", "/v1/traces", body=request.SerializeToString(),
                               headers={"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0"})
            response = connection.getresponse()
            response.read()
            connection.close()
            assert response.status in (200, 503)
            if response.status == 503:
                answer = response
                break
        assert answer is not None, "the proxy never pushed back"
        assert answer.getheader("Retry-After") == "5"
        assert proxy.process.poll() is None
        # Shutdown stays bounded with a destination that never answers; what could not be sent is counted.
        started = time.monotonic()
        assert proxy.stop(timeout=20) == 0
        assert time.monotonic() - started < 10
        assert "spans_dropped" in proxy.log()
        assert "rejected_requests{overloaded}" in proxy.log()
    finally:
        black_hole.close()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    server = MLflowServer(tmp_path_factory.mktemp("mlflow-auth"), app_name="basic-auth",
                          env={"MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key", "MLFLOW_AUTH_ADMIN_PASSWORD": "e2e-Admin-pw-9x"})
    yield server
    server.stop()


@pytest.mark.xdist_group("basic-auth-server")  # auth_server is a module fixture: start it once
@pytest.mark.parametrize("mode", ["mlflow-only", "dual"])
def test_client_credentials_pass_through_to_a_basic_auth_server(auth_server, receiver, start_proxy, mode):
    env = {}
    if mode == "dual":
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT": "true"}
    proxy = start_proxy(["--upstream", auth_server.url], env=env)
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    connection.request("GET", "/api/2.0/mlflow/experiments/get?experiment_id=0")
    response = connection.getresponse()
    response.read()
    assert response.status == 401  # no credentials: the server's own answer
    expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT=f"auth-{mode}", MLFLOW_ENABLE_ASYNC_TRACE_LOGGING="false",
                               MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD="e2e-Admin-pw-9x")
    import mlflow
    import os
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = "admin", "e2e-Admin-pw-9x"
    try:
        client = mlflow.MlflowClient(tracking_uri=auth_server.url)
        for item in expected:
            trace = wait_for(lambda: client.get_trace(item["trace_id"]), message="trace in MLflow")
            assert sorted(span.name for span in trace.data.spans) == sorted(item["spans"])
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
    if mode == "dual":
        wait_for(lambda: len(receiver.all_spans()) >= sum(len(i["spans"]) for i in expected), message="spans at the receiver")
        for request in receiver.requests:
            assert "Authorization" not in request.headers  # client credentials never go to a destination
