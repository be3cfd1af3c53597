"""Destinations: profiles, fan-out with separate credentials, OTLP/JSON, TLS, check-config, secret hygiene."""

import http.client
import json
import subprocess
from pathlib import Path

import pytest

from captures import exchanges, is_trace_upload, replay, sent_spans
from conftest import KNOWN_SECRETS, Proxy, clean_environment, wait_for
from otlp_receiver import OTLPReceiver
from upstream_stubs import StubUpstream

UPLOADS = [e for e in exchanges("3.17.2/01_sync") if is_trace_upload(e)]
EXPECTED = sent_spans(UPLOADS)


def secret(name):
    value = f"{name}-secret-4f9c1d"
    KNOWN_SECRETS.add(value)
    return value


def write_config(tmp_path, text):
    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*.yaml')))}.yaml"
    path.write_text(text)
    return path


def delivered(receiver):
    wait_for(lambda: len(receiver.all_spans()) >= len(EXPECTED), timeout=20, message="spans at the receiver")
    keys = [(span.trace_id.hex(), span.span_id.hex()) for _, _, span in receiver.all_spans()]
    assert sorted(keys) == sorted(EXPECTED)


# (profile, profile keys, header that must arrive, its expected value, path the profile posts to)
PROFILES = [
    ("datadog", {"site": "datadoghq.eu", "api_key": secret("dd")}, "dd-api-key", secret("dd"), "/v1/traces"),
    ("grafana", {"zone": "prod-eu-west-0", "instance_id": "123456", "token": secret("glc")}, "Authorization",
     "Basic " + __import__("base64").b64encode(f"123456:{secret('glc')}".encode()).decode(), "/otlp/v1/traces"),
    ("splunk", {"realm": "us1", "access_token": secret("sf")}, "X-SF-Token", secret("sf"), "/v2/trace/otlp"),
    ("newrelic", {"region": "eu", "license_key": secret("nr")}, "api-key", secret("nr"), "/v1/traces"),
    ("honeycomb", {"api_key": secret("hc")}, "x-honeycomb-team", secret("hc"), "/v1/traces"),
    ("signoz", {"region": "eu", "ingestion_key": secret("sz")}, "signoz-ingestion-key", secret("sz"), "/v1/traces"),
    ("lightstep", {"access_token": secret("ls")}, "lightstep-access-token", secret("ls"), "/v1/traces"),
    ("dynatrace", {"environment_url": "https://abc.live.dynatrace.com", "api_token": secret("dt")}, "Authorization",
     f"Api-Token {secret('dt')}", "/api/v2/otlp/v1/traces"),
    ("otlp", {"headers": {"x-api-key": secret("otlp")}}, "x-api-key", secret("otlp"), "/v1/traces"),
]


@pytest.mark.parametrize("profile,keys,header,value,path", PROFILES, ids=[p[0] for p in PROFILES])
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_profile_request_shape(profile, keys, header, value, path, compression, tmp_path, receiver, start_proxy):
    # The vendor URL is replaced by the local receiver (same path); everything else comes from the profile.
    destination = {"profile": profile, "traces_endpoint": receiver.url + path, "compression": compression, **keys}
    config = write_config(tmp_path, json.dumps({"destinations": {"vendor": destination}}))
    proxy = start_proxy(["--config", str(config)])
    replay(proxy.port, UPLOADS)
    delivered(receiver)
    for request in receiver.requests:
        assert request.path == path
        assert request.headers[header] == value
        assert request.headers["Content-Type"] == "application/x-protobuf"
        assert request.headers.get("Content-Encoding") == ("gzip" if compression == "gzip" else None)
        assert request.headers["User-Agent"].startswith("mlflow-otel-proxy/")


def test_otlp_json_protocol(tmp_path, receiver, start_proxy):
    config = write_config(tmp_path, json.dumps({"destinations": {"json": {"traces_endpoint": receiver.url + "/v1/traces",
                                                                            "protocol": "http/json"}}}))
    proxy = start_proxy(["--config", str(config)])
    replay(proxy.port, UPLOADS)
    delivered(receiver)  # the receiver parsed OTLP/JSON: hex ids, lowerCamelCase keys, integer enums
    raw = json.loads(receiver.requests[0].raw)
    span = raw["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and all(c in "0123456789abcdef" for c in span["traceId"])
    assert isinstance(span["kind"], int) and "startTimeUnixNano" in span


def test_fan_out_keeps_each_destinations_credentials_apart(tmp_path, start_proxy):
    receivers = [OTLPReceiver() for _ in range(3)]
    echo = StubUpstream("echo")
    try:
        keys = [secret(f"fan{i}") for i in range(3)]
        upstream_token = secret("upstream-token")
        config = write_config(tmp_path, json.dumps({
            "upstream": {"url": echo.url, "headers": {"Authorization": "Bearer ${env:UPSTREAM_TOKEN}"}},
            "mode": "opentelemetry-only",
            "destinations": {f"d{i}": {"traces_endpoint": r.url + "/v1/traces", "headers": {"x-key": keys[i]}}
                             for i, r in enumerate(receivers)}}))
        proxy = start_proxy(["--config", str(config)], env={"UPSTREAM_TOKEN": upstream_token})
        client_auth = {"Authorization": "Basic Y2xpZW50OnB3"}
        statuses = replay(proxy.port, [{**e, "headers": {**e["headers"], **client_auth}} for e in UPLOADS])
        assert all(status == 200 for _, _, status in statuses)
        for index, receiver in enumerate(receivers):
            delivered(receiver)
            for request in receiver.requests:
                assert request.headers["x-key"] == keys[index]
                assert "Authorization" not in request.headers  # neither the client's nor the upstream's
                assert not any(other in json.dumps(request.headers) for other in keys if other != keys[index])
        # A passthrough call: the upstream gets the client's own Authorization (kept by default), never a
        # destination's key.
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        connection.request("GET", "/api/2.0/mlflow/experiments/get?experiment_id=1", headers=client_auth)
        echoed = json.loads(connection.getresponse().read())
        sent = json.dumps(echoed["headers"])
        assert not any(key in sent for key in keys)
        assert {"Authorization": v for k, v in echoed["headers"] if k.lower() == "authorization"} == client_auth
        # Without client credentials the configured one is injected.
        connection.request("GET", "/api/2.0/mlflow/experiments/get?experiment_id=1")
        echoed = json.loads(connection.getresponse().read())
        assert [v for k, v in echoed["headers"] if k.lower() == "authorization"] == [f"Bearer {upstream_token}"]
    finally:
        for receiver in receivers:
            receiver.close()
        echo.close()


def tls_destination(receiver, **tls):
    return {"destinations": {"secure": {"traces_endpoint": receiver.url + "/v1/traces", "tls": tls}}}


def test_tls_with_a_custom_ca(pki, tmp_path, start_proxy):
    receiver = OTLPReceiver(tls={"certfile": str(pki / "server.pem"), "keyfile": str(pki / "server.key")})
    try:
        proxy = start_proxy(["--config", str(write_config(tmp_path, json.dumps(tls_destination(receiver, ca_file=str(pki / "ca.pem")))))])
        replay(proxy.port, UPLOADS)
        delivered(receiver)
    finally:
        receiver.close()


def test_tls_ca_from_the_standard_variable(pki, start_proxy):
    receiver = OTLPReceiver(tls={"certfile": str(pki / "server.pem"), "keyfile": str(pki / "server.key")})
    try:
        proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_EXPORTER_OTLP_CERTIFICATE": str(pki / "ca.pem")})
        replay(proxy.port, UPLOADS)
        delivered(receiver)
    finally:
        receiver.close()


@pytest.mark.parametrize("ca", [None, "other-ca.pem"], ids=["system-trust", "wrong-ca"])
def test_tls_verification_fails_clearly(pki, tmp_path, start_proxy, ca):
    receiver = OTLPReceiver(tls={"certfile": str(pki / "server.pem"), "keyfile": str(pki / "server.key")})
    try:
        tls = {"ca_file": str(pki / ca)} if ca else {}
        proxy = start_proxy(["--config", str(write_config(tmp_path, json.dumps(tls_destination(receiver, **tls))))])
        replay(proxy.port, UPLOADS)
        wait_for(lambda: "export failed; spans dropped" in proxy.log(), timeout=60, message="the export to fail")
        assert receiver.requests == []
        failure = next(line for line in proxy.log().splitlines() if "export failed; spans dropped" in line)
        assert "destination=secure" in failure and ("certificate" in failure.lower() or "handshake" in failure.lower()), failure
    finally:
        receiver.close()


def test_mutual_tls(pki, tmp_path, start_proxy):
    receiver = OTLPReceiver(tls={"certfile": str(pki / "server.pem"), "keyfile": str(pki / "server.key"), "client_ca": str(pki / "ca.pem")})
    try:
        # The refused handshake looks like a connection failure, which is retried: a short retry budget ends it.
        config = {**tls_destination(receiver, ca_file=str(pki / "ca.pem")), "retry_on_failure": {"initial_interval": "0.2s", "max_elapsed_time": "2s"}}
        without = start_proxy(["--config", str(write_config(tmp_path, json.dumps(config)))])
        replay(without.port, UPLOADS)
        wait_for(lambda: "export failed; spans dropped" in without.log(), timeout=60, message="the export without a client certificate to fail")
        assert receiver.requests == []
        with_cert = start_proxy(["--config", str(write_config(tmp_path, json.dumps(tls_destination(
            receiver, ca_file=str(pki / "ca.pem"), cert_file=str(pki / "client.pem"), key_file=str(pki / "client.key")))))])
        replay(with_cert.port, UPLOADS)
        delivered(receiver)
    finally:
        receiver.close()


def test_check_config_prints_redacted_or_names_bad_keys(tmp_path):
    key = secret("check")
    good = write_config(tmp_path, "destinations:\n  dd: { profile: datadog, site: datadoghq.eu, api_key: \"${env:DD_KEY}\" }\n")
    result = subprocess.run([Proxy.BINARY, "check-config", "--config", str(good)], capture_output=True, text=True,
                            env=clean_environment(DD_KEY=key))
    assert result.returncode == 0, result.stderr
    assert "endpoint: https://otlp.datadoghq.eu/v1/traces" in result.stdout
    assert "dd-api-key: \"***\"" in result.stdout and key not in result.stdout + result.stderr
    bad = write_config(tmp_path, "destinations:\n  dd: { profile: datadog, site: datadoghq.xx, api_key: \"${env:DD_KEY}\" }\n"
                                 "  c: { endpoint: \"http://c:4318\", headers: { k: \"${file:/nonexistent}\" } }\n")
    result = subprocess.run([Proxy.BINARY, "check-config", "--config", str(bad)], capture_output=True, text=True,
                            env=clean_environment(DD_KEY=key))
    assert result.returncode != 0
    assert 'destinations.dd.site: unknown site "datadoghq.xx", expected one of' in result.stderr
    assert "destinations.c.headers.k: cannot read the secret file /nonexistent" in result.stderr
    assert key not in result.stdout + result.stderr
    # serve refuses to start on the same errors.
    serve = subprocess.run([Proxy.BINARY, "--config", str(bad), "--listen", "127.0.0.1:0"], capture_output=True, text=True,
                           env=clean_environment(DD_KEY=key), timeout=30)
    assert serve.returncode != 0 and "destinations.dd.site" in serve.stderr + serve.stdout


def grpc_delivered(receiver):
    wait_for(lambda: len(receiver.all_spans()) >= len(EXPECTED), timeout=30, message="spans at the gRPC receiver")
    keys = [(span.trace_id.hex(), span.span_id.hex()) for span in receiver.all_spans()]
    assert sorted(keys) == sorted(EXPECTED)


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_grpc_export_with_metadata(compression, tmp_path, start_proxy):
    from grpc_receiver import GRPCReceiver

    receiver = GRPCReceiver()
    try:
        token = secret("grpc")
        config = write_config(tmp_path, json.dumps({"destinations": {"collector": {
            "protocol": "grpc", "endpoint": f"127.0.0.1:{receiver.port}", "tls": {"insecure": True},
            "headers": {"X-API-Key": token}, "compression": compression}}}))
        proxy = start_proxy(["--config", str(config)])
        replay(proxy.port, UPLOADS)
        grpc_delivered(receiver)
        for metadata, _ in receiver.requests:
            assert metadata["x-api-key"] == token  # metadata keys are lower-case
            assert metadata["user-agent"].startswith("mlflow-otel-proxy/")
        # grpcio keeps grpc-* headers (grpc-encoding) out of the metadata it shows; a gzip-compressed message
        # that decodes to the right spans is the evidence here.
    finally:
        receiver.close()


def test_grpc_from_the_standard_variables_and_a_profile(tmp_path, start_proxy):
    from grpc_receiver import GRPCReceiver

    receiver = GRPCReceiver()
    try:
        token = secret("splunk-grpc")
        # Splunk's profile over gRPC, its ingest host replaced by the local receiver (plaintext).
        config = write_config(tmp_path, json.dumps({"destinations": {"splunk": {
            "profile": "splunk", "realm": "us1", "access_token": token, "protocol": "grpc", "endpoint": f"http://127.0.0.1:{receiver.port}"}}}))
        proxy = start_proxy(["--config", str(config)])
        replay(proxy.port, UPLOADS)
        grpc_delivered(receiver)
        assert all(metadata["x-sf-token"] == token for metadata, _ in receiver.requests)
    finally:
        receiver.close()
    env_receiver = GRPCReceiver()
    try:
        proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"127.0.0.1:{env_receiver.port}", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                                 "OTEL_EXPORTER_OTLP_INSECURE": "true", "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{secret('env-grpc')}"})
        replay(proxy.port, UPLOADS)
        grpc_delivered(env_receiver)
        assert all(metadata["authorization"] == f"Bearer {secret('env-grpc')}" for metadata, _ in env_receiver.requests)
    finally:
        env_receiver.close()


def test_grpc_over_tls_with_a_custom_ca_and_server_name(pki, tmp_path, start_proxy):
    from grpc_receiver import GRPCReceiver

    receiver = GRPCReceiver(tls={"certfile": str(pki / "server.pem"), "keyfile": str(pki / "server.key")})
    try:
        config = write_config(tmp_path, json.dumps({"destinations": {"secure": {
            "protocol": "grpc", "endpoint": f"https://127.0.0.1:{receiver.port}",
            "tls": {"ca_file": str(pki / "ca.pem"), "server_name": "localhost"}}}}))
        proxy = start_proxy(["--config", str(config)])
        replay(proxy.port, UPLOADS)
        grpc_delivered(receiver)
    finally:
        receiver.close()


# Profiles that offer gRPC: (profile, keys, metadata key, expected value).
GRPC_PROFILES = [
    ("splunk", {"realm": "us1", "access_token": secret("sf-g")}, "x-sf-token", secret("sf-g")),
    ("newrelic", {"region": "eu", "license_key": secret("nr-g")}, "api-key", secret("nr-g")),
    ("honeycomb", {"api_key": secret("hc-g")}, "x-honeycomb-team", secret("hc-g")),
    ("signoz", {"region": "in", "ingestion_key": secret("sz-g")}, "signoz-ingestion-key", secret("sz-g")),
    ("lightstep", {"access_token": secret("ls-g")}, "lightstep-access-token", secret("ls-g")),
    ("otlp", {"headers": {"x-api-key": secret("otlp-g")}}, "x-api-key", secret("otlp-g")),
]


@pytest.mark.parametrize("profile,keys,key,value", GRPC_PROFILES, ids=[p[0] for p in GRPC_PROFILES])
def test_profile_over_grpc(profile, keys, key, value, tmp_path, start_proxy):
    from grpc_receiver import GRPCReceiver

    receiver = GRPCReceiver()
    try:
        destination = {"profile": profile, "protocol": "grpc", "endpoint": f"http://127.0.0.1:{receiver.port}", "compression": "gzip", **keys}
        proxy = start_proxy(["--config", str(write_config(tmp_path, json.dumps({"destinations": {"vendor": destination}})))])
        replay(proxy.port, UPLOADS)
        grpc_delivered(receiver)
        assert all(metadata[key] == value for metadata, _ in receiver.requests)
    finally:
        receiver.close()


def test_datadog_202_accepted_is_success(tmp_path, receiver, start_proxy):
    receiver.status = 202  # Datadog's intake answers 202 Accepted
    destination = {"profile": "datadog", "site": "datadoghq.com", "api_key": secret("dd202"), "traces_endpoint": receiver.url + "/v1/traces"}
    proxy = start_proxy(["--config", str(write_config(tmp_path, json.dumps({"destinations": {"dd": destination}})))])
    replay(proxy.port, UPLOADS)
    delivered(receiver)
    proxy.stop()
    # 202 is success: no batch is sent again (how many batches the spans took depends on the upload's timing; a slow
    # sanitizer build can cut them into two), every request the receiver got is one the proxy counted as delivered.
    keys = [(span.trace_id.hex(), span.span_id.hex()) for _, _, span in receiver.all_spans()]
    assert sorted(keys) == sorted(EXPECTED)
    assert f"export_requests{{dd,ok}}={len(receiver.requests)} " in proxy.log()
    assert "export failed" not in proxy.log()


class HandshakeResetter:
    """A TCP front for a TLS receiver that resets the first `resets` connections in the middle of the TLS handshake
    (a network blip or a restarting load balancer), then relays bytes both ways to the receiver. Mock by
    necessity: a real TLS endpoint cannot be made to reset handshakes on demand."""

    def __init__(self, target_port, resets):
        import socket
        import struct
        import threading
        self.resets = resets
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

        def pipe(source, sink):
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for end in (source, sink):
                    try:
                        end.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        def serve():
            while True:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                self.connections += 1
                if self.connections <= self.resets:
                    # Mid-handshake: the ClientHello goes to the receiver, its first answer (ServerHello …) comes
                    # back, then the connection is reset, so the client's TLS layer sees the handshake break off.
                    hello = conn.recv(65536)
                    with socket.create_connection(("127.0.0.1", target_port)) as upstream:
                        upstream.sendall(hello)
                        conn.sendall(upstream.recv(65536))
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()  # RST
                    continue
                upstream = socket.create_connection(("127.0.0.1", target_port))
                threading.Thread(target=pipe, args=(conn, upstream), daemon=True).start()
                threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()

    def close(self):
        self.sock.close()


def test_a_reset_tls_handshake_is_retried_not_dropped(pki, tmp_path, start_proxy):
    receiver = OTLPReceiver(tls={"certfile": str(pki / "server.pem"), "keyfile": str(pki / "server.key")})
    front = HandshakeResetter(receiver.port, resets=3)
    try:
        config = {"destinations": {"secure": {"traces_endpoint": f"https://127.0.0.1:{front.port}/v1/traces",
                                              "tls": {"ca_file": str(pki / "ca.pem")},
                                              "retry_on_failure": {"initial_interval": "0.2s", "max_interval": "0.5s"}}}}
        proxy = start_proxy(["--config", str(write_config(tmp_path, json.dumps(config)))])
        replay(proxy.port, UPLOADS)
        delivered(receiver)
        assert front.connections > 3  # the resets happened, then delivery went through
        assert "spans dropped" not in proxy.log() and "spans_dropped{" not in proxy.log()
    finally:
        front.close()
        receiver.close()
