"""A Databricks workspace as the upstream, named as an application names it (`MLFLOW_TRACKING_URI=databricks` or
`databricks://PROFILE`, the seed's `mlflow.set_tracking_uri("databricks")`): a personal access token, a profile
of a `.databrickscfg`, OAuth machine-to-machine credentials, or the configuration file. No real workspace can be
reached here: `databricks_front.DatabricksFront` (a mock, said there) stands in front of a real `mlflow server`,
demands the Bearer token, and issues OAuth tokens; the real MLflow 3.17.2 client runs through the proxy."""

import json
import re
import time
import urllib.request

import pytest

from conftest import KNOWN_SECRETS, get_json, run_workload, wait_for
from databricks_front import DatabricksFront

PAT = "dapi-e2e-personal-token-4c1f"
CLIENT_ID = "e2e-service-principal"
CLIENT_SECRET = "dose-e2e-client-secret-93ab"
KNOWN_SECRETS.update([PAT, CLIENT_SECRET])  # every proxy log of the suite is scanned for them


def experiment(proxy):
    return get_json(proxy.url + "/api/2.0/mlflow/experiments/get?experiment_id=0")


def no_tokens_logged(proxy):
    assert not re.search(r"dbx-oauth-token-\d+", proxy.log()), "an OAuth access token reached the proxy log"


def traces_reach_mlflow(proxy, mlflow_server, name):
    expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT=name, MLFLOW_ENABLE_ASYNC_TRACE_LOGGING="false")
    client = mlflow_server.client()
    for item in expected:
        trace = wait_for(lambda: client.get_trace(item["trace_id"]), message="the trace in MLflow, through the front")
        assert sorted(span.name for span in trace.data.spans) == sorted(item["spans"])


def test_a_personal_access_token_from_the_environment(mlflow_server, start_proxy):
    front = DatabricksFront(mlflow_server.port, personal_token=PAT)
    try:
        proxy = start_proxy(env={"MLFLOW_TRACKING_URI": "databricks", "DATABRICKS_HOST": front.url, "DATABRICKS_TOKEN": PAT})
        assert experiment(proxy)[0] == 200
        traces_reach_mlflow(proxy, mlflow_server, "databricks-pat")
        assert front.forwarded and all(auth == f"Bearer {PAT}" for _, _, auth in front.forwarded)
        wrong = start_proxy(env={"MLFLOW_TRACKING_URI": "databricks", "DATABRICKS_HOST": front.url, "DATABRICKS_TOKEN": "dapi-wrong"})
        assert experiment(wrong) == (401, {"error_code": "UNAUTHENTICATED", "message": "Credential was not sent or was invalid."})
    finally:
        front.close()


def test_a_profile_of_the_databricks_config_file(mlflow_server, start_proxy, tmp_path):
    front = DatabricksFront(mlflow_server.port, personal_token=PAT)
    try:
        config = tmp_path / "databrickscfg"
        config.write_text(f"[DEFAULT]\nhost = https://elsewhere.invalid\ntoken = dapi-not-this-one\n\n"
                          f"; the workspace the proxy fronts\n[ml-prod]\nhost = {front.url}\ntoken = {PAT}\n")
        proxy = start_proxy(env={"MLFLOW_TRACKING_URI": "databricks://ml-prod", "DATABRICKS_CONFIG_FILE": str(config)})
        assert experiment(proxy)[0] == 200
        assert f"upstream={front.url}" in proxy.log()
        missing = start_proxy(env={"MLFLOW_TRACKING_URI": "databricks://nope", "DATABRICKS_CONFIG_FILE": str(config)}, expect_start=False)
        assert missing.process.wait(timeout=30) != 0
        assert "the profile [nope] is not in" in missing.log() and "MLFLOW_TRACKING_URI" in missing.log()
    finally:
        front.close()


@pytest.mark.serial  # token lifetimes in seconds: it must not share the machine with other test processes
def test_oauth_machine_to_machine_tokens_are_fetched_cached_and_refreshed(mlflow_server, start_proxy):
    lifetime = 8  # seconds; the proxy fetches a new token a fifth of it (1.6 s) before expiry
    front = DatabricksFront(mlflow_server.port, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token_lifetime=lifetime)
    try:
        proxy = start_proxy(env={"MLFLOW_TRACKING_URI": "databricks", "DATABRICKS_HOST": front.url,
                                 "DATABRICKS_CLIENT_ID": CLIENT_ID, "DATABRICKS_CLIENT_SECRET": CLIENT_SECRET})
        issued = time.monotonic()
        for _ in range(5):
            assert experiment(proxy)[0] == 200
        assert time.monotonic() - issued < lifetime * 0.8, "too slow to observe the cache"
        assert front.token_requests == 1  # cached
        time.sleep(max(0.0, issued + lifetime * 0.8 + 1.0 - time.monotonic()))  # past the refresh point, before expiry
        assert experiment(proxy)[0] == 200
        assert front.token_requests == 2 and front.rejected == 0  # refreshed before the old token expired
        traces_reach_mlflow(proxy, mlflow_server, "databricks-oauth")
        no_tokens_logged(proxy)
        # A wrong secret: a 502 in MLflow's format that names the token endpoint's error, never the secret.
        bad = start_proxy(env={"MLFLOW_TRACKING_URI": "databricks", "DATABRICKS_HOST": front.url,
                               "DATABRICKS_CLIENT_ID": CLIENT_ID, "DATABRICKS_CLIENT_SECRET": "dose-wrong-secret"})
        status, body = experiment(bad)
        assert status == 502 and "answered 401: invalid_client" in body["message"]
        assert "dose-wrong-secret" not in body["message"] and "dose-wrong-secret" not in bad.log()
    finally:
        front.close()


def test_a_revoked_oauth_token_is_replaced_after_the_workspace_answers_401(mlflow_server, start_proxy):
    front = DatabricksFront(mlflow_server.port, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token_lifetime=3600)
    try:
        proxy = start_proxy(env={"MLFLOW_TRACKING_URI": "databricks", "DATABRICKS_HOST": front.url,
                                 "DATABRICKS_CLIENT_ID": CLIENT_ID, "DATABRICKS_CLIENT_SECRET": CLIENT_SECRET})
        assert experiment(proxy)[0] == 200 and front.token_requests == 1
        front.issued.clear()  # the workspace revokes every token it issued (its refresh point is an hour away)
        assert experiment(proxy)[0] == 401  # the client sees the workspace's answer once
        assert experiment(proxy)[0] == 200  # the next request carries a new token
        assert front.token_requests == 2
        no_tokens_logged(proxy)
    finally:
        front.close()


def test_the_configuration_file_names_the_workspace_and_dual_export_works(mlflow_server, receiver, start_proxy, tmp_path):
    front = DatabricksFront(mlflow_server.port, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    try:
        config = tmp_path / "proxy.yaml"
        config.write_text(json.dumps({
            "upstream": {"databricks": {"host": front.url, "client_id": CLIENT_ID, "client_secret": "${env:SP_SECRET}"}},
            "mode": "dual", "destinations": {"collector": {"traces_endpoint": receiver.url + "/v1/traces"}}}))
        proxy = start_proxy(["--config", str(config)], env={"SP_SECRET": CLIENT_SECRET})
        traces_reach_mlflow(proxy, mlflow_server, "databricks-file")
        wait_for(lambda: receiver.all_spans(), message="the dual export's copy")
        for request in receiver.requests:
            assert "Authorization" not in request.headers  # workspace credentials never go to a destination
        no_tokens_logged(proxy)
        # check-config shows the workspace and the client id, never the secret.
        import subprocess
        from conftest import Proxy, clean_environment
        dump = subprocess.run([Proxy.BINARY, "check-config", "--config", str(config)], env=clean_environment(SP_SECRET=CLIENT_SECRET),
                              capture_output=True, text=True, timeout=60)
        assert dump.returncode == 0, dump.stderr
        assert CLIENT_ID in dump.stdout and "client_secret: \"***\"" in dump.stdout and CLIENT_SECRET not in dump.stdout
    finally:
        front.close()


@pytest.mark.parametrize("env, reason", [
    ({"MLFLOW_TRACKING_URI": "databricks", "DATABRICKS_HOST": "http://127.0.0.1:1"}, "has a host but no credentials"),
    ({"MLFLOW_TRACKING_URI": "databricks", "DATABRICKS_CONFIG_FILE": "/nonexistent/databrickscfg"}, "cannot be read"),
])
def test_an_incomplete_workspace_stops_start_up_with_the_reason(env, reason, start_proxy):
    proxy = start_proxy(env=env, expect_start=False)
    assert proxy.process.wait(timeout=30) != 0
    assert reason in proxy.log() and "MLFLOW_TRACKING_URI" in proxy.log()
