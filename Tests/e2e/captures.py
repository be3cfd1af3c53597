"""Replays captured client exchanges (Tests/TestSupport/Fixtures/mlflow) against a running proxy, the way the
client would: v2 request ids the proxy hands out replace the captured ones in later paths."""

import base64
import http.client
import json
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

FIXTURES = Path(__file__).resolve().parents[1] / "TestSupport" / "Fixtures" / "mlflow"
FORWARDED_HEADERS = ("content-type", "content-encoding", "x-mlflow-experiment-id", "user-agent")


def capture_names():
    names = []
    for version in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        for entry in sorted(p for p in version.iterdir() if p.is_dir()):
            if entry.name in ("faults", "stub"):
                names += [f"{version.name}/{entry.name}/{s.name}" for s in sorted(entry.iterdir()) if s.is_dir()]
            elif "probes" not in entry.name:
                names.append(f"{version.name}/{entry.name}")
    return names


def exchanges(name):
    directory = FIXTURES / name
    result = []
    for path in sorted(directory.glob("[0-9]*.json")):
        record = json.loads(path.read_text())
        request = record["request"]
        body_path = path.with_suffix(".req.bin")
        response_path = path.with_suffix(".resp.bin")
        result.append({
            "method": request["method"], "path": request["path"],
            "headers": {k: v for k, v in request["headers"] if k.lower() in FORWARDED_HEADERS},
            "body": body_path.read_bytes() if body_path.exists() else b"",
            "response": response_path.read_bytes() if response_path.exists() else b"",
        })
    return result


def is_trace_upload(exchange):
    method, path = exchange["method"], exchange["path"]
    return ((method, path) in (("POST", "/v1/traces"), ("POST", "/api/3.0/mlflow/traces"), ("POST", "/api/2.0/mlflow/traces"))
            or (method == "PATCH" and path.startswith("/api/2.0/mlflow/traces/") and not path.endswith("/tags"))
            or (method == "PUT" and "/mlflow-artifacts/artifacts/" in path and "/traces/" in path))


def sent_spans(uploads):
    """(trace id hex, span id hex) → (name, parent hex, start, end) for every span the client uploaded."""
    spans = {}
    for exchange in uploads:
        if exchange["path"] == "/v1/traces" and exchange["headers"].get("Content-Type", exchange["headers"].get("content-type")) == "application/x-protobuf":
            message = ExportTraceServiceRequest()
            message.ParseFromString(exchange["body"])
            for resource_spans in message.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        spans[(span.trace_id.hex(), span.span_id.hex())] = (span.name, span.parent_span_id.hex(),
                                                                            span.start_time_unix_nano, span.end_time_unix_nano)
        elif exchange["path"].endswith("/traces.json"):
            for span in json.loads(exchange["body"])["spans"]:
                if "context" in span:  # 2.x layout, hex ids
                    key = (span["context"]["trace_id"], span["context"]["span_id"])
                    spans[key] = (span["name"], span.get("parent_id") or "", span["start_time"], span["end_time"])
                else:
                    def hexid(value):
                        return base64.b64decode(value).hex() if value else ""
                    key = (hexid(span["trace_id"]), hexid(span["span_id"]))
                    spans[key] = (span["name"], hexid(span.get("parent_span_id")), span["start_time_unix_nano"],
                                  span["end_time_unix_nano"])
    return spans


def replay(port, uploads, order=None, foreign_host=None):
    """Sends the uploads to the proxy, mapping captured v2 request ids to the ones the proxy answers with.
    `foreign_host`: send every request in absolute form naming that host, with that Host header (routing
    tests). Returns the statuses."""
    id_map = {}
    statuses = []
    for exchange in (order or uploads):
        path = exchange["path"]
        for old, new in id_map.items():
            path = path.replace(old, new)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = exchange["headers"]
        if foreign_host:
            headers = {**{k: v for k, v in headers.items() if k.lower() != "host"}, "Host": foreign_host}
            path = f"http://{foreign_host}{path}"
        connection.request(exchange["method"], path, body=exchange["body"], headers=headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        statuses.append((exchange["method"], exchange["path"], response.status))
        if exchange["method"] == "POST" and exchange["path"] == "/api/2.0/mlflow/traces" and response.status == 200:
            try:
                captured = json.loads(exchange["response"])["trace_info"]["request_id"]
                id_map[captured] = json.loads(data)["trace_info"]["request_id"]
            except (ValueError, KeyError, TypeError):
                pass  # the captured server failed this call (fault runs): the client never used an id
    return statuses
