"""Inbound authentication: applications must present a proxy token; it is stripped before anything goes
upstream or to a destination, and coexists with MLflow's own credentials."""

import http.client
import json

from conftest import KNOWN_SECRETS, run_workload, wait_for
from upstream_stubs import StubUpstream

TOKEN = "proxy-token-7d1e5a"
KNOWN_SECRETS.add(TOKEN)


def call(port, path, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    return response, response.read()


def test_clients_need_the_token_and_it_never_reaches_a_destination(receiver, start_proxy):
    proxy = start_proxy(env={"MLFLOW_OTEL_PROXY_INBOUND_TOKENS": f"other-token,{TOKEN}", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    response, body = call(proxy.port, "/api/2.0/mlflow/experiments/get?experiment_id=0")
    assert response.status == 401 and response.getheader("WWW-Authenticate", "").startswith("Bearer")
    assert json.loads(body)["error_code"] == "UNAUTHENTICATED"
    response, _ = call(proxy.port, "/version", {"Authorization": "Bearer wrong"})
    assert response.status == 401
    # The real MLflow client sends MLFLOW_TRACKING_TOKEN as Authorization: Bearer on every call.
    expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT="auth", MLFLOW_TRACKING_TOKEN=TOKEN, MLFLOW_ENABLE_ASYNC_TRACE_LOGGING="false")
    total = sum(len(item["spans"]) for item in expected)
    wait_for(lambda: len(receiver.all_spans()) >= total, message="spans at the receiver")
    for request in receiver.requests:
        assert "Authorization" not in request.headers
    proxy.stop()
    assert "rejected_requests{unauthenticated}=2" in proxy.log()


def test_token_coexists_with_mlflow_credentials_and_is_stripped_upstream(start_proxy):
    # Mock upstream: it echoes the headers it received, which a real MLflow server does not show.
    echo = StubUpstream("echo")
    try:
        proxy = start_proxy(["--upstream", echo.url], env={"MLFLOW_OTEL_PROXY_INBOUND_TOKENS": TOKEN})
        # MLflow's own basic-auth credentials in Authorization, the proxy token in its own header.
        response, body = call(proxy.port, "/api/2.0/mlflow/experiments/get?experiment_id=0",
                              {"Authorization": "Basic dXNlcjpwdw==", "X-MLflow-OTel-Proxy-Token": TOKEN})
        assert response.status == 200
        headers = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert headers["authorization"] == "Basic dXNlcjpwdw=="
        assert "x-mlflow-otel-proxy-token" not in headers
        # The token as a Bearer (MLFLOW_TRACKING_TOKEN): removed before the upstream.
        response, body = call(proxy.port, "/api/2.0/mlflow/experiments/get?experiment_id=0", {"Authorization": f"Bearer {TOKEN}"})
        assert response.status == 200
        assert TOKEN not in body.decode()
    finally:
        echo.close()


def test_a_401_closes_the_connection(start_proxy):
    """A client without a valid token keeps no connection open: the 401 says `Connection: close`, and the proxy
    closes it even if the client would keep it (or is still sending a body)."""
    import socket
    import time

    proxy = start_proxy(env={"MLFLOW_OTEL_PROXY_INBOUND_TOKENS": TOKEN})
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        # Keep-alive asked for, and a body announced that never fully comes.
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nContent-Type: application/x-protobuf\r\n"
                     b"Content-Length: 100000\r\n\r\n" + b"\0" * 100)
        received = b""
        started = time.monotonic()
        while time.monotonic() - started < 5:
            data = sock.recv(65536)
            if not data:
                break  # closed by the proxy
            received += data
        else:
            raise AssertionError("the connection stayed open after the 401")
    head = received.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 401") and "connection: close" in head


def test_upstream_credentials_on_an_open_listener_need_inbound_auth_or_an_explicit_switch(start_proxy):
    """With MLFLOW_TRACKING_TOKEN on the proxy, no proxy tokens and a listener on all interfaces, anyone who reaches the
    proxy would act with that token: start-up is refused with the reason, unless allow_unauthenticated says so."""
    env = {"MLFLOW_TRACKING_TOKEN": TOKEN}
    refused = start_proxy(["--upstream", "http://127.0.0.1:9"], env=env, listen="0.0.0.0:0", expect_start=False)
    assert refused.process.wait(timeout=30) != 0
    assert "without inbound authentication" in refused.log() and "MLFLOW_OTEL_PROXY_ALLOW_UNAUTHENTICATED" in refused.log()
    allowed = start_proxy(["--upstream", "http://127.0.0.1:9"], env={**env, "MLFLOW_OTEL_PROXY_ALLOW_UNAUTHENTICATED": "true"},
                          listen="0.0.0.0:0")
    assert allowed.process.poll() is None
    with_tokens = start_proxy(["--upstream", "http://127.0.0.1:9"], env={**env, "MLFLOW_OTEL_PROXY_INBOUND_TOKENS": "another-token"},
                              listen="0.0.0.0:0")
    assert with_tokens.process.poll() is None
