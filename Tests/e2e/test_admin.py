"""The admin listener: /healthz, /readyz, Prometheus /metrics checked against the traffic sent, the /status
page opened in headless Chromium, and JSON logs."""

import http.client
import json
import shutil
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from captures import exchanges, is_trace_upload, replay, sent_spans
from conftest import free_port, wait_for
from upstream_stubs import HTTPStub

UPLOADS = [e for e in exchanges("3.17.2/01_sync") if is_trace_upload(e)]
SENT = sent_spans(UPLOADS)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(proxy):
    status, text = get(proxy.admin_url + "/metrics")
    assert status == 200
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            result[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return result


def value(all_samples, name, **labels):
    return all_samples.get((name, tuple(sorted(labels.items()))), 0)


def test_health_and_readiness(mlflow_server, start_proxy):
    proxy = start_proxy(["--upstream", mlflow_server.url])
    assert get(proxy.admin_url + "/healthz") == (200, "ok\n")
    status, body = get(proxy.admin_url + "/readyz")
    assert status == 200 and json.loads(body)["checks"]["upstream"]["ok"] is True
    down = start_proxy(["--upstream", f"http://127.0.0.1:{free_port()}"])
    status, body = get(down.admin_url + "/readyz")
    assert status == 503
    assert json.loads(body)["checks"]["upstream"]["ok"] is False
    assert get(down.admin_url + "/healthz")[0] == 200  # alive, just not ready


def test_prometheus_metrics_count_the_traffic(receiver, start_proxy):
    proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    replay(proxy.port, UPLOADS)
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    connection.request("POST", "/v1/traces", body=b"\xff\xff", headers={"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0"})
    assert connection.getresponse().status == 400
    wait_for(lambda: value(samples(proxy), "mlflow_otel_proxy_spans_exported_total", destination="otlp") == len(SENT), message="exported counter")
    found = samples(proxy)
    posts = sum(1 for e in UPLOADS if e["path"] == "/v1/traces")
    assert value(found, "mlflow_otel_proxy_requests_total", route="otlp_traces", status="2xx") == posts
    assert value(found, "mlflow_otel_proxy_requests_total", route="otlp_traces", status="4xx") == 1
    assert value(found, "mlflow_otel_proxy_requests_total", route="start_trace_v3", status="2xx") == len(UPLOADS) - posts
    assert value(found, "mlflow_otel_proxy_spans_received_total", source="otlp") == len(SENT)
    assert value(found, "mlflow_otel_proxy_rejected_requests_total", reason="malformed_body") == 1
    assert value(found, "mlflow_otel_proxy_traces_assembled_total", completion="complete") == 4
    assert value(found, "mlflow_otel_proxy_export_queue_spans", destination="otlp") == 0
    assert ("mlflow_otel_proxy_export_queue_bytes", (("destination", "otlp"),)) in found
    assert value(found, "mlflow_otel_proxy_export_duration_seconds_count", destination="otlp") >= 1
    assert ("mlflow_otel_proxy_traces_waiting", ()) in found
    assert "x-api-key" not in get(proxy.admin_url + "/metrics")[1]


def test_status_page_in_a_headless_browser(receiver, start_proxy, tmp_path):
    assert shutil.which("chromium"), "chromium is missing: .ci/run installs it (apt-get install chromium)"
    config = tmp_path / "status.yaml"
    config.write_text(json.dumps({"destinations": {
        "healthy-dest": {"traces_endpoint": receiver.url + "/v1/traces"},
        "dead-dest": {"traces_endpoint": f"http://127.0.0.1:{free_port()}/v1/traces", "headers": {"x-key": "s3cr3t-api-key"}}}}))
    proxy = start_proxy(["--config", str(config)])
    replay(proxy.port, UPLOADS)
    wait_for(lambda: len(receiver.all_spans()) >= len(SENT), message="spans at the healthy destination")
    wait_for(lambda: "connection" in get(proxy.admin_url + "/status")[1], timeout=30, message="the dead destination's error")
    screenshot = tmp_path / "status.png"
    chromium = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]
    subprocess.run(chromium + [f"--screenshot={screenshot}", proxy.admin_url + "/status"], check=True, capture_output=True, timeout=120)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = subprocess.run(chromium + ["--dump-dom", proxy.admin_url + "/status"], check=True, capture_output=True, text=True, timeout=120).stdout
    assert "healthy-dest" in dom and "dead-dest" in dom
    assert '<td class="healthy">healthy</td>' in dom
    assert '<td class="retrying">retrying</td>' in dom or '<td class="failing">failing</td>' in dom
    assert "opentelemetry-only" in dom
    assert "tr-cbb5f34da7c557e5d936b2e766a48e47" in dom and "agent_root" in dom  # recent traces, where delivered
    assert "s3cr3t-api-key" not in dom
    assert '<meta http-equiv="refresh"' in dom


def test_json_log_format(start_proxy, tmp_path):
    from conftest import Proxy, clean_environment

    log = tmp_path / "json.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen([Proxy.BINARY, "--listen", "127.0.0.1:0", "--admin-listen", "off", "--log-format", "json"],
                                   stdout=handle, stderr=subprocess.STDOUT, env=clean_environment(), cwd=tmp_path)
        wait_for(lambda: "listening" in log.read_text(), message="start-up")
        process.terminate()
        process.wait(timeout=30)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines and all({"timestamp", "level", "label", "message"} <= set(line) for line in lines)
    assert any(line["message"] == "listening" for line in lines)


# Span names an attacker who can reach /v1/traces chooses; each would run script if written into the page raw.
# The grapheme-cluster forms glue a Unicode prepend (U+0600) or combining mark (U+0301) to `<` or `>`, so a
# page escaped one Swift Character at a time would write them unescaped.
HOSTILE_NAMES = [
    "<script>document.body.setAttribute('data-injected','plain-script')</script>",
    "\u0600<img src=x onerror=\"document.body.setAttribute('data-injected','prepend')\">",
    "<\u0301img src=x onerror=\"document.body.setAttribute('data-injected','combining')\">",
    "x\" onmouseover=\"document.body.setAttribute('data-injected','attribute')\" y=\"",
    "'><svg onload=\"document.body.setAttribute('data-injected','quote')\">\u0301",
]
HOSTILE_ERROR_BODY = b"<img src=x onerror=\"document.body.setAttribute('data-injected','error-body')\"><b>bold</b>"


class HostileDestination:
    """A destination that answers every export with 400 and an HTML body (its answer is shown on /status)."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(400)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(HOSTILE_ERROR_BODY)))
                self.end_headers()
                self.wfile.write(HOSTILE_ERROR_BODY)

            def log_message(self, *args):
                pass

        self.stub = HTTPStub(Handler)
        self.url = self.stub.url

    def close(self):
        self.stub.close()


def hostile_upload():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    import os

    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add()
    for name in HOSTILE_NAMES:
        span = spans.spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name=name)
        span.start_time_unix_nano, span.end_time_unix_nano = 1_700_000_000_000_000_000, 1_700_000_001_000_000_000
    return request.SerializeToString()


def test_status_page_shows_hostile_names_and_error_bodies_as_text_and_runs_no_script(receiver, start_proxy, tmp_path):
    hostile = HostileDestination()
    try:
        config = tmp_path / "hostile.yaml"
        config.write_text(json.dumps({"destinations": {
            "collector": {"traces_endpoint": receiver.url + "/v1/traces"},
            "hostile": {"traces_endpoint": hostile.url + "/v1/traces"}}}))
        proxy = start_proxy(["--config", str(config), "--trace-info-wait", "0.2"])
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        connection.request("POST", "/v1/traces", body=hostile_upload(),
                           headers={"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0"})
        assert connection.getresponse().status == 200
        wait_for(lambda: len(receiver.all_spans()) >= len(HOSTILE_NAMES), message="the hostile spans at the collector")
        page = wait_for(lambda: (lambda text: text if "answered 400" in text else None)(get(proxy.admin_url + "/status")[1]),
                        message="the hostile destination's error on /status")
        # Escaped on the server, scalar by scalar: no hostile markup is written raw.
        for raw in ("<script", "<img", "<svg", "<\u0301img", "<b>", "onmouseover=\"", "\u0600<"):
            assert raw not in page, raw
        assert "&lt;script&gt;" in page and "\u0600&lt;img" in page and "&lt;\u0301img" in page and "x&quot; onmouseover" in page
        assert "&#39;&gt;&lt;svg" in page and "&lt;b&gt;bold&lt;/b&gt;" in page

        # Every admin answer carries the policy that forbids script, errors included.
        for path in ("/status", "/metrics", "/healthz", "/readyz", "/no-such-page"):
            try:
                response = urllib.request.urlopen(proxy.admin_url + path, timeout=10)
            except urllib.error.HTTPError as error:
                response = error
            assert response.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'", path
            assert response.headers["X-Content-Type-Options"] == "nosniff", path

        # In a real browser: the names and the error body are text, no element was injected, no script ran.
        assert shutil.which("chromium"), "chromium is missing: .ci/run installs it (apt-get install chromium)"
        chromium = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--virtual-time-budget=2000"]
        dom = subprocess.run(chromium + ["--dump-dom", proxy.admin_url + "/status"], check=True, capture_output=True, text=True,
                             timeout=120).stdout
        assert 'data-injected="' not in dom, "a script ran in the status page"
        for element in ("<script", "<img", "<svg", "<b>"):
            assert element not in dom, f"{element} became an element of the status page"
        assert "document.body.setAttribute('data-injected','prepend')" in dom  # shown, as text
        assert "&lt;b&gt;bold&lt;/b&gt;" in dom
    finally:
        hostile.close()


def test_readiness_needs_the_upstream_only_where_uploads_go_to_it(receiver, start_proxy):
    """OpenTelemetry-only: the proxy answers trace uploads itself, so a dead upstream leaves it ready (the check is
    still shown, as not required); dual mode needs the upstream. /readyz names no host or error text."""
    dead = f"http://127.0.0.1:{free_port()}"
    otel_only = start_proxy(["--upstream", dead], env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                                                      "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    status, body = get(otel_only.admin_url + "/readyz")
    assert status == 200, body
    assert json.loads(body)["checks"]["upstream"] == {"ok": False, "required": False, "detail": "GET /health failed"}
    dual = start_proxy(["--upstream", dead], env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                                                 "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT": "true"})
    status, body = get(dual.admin_url + "/readyz")
    assert status == 503 and json.loads(body)["checks"]["upstream"]["required"] is True
    assert "127.0.0.1" not in body and "refused" not in body.lower()


ADMIN_TOKEN = "admin-token-e2e-71d3"


def test_admin_tokens_guard_status_and_metrics_while_probes_stay_open(receiver, start_proxy, tmp_path):
    from conftest import KNOWN_SECRETS
    KNOWN_SECRETS.add(ADMIN_TOKEN)

    def fetch(proxy, path, token=None):
        request = urllib.request.Request(proxy.admin_url + path, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode()

    for proxy in (start_proxy(env={"MLFLOW_OTEL_PROXY_ADMIN_TOKENS": f"other,{ADMIN_TOKEN}"}),
                  start_proxy(["--config", str(write_admin_config(tmp_path))], env={"ADMIN_TOKEN": ADMIN_TOKEN})):
        for path in ("/status", "/metrics"):
            for token in (None, "wrong", ADMIN_TOKEN + "x"):
                status, headers, body = fetch(proxy, path, token)
                assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer") and headers["Connection"] == "close", (path, token)
                assert headers["Content-Security-Policy"] and "mlflow-otel-proxy" not in body.replace("mlflow-otel-proxy admin", "")
            status, _, body = fetch(proxy, path, ADMIN_TOKEN)
            assert status == 200 and body
        assert fetch(proxy, "/healthz")[0] == 200 and fetch(proxy, "/readyz")[0] == 200  # probes need no token
        assert ADMIN_TOKEN not in proxy.log()


def write_admin_config(tmp_path):
    path = tmp_path / "admin.yaml"
    path.write_text(json.dumps({"admin": {"tokens": ["${env:ADMIN_TOKEN}"]}}))
    return path
