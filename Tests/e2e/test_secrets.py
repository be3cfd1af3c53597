"""No secret reaches a log (at trace level, the most verbose), an error body, /metrics, /status or the
configuration dump, whatever happens: good and bad uploads, refused tokens, a destination that rejects its
credentials, passthrough with injected upstream credentials, a reload."""

import http.client
import json
import signal
import subprocess
import urllib.request

from captures import exchanges, is_trace_upload
from conftest import KNOWN_SECRETS, Proxy, wait_for
from otlp_receiver import OTLPReceiver

DESTINATION_KEY = "dest-api-key-91c3e0aa"
REJECTED_KEY = "rejected-api-key-2b7f44"
INBOUND_TOKEN = "inbound-token-c0ffee17"
UPSTREAM_TOKEN = "upstream-token-8d6a55"
SECRETS = [DESTINATION_KEY, REJECTED_KEY, INBOUND_TOKEN, UPSTREAM_TOKEN]
KNOWN_SECRETS.update(SECRETS)
UPLOADS = [e for e in exchanges("3.17.2/01_sync") if is_trace_upload(e)]


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, "\n".join(f"{k}: {v}" for k, v in response.getheaders()) + "\n" + data.decode("latin-1")


def test_no_secret_in_logs_answers_metrics_status_or_config_dump(mlflow_server, tmp_path, start_proxy):
    good, rejecting = OTLPReceiver(), OTLPReceiver()
    rejecting.status = 401
    (tmp_path / "token").write_text(INBOUND_TOKEN)
    config = tmp_path / "proxy.yaml"
    config.write_text(json.dumps({
        "upstream": {"url": mlflow_server.url, "headers": {"Authorization": f"Bearer {UPSTREAM_TOKEN}"}},
        "mode": "opentelemetry-only",
        "inbound_auth": {"tokens": [f"${{file:{tmp_path / 'token'}}}"]},
        "destinations": {"good": {"endpoint": good.url, "protocol": "http/protobuf", "headers": {"x-api-key": "${env:DEST_KEY}"}},
                         "rejecting": {"endpoint": rejecting.url, "protocol": "http/protobuf", "headers": {"x-api-key": REJECTED_KEY}}},
    }))
    try:
        proxy = start_proxy(["--config", str(config)], env={"DEST_KEY": DESTINATION_KEY}, log_level="trace")
        outputs = []
        # Uploads with the token: exported to both (one rejects the key: logged with its answer).
        for upload in UPLOADS:
            outputs.append(request(proxy.port, upload["method"], upload["path"], upload["body"],
                                   {**upload["headers"], "Authorization": f"Bearer {INBOUND_TOKEN}"})[1])
        wait_for(lambda: len(good.all_spans()) > 0 and len(rejecting.requests) > 0, timeout=20, message="exports")
        # Refused and malformed requests, passthrough with the injected upstream credentials.
        outputs.append(request(proxy.port, "GET", "/api/2.0/mlflow/experiments/get?experiment_id=0",
                               headers={"Authorization": f"Bearer {INBOUND_TOKEN}x"})[1])
        outputs.append(request(proxy.port, "POST", "/v1/traces", b"\xff\x00garbage",
                               {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0",
                                "X-MLflow-OTel-Proxy-Token": INBOUND_TOKEN})[1])
        outputs.append(request(proxy.port, "GET", "/api/2.0/mlflow/experiments/get?experiment_id=0",
                               headers={"Authorization": f"Bearer {INBOUND_TOKEN}"})[1])
        outputs.append(request(proxy.port, "GET", "/api/2.0/mlflow/experiments/get?experiment_id=0",
                               headers={"X-MLflow-OTel-Proxy-Token": INBOUND_TOKEN, "Authorization": "Basic eDp5"})[1])
        # A reload (same file) logs what it did.
        proxy.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in proxy.log(), timeout=10, message="the reload")
        for page in ("/metrics", "/status", "/readyz"):
            try:
                outputs.append(urllib.request.urlopen(proxy.admin_url + page, timeout=10).read().decode())
            except urllib.error.HTTPError as error:
                outputs.append(error.read().decode())
        dump = subprocess.run([Proxy.BINARY, "check-config", "--config", str(config)], env={"DEST_KEY": DESTINATION_KEY},
                              capture_output=True, text=True, timeout=30)
        assert dump.returncode == 0, dump.stderr
        outputs.append(dump.stdout + dump.stderr)
        assert proxy.stop() == 0
        outputs.append(proxy.log())
        assert "trace" in proxy.log() and "rejecting" in proxy.log()
        for output in outputs:
            for secret in SECRETS:
                assert secret not in output, f"{secret[:6]}… leaked into:\n{output[:2000]}"
    finally:
        good.close()
        rejecting.close()


URL_KEY = "url-embedded-key-5e1d"
URL_TOKEN = "url-query-token-77ab"
KNOWN_SECRETS.update([URL_KEY, URL_TOKEN])  # every proxy log of the suite is scanned for them too
URL_WITH_SECRETS = f"https://svc:{URL_KEY}@collector.example:4318/v1/traces?token={URL_TOKEN}"


def test_a_url_rejected_for_its_credentials_is_never_quoted_back(tmp_path, start_proxy):
    """At start-up (variable and file), in check-config, and on a rejected reload: the key and the reason are named,
    the URL is shown with its user information and query masked."""
    for env in ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": URL_WITH_SECRETS, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
                {"OTEL_EXPORTER_OTLP_ENDPOINT": URL_WITH_SECRETS, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}):
        proxy = start_proxy(env=env, expect_start=False)
        assert proxy.process.wait(timeout=30) != 0
        log = proxy.log()
        assert "https://***@collector.example:4318/v1/traces?***" in log or "https://***@collector.example:4318" in log, log[-2000:]
        assert "credentials" in log and "OTEL_EXPORTER_OTLP" in log

    config = tmp_path / "bad-url.yaml"
    config.write_text(json.dumps({"destinations": {"vendor": {"traces_endpoint": URL_WITH_SECRETS}}}))
    checked = subprocess.run([Proxy.BINARY, "check-config", "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert checked.returncode != 0
    output = checked.stdout + checked.stderr
    assert "destinations.vendor.traces_endpoint" in output and "https://***@collector.example:4318/v1/traces?***" in output
    assert URL_KEY not in output and URL_TOKEN not in output

    receiver = OTLPReceiver()
    try:
        config.write_text(json.dumps({"destinations": {"vendor": {"traces_endpoint": receiver.url + "/v1/traces"}}}))
        proxy = start_proxy(["--config", str(config)])
        config.write_text(json.dumps({"destinations": {"vendor": {"traces_endpoint": URL_WITH_SECRETS}}}))
        proxy.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reload rejected" in proxy.log(), timeout=10, message="the rejected reload")
        assert "https://***@collector.example:4318/v1/traces?***" in proxy.log()
        assert proxy.process.poll() is None
    finally:
        receiver.close()


ECHOED_KEY = "echoed-api-key-6d2b91"
GRAFANA_TOKEN = "glc-echoed-token-18e4"
KNOWN_SECRETS.update([ECHOED_KEY, GRAFANA_TOKEN])


def test_a_destination_that_echoes_the_key_in_its_error_does_not_put_it_in_the_log_or_on_status(tmp_path, start_proxy):
    """Vendors answer a rejected key with it ("invalid API key abc…"); that answer is logged and shown on /status.
    Mock destination (a real vendor cannot be reached): 403 with a body quoting every header it received."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import base64
    import threading

    class Echoing(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            auth = self.headers.get("Authorization", "")
            decoded = base64.b64decode(auth.split(" ", 1)[1]).decode() if auth.startswith("Basic ") else ""
            body = (f"Invalid API key {self.headers.get('dd-api-key')}; credentials {decoded}; header {auth}").encode()
            self.send_response(403)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echoing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        config = tmp_path / "echo.yaml"
        config.write_text(json.dumps({"destinations": {
            "dd": {"profile": "datadog", "api_key": ECHOED_KEY, "traces_endpoint": url + "/v1/traces"},
            "grafana": {"profile": "grafana", "instance_id": "123456", "token": GRAFANA_TOKEN, "traces_endpoint": url + "/otlp/v1/traces"}}}))
        proxy = start_proxy(["--config", str(config)], log_level="trace")
        for exchange in UPLOADS:
            request(proxy.port, exchange["method"], exchange["path"], exchange["body"], exchange["headers"])
        wait_for(lambda: proxy.log().count("answered 403") >= 2, timeout=30, message="both destinations' 403 in the log")
        status = urllib.request.urlopen(proxy.admin_url + "/status", timeout=10).read().decode()
        assert "Invalid API key ***" in proxy.log() and "answered 403" in status
        for secret in (ECHOED_KEY, GRAFANA_TOKEN):
            assert secret not in status and secret not in proxy.log()
    finally:
        server.shutdown()
        server.server_close()
