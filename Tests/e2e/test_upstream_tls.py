"""An https upstream, configured as the MLflow client configures it: a real `mlflow server` serving TLS through
uvicorn (its own `--ssl-*` options), with a certificate from a test CA, and with client certificates required;
the real MLflow 3.17.2 client goes through the proxy over plain HTTP on loopback."""

import json
import urllib.request

import pytest

from conftest import MLflowServer, get_json, run_workload


@pytest.fixture(scope="module")
def tls_servers(tmp_path_factory, pki):
    combined = pki / "client-combined.pem"  # what MLFLOW_TRACKING_CLIENT_CERT_PATH takes: certificate and key
    combined.write_text((pki / "client.pem").read_text() + (pki / "client.key").read_text())
    tls = {"certfile": str(pki / "server.pem"), "keyfile": str(pki / "server.key"), "trust": str(pki / "ca.pem")}
    plain = MLflowServer(tmp_path_factory.mktemp("mlflow-tls"), tls=tls)
    mutual = MLflowServer(tmp_path_factory.mktemp("mlflow-mtls"), tls={
        **tls, "ca": str(pki / "ca.pem"), "client_cert": str(pki / "client.pem"), "client_key": str(pki / "client.key")})
    yield plain, mutual, combined
    plain.stop()
    mutual.stop()


pytestmark = pytest.mark.xdist_group("upstream-tls")  # the module's servers start once


def get_experiment(proxy):
    return get_json(proxy.url + "/api/2.0/mlflow/experiments/get?experiment_id=0")


def test_the_server_ca_from_mlflow_tracking_server_cert_path(tls_servers, pki, start_proxy):
    plain, _, _ = tls_servers
    proxy = start_proxy(["--upstream", plain.url], env={"MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki / "ca.pem")})
    status, body = get_experiment(proxy)
    assert status == 200 and body["experiment"]["name"] == "Default"
    # The real client, through the proxy to the https server.
    run_workload(proxy.url, WORKLOAD_EXPERIMENT="tls-upstream", MLFLOW_ENABLE_ASYNC_TRACE_LOGGING="false")


def test_an_untrusted_server_is_a_502_and_insecure_tls_skips_verification(tls_servers, start_proxy):
    plain, _, _ = tls_servers
    untrusted = start_proxy(["--upstream", plain.url])
    status, body = get_experiment(untrusted)
    assert status == 502 and body["error_code"] == "TEMPORARILY_UNAVAILABLE", body
    insecure = start_proxy(["--upstream", plain.url], env={"MLFLOW_TRACKING_INSECURE_TLS": "true"})
    assert get_experiment(insecure)[0] == 200
    assert "TLS certificate verification is off for the upstream" in insecure.log()


def test_client_certificates_from_mlflow_tracking_client_cert_path_and_the_file(tls_servers, pki, start_proxy, tmp_path):
    _, mutual, combined = tls_servers
    without = start_proxy(["--upstream", mutual.url], env={"MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki / "ca.pem")})
    assert get_experiment(without)[0] == 502  # the server requires a client certificate
    with_cert = start_proxy(["--upstream", mutual.url], env={"MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki / "ca.pem"),
                                                            "MLFLOW_TRACKING_CLIENT_CERT_PATH": str(combined)})
    assert get_experiment(with_cert)[0] == 200
    config = tmp_path / "upstream-tls.yaml"
    config.write_text(json.dumps({"upstream": {"url": mutual.url, "tls": {
        "ca_file": str(pki / "ca.pem"), "cert_file": str(pki / "client.pem"), "key_file": str(pki / "client.key")}}}))
    from_file = start_proxy(["--config", str(config)])
    assert get_experiment(from_file)[0] == 200


def test_bad_upstream_tls_settings_stop_start_up_naming_the_variable(pki, start_proxy, tmp_path):
    cases = [({"MLFLOW_TRACKING_INSECURE_TLS": "true", "MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki / "ca.pem")},
              "MLFLOW_TRACKING_INSECURE_TLS"),
             ({"MLFLOW_TRACKING_INSECURE_TLS": "maybe"}, "MLFLOW_TRACKING_INSECURE_TLS"),
             ({"MLFLOW_TRACKING_SERVER_CERT_PATH": str(tmp_path / "missing.pem")}, "MLFLOW_TRACKING_SERVER_CERT_PATH"),
             ({"MLFLOW_TRACKING_CLIENT_CERT_PATH": str(tmp_path / "missing.pem")}, "MLFLOW_TRACKING_CLIENT_CERT_PATH")]
    for env, variable in cases:
        proxy = start_proxy(["--upstream", "https://127.0.0.1:1"], env=env, expect_start=False)
        assert proxy.process.wait(timeout=30) != 0
        assert variable in proxy.log(), proxy.log()[-2000:]
