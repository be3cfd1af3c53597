"""Bad input gets a 4xx that says what was wrong, in OTLP's error form on /v1/traces and MLflow's JSON
elsewhere; the proxy logs it, counts it, and keeps serving."""

import gzip
import http.client
import json

import pytest
from google.rpc.status_pb2 import Status

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def post(proxy, path, body, headers, method="POST"):
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def rpc_status(data):
    status = Status()
    status.ParseFromString(data)
    return status


@pytest.fixture()
def proxy(start_proxy, receiver):
    return start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})


def test_malformed_otlp_protobuf(proxy):
    response, data = post(proxy, "/v1/traces", b"\xff\xff\xff\xff", {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0"})
    assert response.status == 400
    assert response.getheader("Content-Type") == "application/x-protobuf"
    status = rpc_status(data)
    assert status.code == 3 and "not a valid OTLP" in status.message


def test_malformed_otlp_json_gets_a_json_status(proxy):
    response, data = post(proxy, "/v1/traces", b'{"resourceSpans": [', {"Content-Type": "application/json", "x-mlflow-experiment-id": "0"})
    assert response.status == 400
    assert response.getheader("Content-Type") == "application/json"
    assert "OTLP/JSON" in json.loads(data)["message"]


def test_wrong_content_type(proxy):
    response, data = post(proxy, "/v1/traces", b"hello", {"Content-Type": "text/plain", "x-mlflow-experiment-id": "0"})
    assert response.status == 415
    assert "Content-Type" in rpc_status(data).message


def test_invalid_gzip(proxy):
    response, data = post(proxy, "/v1/traces", b"not gzip at all",
                          {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", "x-mlflow-experiment-id": "0"})
    assert response.status == 400
    assert "gzip" in rpc_status(data).message


def test_missing_experiment_header(proxy):
    response, data = post(proxy, "/v1/traces", ExportTraceServiceRequest().SerializeToString(), {"Content-Type": "application/x-protobuf"})
    assert response.status == 400
    assert "x-mlflow-experiment-id" in rpc_status(data).message


def test_bad_span_ids(proxy):
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = b"\x01" * 5
    span.span_id = b"\x02" * 8
    span.name = "short-trace-id"
    response, data = post(proxy, "/v1/traces", gzip.compress(request.SerializeToString()),
                          {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", "x-mlflow-experiment-id": "0"})
    assert response.status == 400
    assert "trace id of 5 bytes" in rpc_status(data).message


def test_bad_start_trace_v3(proxy):
    response, data = post(proxy, "/api/3.0/mlflow/traces", b"{not json", {"Content-Type": "application/json"})
    assert response.status == 400
    body = json.loads(data)
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and "JSON" in body["message"]
    response, data = post(proxy, "/api/3.0/mlflow/traces", b'{"trace": {}}', {"Content-Type": "application/json"})
    assert response.status == 400 and "trace_info" in json.loads(data)["message"]


def test_traces_json_for_an_unknown_trace_id(proxy):
    response, data = post(proxy, "/api/2.0/mlflow-artifacts/artifacts/0/traces/not-a-trace/artifacts/traces.json",
                          b'{"spans": []}', {"Content-Type": "text/plain"}, method="PUT")
    assert response.status == 404
    assert json.loads(data)["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_traces_json_with_spans_of_another_trace(proxy):
    path = "/api/2.0/mlflow-artifacts/artifacts/0/traces/tr-" + "ab" * 16 + "/artifacts/traces.json"
    body = json.dumps({"spans": [{"trace_id": "cd" * 16, "span_id": "01" * 8, "name": "stray", "start_time_unix_nano": 1,
                                  "end_time_unix_nano": 2, "attributes": {}}]}).encode()
    response, data = post(proxy, path, body, {"Content-Type": "text/plain"}, method="PUT")
    assert response.status == 400
    assert "another trace" in json.loads(data)["message"]


def test_the_proxy_keeps_serving_and_counts_rejections(proxy):
    for _ in range(20):
        post(proxy, "/v1/traces", b"\x00garbage", {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0"})
    response, data = post(proxy, "/v1/traces", ExportTraceServiceRequest().SerializeToString(),
                          {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0"})
    assert response.status == 200 and data == b""  # an empty request is a full success (OTLP spec)
    assert proxy.process.poll() is None
    assert proxy.stop() == 0
    log = proxy.log()
    assert log.count("rejected a trace upload") >= 20
    assert "rejected_requests{malformed_body}=20" in log
