"""Bad input gets a 4xx that says what was wrong, in OTLP's error form on /v1/traces and MLflow's JSON
elsewhere; the proxy logs it, counts it, and keeps serving."""

import gzip
import http.client
import json

import pytest

from conftest import SANITIZER
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


# The malformed-input suite: every shape of hostile body gets a 4xx (never a 5xx, never a crash), the proxy
# keeps serving, and its memory stays bounded.

PB = {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0"}
JS = {"Content-Type": "application/json", "x-mlflow-experiment-id": "0"}


def captured_bodies():
    from captures import exchanges
    return [(e["headers"], e["body"]) for e in exchanges("3.17.2/01_sync") if e["path"] == "/v1/traces"]


def rss_kib(proxy):
    import re
    from pathlib import Path
    return int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{proxy.process.pid}/status").read_text()).group(1))


def test_truncated_bodies_never_get_a_5xx(proxy):
    for headers, body in captured_bodies():
        for cut in range(1, len(body), max(1, len(body) // 40)):
            response, _ = post(proxy, "/v1/traces", body[:cut], headers)
            assert response.status < 500, (cut, response.status)
    assert proxy.process.poll() is None


def test_a_body_over_the_limit_gets_413(start_proxy, receiver, tmp_path):
    config = tmp_path / "limits.yaml"
    config.write_text('limits: { max_trace_body_bytes: 1048576 }\n')
    proxy = start_proxy(["--config", str(config)], env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    response, data = post(proxy, "/v1/traces", b"\x0a" * (2 * 1024 * 1024), PB)
    assert response.status == 413 and rpc_status(data).code == 8
    response, data = post(proxy, "/api/3.0/mlflow/traces", b"{" * (2 * 1024 * 1024), {"Content-Type": "application/json"})
    assert response.status == 413 and json.loads(data)["error_code"] == "MAX_READ_SIZE_EXCEEDED"
    # Far more than the socket buffers hold: a client that writes its whole body before reading (as MLflow's does)
    # still gets the 413, not a reset it would retry (the proxy reads and discards the rest, as nginx lingers).
    response, data = post(proxy, "/v1/traces", b"\x0a" * (24 * 1024 * 1024), PB)
    assert response.status == 413 and rpc_status(data).code == 8


def test_deeply_nested_json_is_rejected_not_a_stack_overflow(proxy):
    depth = 100_000
    nested_value = '{"arrayValue":{"values":[' * depth + '{"stringValue":"x"}' + ']}}' * depth
    span = ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",'
            '"spanId":"eee19b7ec3c1b174","name":"n","startTimeUnixNano":"1","endTimeUnixNano":"2",'
            '"attributes":[{"key":"k","value":' + nested_value + '}]}]}]}]}')
    response, data = post(proxy, "/v1/traces", span.encode(), JS)
    assert 400 <= response.status < 500
    nested = b""
    for _ in range(5000):  # AnyValue{array_value: ArrayValue{values: [AnyValue{...}]}}, 5000 deep, as raw protobuf
        nested = _field(5, _field(1, nested))
    span = _field(1, bytes(16)) + _field(2, bytes(8)) + _field(5, b"n") + _field(9, _field(1, b"k") + _field(2, nested))
    nested_protobuf = _field(1, _field(2, _field(2, span)))
    response, _ = post(proxy, "/v1/traces", nested_protobuf, PB)
    assert 400 <= response.status < 500
    for body in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        response, _ = post(proxy, "/api/3.0/mlflow/traces", body, {"Content-Type": "application/json"})
        assert 400 <= response.status < 500
    assert proxy.process.poll() is None


def _field(number, payload):
    """A length-delimited protobuf field."""
    return bytes([(number << 3) | 2]) + _varint(len(payload)) + payload


def _varint(value):
    out = b""
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def test_huge_attribute_counts_and_invalid_utf8(proxy, receiver):
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes.fromhex("5b8efff798038103d269b633813fc60c"), bytes.fromhex("eee19b7ec3c1b174"), "wide"
    span.start_time_unix_nano, span.end_time_unix_nano = 1, 2
    span.attributes.extend(KeyValue(key=f"k{i}") for i in range(200_000))
    for attribute in span.attributes:
        attribute.value.int_value = 1
    response, _ = post(proxy, "/v1/traces", request.SerializeToString(), PB)
    assert response.status in (200, 400, 413)
    # Invalid UTF-8 in a protobuf string field and in JSON.
    bad = ExportTraceServiceRequest()
    bad_span = bad.resource_spans.add().scope_spans.add().spans.add()
    bad_span.trace_id, bad_span.span_id = bytes.fromhex("6b8efff798038103d269b633813fc60c"), bytes.fromhex("fee19b7ec3c1b174")
    bad_span.name = "NAME"
    raw = bad.SerializeToString().replace(b"NAME", b"\xff\xfe\xfd\xfc")
    response, data = post(proxy, "/v1/traces", raw, PB)
    assert response.status == 400 and rpc_status(data).code == 3
    response, _ = post(proxy, "/v1/traces", b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"\xff\xfe"}]}]}]}', JS)
    assert response.status == 400
    response, _ = post(proxy, "/api/3.0/mlflow/traces", b'{"trace":{"trace_info":{"trace_id":"\xc3\x28"}}}', {"Content-Type": "application/json"})
    assert 400 <= response.status < 500


@pytest.mark.serial
@pytest.mark.memory
def test_memory_stays_bounded_under_a_stream_of_hostile_bodies(proxy):
    import os
    baseline = rss_kib(proxy)
    random_body = os.urandom(256 * 1024)
    for i in range(200):
        post(proxy, "/v1/traces", random_body[: 1024 + (i * 997) % len(random_body)], PB)
        post(proxy, "/v1/traces", b'{"resourceSpans":[' * 2000, JS)
        post(proxy, "/api/3.0/mlflow/traces", b'{"trace": ' * 1000, {"Content-Type": "application/json"})
    response, _ = post(proxy, "/v1/traces", ExportTraceServiceRequest().SerializeToString(), PB)
    assert response.status == 200
    grown = rss_kib(proxy) - baseline
    if SANITIZER:
        return  # the memory bound is checked in the run with the release binary
    assert grown < 64 * 1024, f"RSS grew by {grown} KiB over 600 hostile requests"
