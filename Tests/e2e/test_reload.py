"""Configuration reload on SIGHUP: a good configuration replaces the running one without dropping queued
spans; a bad one is rejected with its reasons logged and the running one stays."""

import http.client
import json
import signal
import time
import urllib.request

from captures import exchanges, is_trace_upload, sent_spans
from conftest import KNOWN_SECRETS, wait_for
from otlp_receiver import OTLPReceiver

UPLOADS = [e for e in exchanges("3.17.2/01_sync") if is_trace_upload(e)]
EXPECTED = sorted(sent_spans(UPLOADS))
# Other traces for uploads after a reload (the proxy sends a trace it has seen only once).
LATER = [e for e in exchanges("3.17.2/02_async_default") if is_trace_upload(e)]
LATER_EXPECTED = sorted(sent_spans(LATER))
OLD_TOKEN = "reload-old-token-5e1b"
NEW_TOKEN = "reload-new-token-77ac"
KNOWN_SECRETS.update({OLD_TOKEN, NEW_TOKEN})


def config(path, receivers, token, **extra):
    document = {"inbound_auth": {"tokens": [token]},
                "destinations": {name: {"endpoint": receiver.url, "protocol": "http/protobuf"} for name, receiver in receivers.items()}, **extra}
    path.write_text(json.dumps(document))


def upload(proxy, token, uploads=UPLOADS):
    """Sends the captured 3.17 uploads with a proxy token; returns the statuses."""
    statuses = []
    for exchange in uploads:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        connection.request(exchange["method"], exchange["path"], body=exchange["body"],
                           headers={**exchange["headers"], "Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
        connection.close()
    return statuses


def span_keys(receiver):
    return sorted((span.trace_id.hex(), span.span_id.hex()) for _, _, span in receiver.accepted_spans())


def reload(proxy, count):
    proxy.process.send_signal(signal.SIGHUP)
    wait_for(lambda: proxy.log().count("SIGHUP: reloading the configuration") >= count, timeout=10, message="the reload")
    time.sleep(0.3)


def counter(proxy, name):
    text = urllib.request.urlopen(proxy.admin_url + "/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_reload_swaps_destinations_and_tokens_without_dropping_queued_spans(tmp_path, start_proxy):
    kept, added, removed = OTLPReceiver(), OTLPReceiver(), OTLPReceiver()
    try:
        path = tmp_path / "proxy.yaml"
        config(path, {"kept": kept, "removed": removed}, OLD_TOKEN)
        proxy = start_proxy(["--config", str(path)])
        # The kept destination is failing when the reload happens: its spans wait in its queue, retrying.
        kept.status = 503
        assert set(upload(proxy, OLD_TOKEN)) == {200}
        wait_for(lambda: span_keys(removed) == EXPECTED, timeout=20, message="spans at the destination to be removed")
        wait_for(lambda: len(kept.requests) >= 1, timeout=20, message="a failed attempt at the kept destination")

        config(path, {"kept": kept, "added": added}, NEW_TOKEN)
        reload(proxy, 1)
        assert "configuration reloaded" in proxy.log()
        kept.status = 200
        # The queued spans survive the reload: delivered once the destination recovers.
        wait_for(lambda: span_keys(kept) == EXPECTED, timeout=30, message="queued spans delivered after the reload")

        # New tokens only; new uploads reach the kept and the added destination, not the removed one.
        assert set(upload(proxy, OLD_TOKEN, LATER)) == {401}
        assert set(upload(proxy, NEW_TOKEN, LATER)) == {200}
        wait_for(lambda: span_keys(added) == LATER_EXPECTED, timeout=20, message="spans at the added destination")
        wait_for(lambda: span_keys(kept) == sorted(EXPECTED + LATER_EXPECTED), timeout=20, message="later upload at the kept destination")
        time.sleep(1)
        assert span_keys(removed) == EXPECTED
        assert counter(proxy, "mlflow_otel_proxy_spans_dropped_total") == 0
        assert proxy.stop() == 0
    finally:
        for receiver in (kept, added, removed):
            receiver.close()


def test_a_bad_configuration_is_rejected_and_the_running_one_stays(tmp_path, start_proxy):
    receiver, other = OTLPReceiver(), OTLPReceiver()
    try:
        path = tmp_path / "proxy.yaml"
        config(path, {"main": receiver}, OLD_TOKEN)
        proxy = start_proxy(["--config", str(path)])
        # Unknown key and bad value: both reasons are logged by their key path.
        path.write_text(json.dumps({"inbound_auth": {"tokens": [NEW_TOKEN]}, "destinatons": {},
                                    "destinations": {"main": {"endpoint": other.url, "protocol": "http/protobuf", "compression": "zip"}}}))
        reload(proxy, 1)
        log = proxy.log()
        assert "configuration reload rejected" in log
        assert "setting=destinatons" in log and "setting=destinations.main.compression" in log
        # A mode change needs a restart: rejected too.
        path.write_text(json.dumps({"inbound_auth": {"tokens": [NEW_TOKEN]}, "destinations": {}}))
        reload(proxy, 2)
        assert "the export mode would change" in proxy.log()
        # The running configuration is untouched: old token, old destination.
        assert set(upload(proxy, OLD_TOKEN)) == {200}
        wait_for(lambda: span_keys(receiver) == EXPECTED, timeout=20, message="spans at the running destination")
        assert other.requests == []
        assert proxy.process.poll() is None
    finally:
        receiver.close()
        other.close()


def test_restart_only_settings_are_kept_and_named(tmp_path, start_proxy):
    receiver = OTLPReceiver()
    try:
        path = tmp_path / "proxy.yaml"
        config(path, {"main": receiver}, OLD_TOKEN)
        proxy = start_proxy(["--config", str(path)])
        config(path, {"main": receiver}, NEW_TOKEN, limits={"max_connections": 7}, trace_info_wait="3s")
        reload(proxy, 1)
        log = proxy.log()
        assert "limits changed; it needs a restart" in log and "trace_info_wait changed; it needs a restart" in log
        assert set(upload(proxy, NEW_TOKEN)) == {200}
    finally:
        receiver.close()


def test_reload_rotates_the_listener_certificate(pki, tmp_path, start_proxy):
    import shutil
    import socket
    import ssl
    import subprocess

    def run(*args):
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    # A second server certificate, from the other CA; the proxy's files start as the first one.
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "rotated.key", "-out", "rotated.csr", "-subj", "/CN=rotated")
    (tmp_path / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "rotated.csr", "-CA", str(pki / "other-ca.pem"), "-CAkey", str(pki / "other-ca.key"),
        "-CAcreateserial", "-out", "rotated.pem", "-days", "2", "-extfile", "san.cnf")
    shutil.copy(pki / "server.pem", tmp_path / "live.pem")
    shutil.copy(pki / "server.key", tmp_path / "live.key")
    path = tmp_path / "proxy.yaml"
    path.write_text(json.dumps({"tls": {"cert_file": str(tmp_path / "live.pem"), "key_file": str(tmp_path / "live.key")}}))
    proxy = start_proxy(["--config", str(path)])

    def issuer():
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
            with context.wrap_socket(raw) as tls:
                der = tls.getpeercert(binary_form=True)
        return subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-issuer"], input=der, capture_output=True,
                              check=True).stdout.decode()

    assert "test ca" in issuer()
    shutil.copy(tmp_path / "rotated.pem", tmp_path / "live.pem")
    shutil.copy(tmp_path / "rotated.key", tmp_path / "live.key")
    reload(proxy, 1)
    assert "test other-ca" in issuer()
    # Clients that trust the new CA connect and are served.
    connection = http.client.HTTPSConnection("127.0.0.1", proxy.port, timeout=10,
                                             context=__import__("ssl").create_default_context(cafile=str(pki / "other-ca.pem")))
    connection.request("GET", "/version")
    assert connection.getresponse().status == 200
