"""What a platform team runs before traffic flows (issue #21): `test-destination` sends one synthetic trace to
each destination with its real settings and says what each answered, with a hint for the usual causes and never
a secret; `healthcheck` is the image's health probe."""

import json
import subprocess

from conftest import KNOWN_SECRETS, Proxy, clean_environment, free_port
from grpc_receiver import GRPCReceiver
from otlp_receiver import OTLPReceiver

DD_KEY = "dd-check-key-0b7e55aa"
KNOWN_SECRETS.add(DD_KEY)


def run_check(tmp_path, document, *names, env=None):
    path = tmp_path / "check.yaml"
    path.write_text(json.dumps(document))
    return subprocess.run([Proxy.BINARY, "test-destination", *names, "--config", str(path)], capture_output=True, text=True,
                          env=clean_environment(**(env or {})), timeout=60)


def test_every_destination_is_checked_and_reported_with_hints_and_no_secret(tmp_path):
    healthy, refusing, grpc = OTLPReceiver(), OTLPReceiver(), GRPCReceiver()
    refusing.status = 403
    closed = free_port()
    try:
        document = {"destinations": {
            "collector": {"endpoint": healthy.url, "protocol": "http/protobuf"},
            "datadog": {"profile": "datadog", "endpoint": refusing.url + "/v1/traces", "api_key": DD_KEY},
            "grpc": {"endpoint": f"http://127.0.0.1:{grpc.port}", "protocol": "grpc", "headers": {"x-team": "search"}},
            "down": {"endpoint": f"http://127.0.0.1:{closed}", "protocol": "grpc"},
        }}
        result = run_check(tmp_path, document)
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert "OK   collector" in output and "OK   grpc" in output
        assert "FAIL datadog" in output and "answered 403" in output and "check `site`" in output
        assert "FAIL down" in output and f"nothing listens at 127.0.0.1:{closed}" in output
        assert "2 of 4 destination(s) failed" in output
        assert DD_KEY not in output
        # What arrived is one clearly named span, with the destination's real headers.
        spans = [span for _, _, span in healthy.accepted_spans()]
        assert [span.name for span in spans] == ["mlflow-otel-proxy connectivity check"]
        assert grpc.all_spans()[0].name == "mlflow-otel-proxy connectivity check"
        assert grpc.requests[0][0]["x-team"] == "search"
        assert refusing.requests[0].headers["dd-api-key"] == DD_KEY
        # Only the named ones; all accepted: exit 0.
        result = run_check(tmp_path, document, "collector", "grpc")
        assert result.returncode == 0 and "all 2 destination(s) accepted the trace" in result.stdout
        # An unknown name is a usage error.
        result = run_check(tmp_path, document, "colector")
        assert result.returncode == 2 and 'no destination named "colector"' in result.stderr
    finally:
        healthy.close()
        refusing.close()
        grpc.close()


def test_the_variables_destination_and_the_port_of_the_other_protocol(tmp_path):
    receiver = OTLPReceiver()
    try:
        result = run_check(tmp_path, {}, env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                                                     "OTEL_SERVICE_NAME": "checkout"})
        assert result.returncode == 0, result.stdout + result.stderr
        assert "OK   otlp" in result.stdout and f"{receiver.url}/v1/traces (http/protobuf)" in result.stdout
        resource = {kv.key: kv.value.string_value for kv in receiver.requests[0].message.resource_spans[0].resource.attributes}
        assert resource["service.name"] == "checkout"
        # OTLP/HTTP aimed at 4317, the gRPC port: the hint names the mistake.
        result = run_check(tmp_path, {"destinations": {"c": {"endpoint": "http://127.0.0.1:4317", "protocol": "http/protobuf",
                                                                     "timeout": "2s"}}})
        assert result.returncode == 1 and "port 4317 is the OTLP/gRPC port" in result.stdout
        result = run_check(tmp_path, {})
        assert result.returncode == 2 and "no destinations are configured" in result.stderr
    finally:
        receiver.close()


def test_healthcheck_follows_the_admin_listener(start_proxy):
    proxy = start_proxy()
    ok = subprocess.run([Proxy.BINARY, "healthcheck", "--admin", proxy.admin_url], capture_output=True, timeout=30)
    assert ok.returncode == 0
    down = subprocess.run([Proxy.BINARY, "healthcheck", "--admin", f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True,
                          timeout=30)
    assert down.returncode == 1 and "did not answer" in down.stderr


EXAMPLE_SECRETS = {"DD_API_KEY": "example-dd-key-1", "SPLUNK_ACCESS_TOKEN": "example-sf-2", "NEW_RELIC_LICENSE_KEY": "example-nr-3",
                   "HONEYCOMB_API_KEY": "example-hc-4", "SIGNOZ_INGESTION_KEY": "example-sz-5", "LIGHTSTEP_ACCESS_TOKEN": "example-ls-6",
                   "DT_API_TOKEN": "example-dt-7"}


def test_every_example_configuration_is_valid(tmp_path):
    import re
    from conftest import ROOT
    examples = sorted((ROOT / "deploy" / "examples").glob("*.yaml"))
    profiles = {"datadog", "grafana", "splunk", "newrelic", "honeycomb", "signoz", "lightstep", "dynatrace"}
    assert {path.stem for path in examples} >= profiles | {"fan-out", "otlp-grpc-collector"}
    for path in examples:
        # Secret files named under /run/secrets are stand-ins here.
        text = re.sub(r"\$\{file:/run/secrets/([a-z-]+)\}", lambda m: "${file:" + str(tmp_path / m.group(1)) + "}", path.read_text())
        for name in re.findall(r"\$\{file:" + re.escape(str(tmp_path)) + r"/([a-z-]+)\}", text):
            (tmp_path / name).write_text(f"file-secret-{name}\n")
        config = tmp_path / path.name
        config.write_text(text)
        result = subprocess.run([Proxy.BINARY, "check-config", "--config", str(config)], capture_output=True, text=True,
                                env=clean_environment(**EXAMPLE_SECRETS), timeout=30)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"
        for secret in list(EXAMPLE_SECRETS.values()) + ["file-secret-"]:
            assert secret not in result.stdout, f"{path.name} shows a secret"
        if path.stem in profiles:
            assert f"profile: {path.stem}" in result.stdout, path.name


def test_a_configmap_style_symlink_swap_reloads_without_a_restart_and_drops_nothing(tmp_path, start_proxy):
    import os
    import time
    from conftest import wait_for
    old, new = "watch-old-key-5d1e", "watch-new-key-93ac"
    KNOWN_SECRETS.update([old, new])
    first, second = OTLPReceiver(), OTLPReceiver()
    first.accepted_keys = {old}
    mount = tmp_path / "config"
    mount.mkdir()

    def publish(version, key, receivers):
        """As the kubelet updates a volume: a new timestamped directory, then one atomic rename of `..data`."""
        data = mount / f"..{version}"
        data.mkdir()
        (data / "api-key").write_text(key + "\n")
        destinations = {name: {"endpoint": receiver.url, "protocol": "http/protobuf", "headers": {"api-key": "${file:" + str(mount / "api-key") + "}"},
                               "retry_on_failure": {"initial_interval": "200ms", "max_interval": "300ms"}}
                        for name, receiver in receivers.items()}
        (data / "proxy.yaml").write_text(json.dumps({"mode": "opentelemetry-only", "destinations": destinations}))
        os.symlink(data.name, mount / "..data_tmp")
        os.replace(mount / "..data_tmp", mount / "..data")
        for name in ("api-key", "proxy.yaml"):
            if not (mount / name).is_symlink():
                os.symlink(f"..data/{name}", mount / name)

    try:
        publish("v1", old, {"main": first})
        proxy = start_proxy(["--config", str(mount / "proxy.yaml"), "--watch-config"])
        from test_delivery import upload
        assert upload(proxy.port, 1) == 200
        wait_for(lambda: len(first.accepted_spans()) == 5, message="the first trace delivered with the old key")
        # The vendor rotates the key; a trace queues (held: credentials rejected), then the new key and a second
        # destination arrive by a volume update, without SIGHUP or a restart.
        first.accepted_keys = {new}
        assert upload(proxy.port, 2) == 200
        wait_for(lambda: any(r.status == 401 for r in first.requests), message="the old key rejected")
        pid = proxy.process.pid
        publish("v2", new, {"main": first, "second": second})
        wait_for(lambda: len(first.accepted_spans()) == 10, timeout=20, message="the held trace delivered with the new key")
        assert upload(proxy.port, 3) == 200
        wait_for(lambda: len(second.accepted_spans()) == 5, message="the added destination in use")
        assert proxy.process.pid == pid and proxy.process.poll() is None
        assert proxy.log().count("a configuration file changed: reloading the configuration") == 1
        assert {r.headers["api-key"] for r in first.requests if r.status == 200} == {old, new}
        time.sleep(0.5)
        import urllib.request
        metrics = urllib.request.urlopen(proxy.admin_url + "/metrics", timeout=10).read().decode()
        assert not [line for line in metrics.splitlines() if line.startswith("mlflow_otel_proxy_spans_dropped_total") and not line.endswith(" 0")]
    finally:
        first.close()
        second.close()
