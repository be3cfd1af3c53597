"""`mlflow-otel-proxy backfill` end to end: traces logged to a real `mlflow server` by the real MLflow client (3.17.2,
3.1.4 and, on a 2.22.5 server, 2.22.5), read back with MLflow's REST API and delivered to an OTLP receiver that
decodes with the official protobuf definitions. Exactly once across interrupted runs, a destination that is down,
and the same OTLP as live export of the same traces."""

import datetime
import json
import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

from conftest import MLflowServer, Proxy, clean_environment, run_workload, wait_for
from otlp_receiver import OTLPReceiver
from spans import attributes, kinds

pytestmark = pytest.mark.xdist_group("backfill")

SANITIZER_REPORTS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer")


def destination_env(receiver, **extra):
    return {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url + "/v1/traces", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": "backfilled-agent", "MLFLOW_OTEL_PROXY_RETRY_INITIAL_INTERVAL": "0.2",
            "MLFLOW_OTEL_PROXY_RETRY_MAX_INTERVAL": "0.5", **extra}


def backfill_command(server, receiver, tmp_path, *args, checkpoint="run.checkpoint"):
    """`server` `None`: the upstream comes from the environment (MLFLOW_TRACKING_URI)."""
    upstream = ["--upstream", server.url] if server else []
    return [Proxy.BINARY, "backfill", *upstream, "--checkpoint", str(tmp_path / checkpoint), *args], \
        clean_environment(**destination_env(receiver))


def backfill(server, receiver, tmp_path, *args, checkpoint="run.checkpoint", env=None, timeout=180):
    command, environment = backfill_command(server, receiver, tmp_path, *args, checkpoint=checkpoint)
    environment.update(env or {})
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout)
    for report in SANITIZER_REPORTS:
        assert report not in completed.stderr, completed.stderr[completed.stderr.index(report):][:3000]
    return completed


def accepted_by_span(receiver):
    """span id → (resource, scope, span) of the accepted requests; fails on a span delivered twice."""
    result = {}
    for resource, scope, span in receiver.accepted_spans():
        assert span.span_id not in result, f"span {span.name} of {span.trace_id.hex()} delivered twice"
        result[span.span_id] = (resource, scope, span)
    return result


def delivered_traces(receiver):
    """MLflow trace id (the root's `mlflow.trace_id`; 2.x and 3.1 ids are server request ids, unrelated to the
    spans' trace id) → span name → span, of the accepted requests; resource and scope checked on the way."""
    accepted_by_span(receiver)
    groups = {}
    for resource, scope, span in receiver.accepted_spans():
        assert attributes(resource)["service.name"] == "backfilled-agent"
        assert scope.name == "mlflow-otel-proxy"
        groups.setdefault(span.trace_id, []).append(span)
    result = {}
    for spans in groups.values():
        roots = [span for span in spans if not span.parent_span_id]
        assert len(roots) == 1, [span.name for span in spans]
        result[attributes(roots[0])["mlflow.trace_id"]] = {span.name: span for span in spans}
    return result


def check_delivered(receiver, expected):
    """Every expected trace delivered once, span by span (names, parents), with its state on the root."""
    received = delivered_traces(receiver)
    assert sorted(received) == sorted(item["trace_id"] for item in expected), \
        f"delivered {sorted(received)}, expected {[(item['trace_id'], item['name']) for item in expected]}"
    for item in expected:
        spans = received[item["trace_id"]]
        assert sorted(spans) == sorted(item["spans"]), item["trace_id"]
        names = {span.span_id: name for name, span in spans.items()}
        for name, span in spans.items():
            assert names.get(span.parent_span_id) == item["spans"][name], f"parent of {name}"
            if item["trace_id"].startswith("tr-"):
                assert span.trace_id.hex() == item["trace_id"][3:]
        assert attributes(spans[item["name"]])["mlflow.trace.state"] == item["state"]
    return received


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A 3.17.2 server holding traces logged directly (no proxy): the agent workload in two experiments (one of
    them from a 3.1.4 client, whose spans are a `traces.json` artifact), and two runs a second apart in a third."""
    server = MLflowServer(tmp_path_factory.mktemp("backfill-server"))
    try:
        logged = {"a": run_workload(server.url, WORKLOAD_EXPERIMENT="backfill-a")[0],
                  "b": run_workload(server.url, client="3.1.4", WORKLOAD_EXPERIMENT="backfill-b")[0],
                  "early": run_workload(server.url, "many_traces.py", WORKLOAD_EXPERIMENT="backfill-time", WORKLOAD_TRACES="3")[0]}
        time.sleep(1.5)
        logged["middle"] = datetime.datetime.now(datetime.timezone.utc)
        time.sleep(1.5)
        logged["late"] = run_workload(server.url, "many_traces.py", WORKLOAD_EXPERIMENT="backfill-time", WORKLOAD_TRACES="2")[0]
        yield server, logged
    finally:
        server.stop()


def test_traces_logged_directly_are_delivered_once_with_their_trace_data(stored, tmp_path):
    server, logged = stored
    receiver = OTLPReceiver()
    try:
        result = backfill(server, receiver, tmp_path, "--experiment-name", "backfill-a", "backfill-b")
        assert result.returncode == 0, result.stdout + result.stderr
        expected = logged["a"] + logged["b"]
        check_delivered(receiver, expected)
        assert "exported now:        4 traces, 12 spans" in result.stdout, result.stdout
        assert "every selected trace is delivered" in result.stdout
        received = delivered_traces(receiver)
        for item in expected:
            spans = received[item["trace_id"]]
            if item["name"] != "agent_root":
                continue
            root = attributes(spans["agent_root"])
            assert root["mlflow.trace.tag.team"] == "wire" and root["mlflow.trace.tag.env"] == "test"
            assert "mlflow.trace.tag.mlflow.artifactLocation" not in root, "server-added tags are not the client's"
            assert kinds(spans["agent_root"])["int_attr"] == "int_value" and root["int_attr"] == 42
            assert json.loads(root["dict_attr"]) == {"a": 1, "b": [True, None]}
            assert json.loads(attributes(spans["retrieve"])["mlflow.spanInputs"]) == {"query": "What is MLflow?"}
            assert spans["retrieve"].events[0].name == "cache_miss"
            assert spans["failing_tool"].status.code == 2
            if item["metadata"]:  # 3.x clients: session, user and metadata on the root
                assert root["session.id"] == "session-123" and root["user.id"] == "alice"
                assert root["mlflow.trace.metadata.app.version"] == "1.2.3"
        # Run again with the same checkpoint: everything is already delivered, nothing is sent.
        sent = len(receiver.requests)
        again = backfill(server, receiver, tmp_path, "--experiment-name", "backfill-a", "backfill-b")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already delivered:   4 (checkpoint)" in again.stdout and len(receiver.requests) == sent
    finally:
        receiver.close()


def test_selection_by_filter_time_range_and_dry_run(stored, tmp_path):
    server, logged = stored
    receiver = OTLPReceiver()
    try:
        experiment = server.client().get_experiment_by_name("backfill-a").experiment_id
        only_agent = backfill(server, receiver, tmp_path, "--experiment-id", experiment, "--filter", "tags.team = 'wire'",
                              checkpoint="filter.checkpoint")
        assert only_agent.returncode == 0, only_agent.stdout + only_agent.stderr
        check_delivered(receiver, [item for item in logged["a"] if item["name"] == "agent_root"])

        middle = logged["middle"].isoformat()
        receiver.clear()
        later = backfill(server, receiver, tmp_path, "--experiment-name", "backfill-time", "--since", middle, checkpoint="since.checkpoint")
        assert later.returncode == 0, later.stdout + later.stderr
        check_delivered(receiver, logged["late"])
        receiver.clear()
        earlier = backfill(server, receiver, tmp_path, "--experiment-name", "backfill-time", "--until", middle, checkpoint="until.checkpoint")
        assert earlier.returncode == 0, earlier.stdout + earlier.stderr
        check_delivered(receiver, logged["early"])

        # At most 4 MLflow requests a second: the run cannot be faster than its requests allow.
        receiver.clear()
        started = time.monotonic()
        paced = backfill(server, receiver, tmp_path, "--experiment-name", "backfill-time", "--rate", "4", checkpoint="paced.checkpoint")
        elapsed = time.monotonic() - started
        assert paced.returncode == 0, paced.stdout + paced.stderr
        requests = int(re.search(r"MLflow requests: +(\d+)", paced.stdout).group(1))
        assert requests >= 4 and elapsed >= (requests - 1) / 4, (requests, elapsed)

        receiver.clear()
        dry = backfill(server, receiver, tmp_path, "--experiment-name", "backfill-time", "--dry-run", checkpoint="dry.checkpoint")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "would be exported:   5 traces, 15 spans" in dry.stdout, dry.stdout
        assert receiver.requests == [] and not (tmp_path / "dry.checkpoint").exists()
    finally:
        receiver.close()


def test_bad_selections_are_refused_with_the_setting_named(stored, tmp_path):
    server, _ = stored
    receiver = OTLPReceiver()
    try:
        for args, setting in ((["--since", "yesterday", "--experiment-id", "1"], "--since"), ([], "--experiment-id"),
                              (["--experiment-id", "1", "--destination", "nope"], "--destination"),
                              (["--experiment-id", "1", "--rate", "0"], "--rate")):
            result = backfill(server, receiver, tmp_path, *args)
            assert result.returncode == 2 and result.stderr.startswith(setting), (args, result.stderr)
        missing = backfill(server, receiver, tmp_path, "--experiment-name", "no-such-experiment")
        assert missing.returncode == 1 and "no-such-experiment" in missing.stdout and "RESOURCE_DOES_NOT_EXIST" in missing.stdout
        assert receiver.requests == []
        # A destination that refuses for good (a 400 is not retried) stops the run: exit 1, nothing recorded.
        receiver.status = 400
        refused = backfill(server, receiver, tmp_path, "--experiment-name", "backfill-a", checkpoint="refused.checkpoint")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "stopped: destination otlp refused a request" in refused.stdout and len(receiver.requests) == 1
        assert (tmp_path / "refused.checkpoint").read_text().splitlines()[1:] == []
    finally:
        receiver.close()


def an_outage(stored, tmp_path, experiment, traces, accepted):
    """`traces` traces of many_traces.py in a new experiment, a receiver that accepts `accepted` requests and is then
    down (503), and the backfill command for them in requests of 6 spans (two traces)."""
    server, _ = stored
    expected, _ = run_workload(server.url, "many_traces.py", WORKLOAD_EXPERIMENT=experiment, WORKLOAD_TRACES=str(traces))
    receiver = OTLPReceiver()
    receiver.script = [200] * accepted
    receiver.status = 503
    command, environment = backfill_command(server, receiver, tmp_path, "--experiment-name", experiment)
    environment["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] = "6"
    return server, expected, receiver, command, environment


def test_killed_and_interrupted_runs_resume_without_a_span_twice_or_missing(stored, tmp_path):
    # Two requests of 6 spans (two traces each) are accepted, then the destination is down: the run pauses.
    server, expected, receiver, command, environment = an_outage(stored, tmp_path, "backfill-resume", traces=24, accepted=2)
    try:
        first = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: len(receiver.requests) >= 4, timeout=60, message="the backfill to retry against the down destination")
        first.kill()  # kill -9 while paused
        first.communicate()
        checkpoint = (tmp_path / "run.checkpoint").read_text().splitlines()
        assert len(checkpoint) == 1 + 4, checkpoint  # the header and the four traces of the two accepted requests

        # Interrupted (Ctrl-C) while paused: exit 130, a summary, the checkpoint unchanged.
        second = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        requests = len(receiver.requests)
        wait_for(lambda: len(receiver.requests) >= requests + 2, timeout=60, message="the second run to retry")
        second.send_signal(signal.SIGINT)
        out, err = second.communicate(timeout=30)
        assert second.returncode == 130, out + err
        assert "interrupted: run it again" in out and "already delivered:   4 (checkpoint)" in out
        assert len((tmp_path / "run.checkpoint").read_text().splitlines()) == 5

        # The destination is back: the third run delivers the other twenty traces, none twice.
        receiver.status = 200
        third = backfill(server, receiver, tmp_path, "--experiment-name", "backfill-resume", env={"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "6"})
        assert third.returncode == 0, third.stdout + third.stderr
        assert "exported now:        20 traces, 60 spans" in third.stdout, third.stdout
        check_delivered(receiver, expected)
    finally:
        receiver.close()


def test_a_destination_down_during_the_run_pauses_it_and_loses_nothing(stored, tmp_path):
    # The first request goes through, then an outage.
    _, expected, receiver, command, environment = an_outage(stored, tmp_path, "backfill-outage", traces=10, accepted=1)
    try:
        # stderr on a terminal: the progress line is redrawn in place and says what it waits for.
        terminal, terminal_side = pty.openpty()
        run = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=terminal_side, text=True)
        os.close(terminal_side)
        shown = bytearray()

        def read_terminal():
            while select.select([terminal], [], [], 0)[0]:
                try:
                    chunk = os.read(terminal, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                shown.extend(chunk)

        wait_for(lambda: len(receiver.requests) >= 5, timeout=60, message="retries against the down destination")
        wait_for(lambda: read_terminal() or b"waiting for destination otlp" in shown, timeout=30, message="the progress line to say why it waits")
        assert run.poll() is None, "the backfill must wait for the destination, not give up"
        assert b"\r\x1b[Kbackfill: 0/10 traces" in shown or b"\r\x1b[Kbackfill: 2/10 traces" in shown, bytes(shown[-500:])
        receiver.status = 200
        out, _ = run.communicate(timeout=120)
        read_terminal()
        os.close(terminal)
        assert run.returncode == 0, out + shown.decode(errors="replace")[-3000:]
        check_delivered(receiver, expected)
    finally:
        receiver.close()


def test_a_backfill_exports_what_live_export_exported(stored, tmp_path, start_proxy):
    """Dual mode: the same traces reach MLflow and, live, a receiver; a backfill of them to a second receiver
    gives the same spans, attribute for attribute (the resource's client SDK attributes aside: MLflow does not
    store them)."""
    server, _ = stored
    live, backfilled = OTLPReceiver(), OTLPReceiver()
    try:
        proxy = start_proxy(["--upstream", server.url], env={**destination_env(live), "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT": "true"})
        expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT="backfill-live")
        total = sum(len(item["spans"]) for item in expected)
        wait_for(lambda: len(live.accepted_spans()) >= total, message="live export")
        wait_for(lambda: len(server.client().search_traces(locations=[server.client().get_experiment_by_name("backfill-live").experiment_id]))
                 == len(expected), message="the traces in MLflow")
        result = backfill(server, backfilled, tmp_path, "--experiment-name", "backfill-live")
        assert result.returncode == 0, result.stdout + result.stderr
        live_spans, backfilled_spans = accepted_by_span(live), accepted_by_span(backfilled)
        assert sorted(live_spans) == sorted(backfilled_spans) and len(live_spans) == total
        for span_id, (live_resource, live_scope, live_span) in live_spans.items():
            resource, scope, span = backfilled_spans[span_id]
            for field in ("trace_id", "span_id", "parent_span_id", "name", "kind", "start_time_unix_nano", "end_time_unix_nano", "status",
                          "links", "trace_state", "flags"):
                assert getattr(span, field) == getattr(live_span, field), f"{field} of span {live_span.name}"
            events = [(event.time_unix_nano, event.name, attributes(event), kinds(event)) for event in span.events]
            assert events == [(event.time_unix_nano, event.name, attributes(event), kinds(event)) for event in live_span.events], \
                f"events of span {live_span.name}"
            # Attributes with their types; their order is not part of the data.
            typed = {key: (kinds(span)[key], value) for key, value in attributes(span).items()}
            live_typed = {key: (kinds(live_span)[key], value) for key, value in attributes(live_span).items()}
            assert typed == live_typed, f"attributes of span {live_span.name}: only live {live_typed.keys() - typed.keys()}, " \
                                        f"only backfilled {typed.keys() - live_typed.keys()}, different " \
                                        f"{[key for key in typed.keys() & live_typed.keys() if typed[key] != live_typed[key]]}"
            assert len(span.attributes) == len(live_span.attributes)
            assert scope == live_scope
            sdk = {key: value for key, value in attributes(live_resource).items() if not key.startswith("telemetry.sdk.")}
            assert attributes(resource) == sdk
    finally:
        live.close()
        backfilled.close()


@pytest.mark.xdist_group("backfill-2x")
def test_a_2x_server_and_client(tmp_path_factory, tmp_path):
    server = MLflowServer(tmp_path_factory.mktemp("backfill-2x"), version="2.22.5")
    receiver = OTLPReceiver()
    try:
        expected, _ = run_workload(server.url, client="2.22.5", WORKLOAD_EXPERIMENT="backfill-2x")
        result = backfill(server, receiver, tmp_path, "--experiment-name", "backfill-2x")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "no SearchTracesV3" in result.stderr
        received = check_delivered(receiver, expected)
        spans = received[next(item["trace_id"] for item in expected if item["name"] == "agent_root")]
        root = attributes(spans["agent_root"])
        assert root["mlflow.trace.tag.team"] == "wire" and root["int_attr"] == 42
        assert json.loads(attributes(spans["retrieve"])["mlflow.spanInputs"]) == {"query": "What is MLflow?"}
    finally:
        receiver.close()
        server.stop()


def test_a_databricks_workspace_with_oauth_machine_to_machine_credentials(stored, tmp_path):
    """`MLFLOW_TRACKING_URI=databricks` with a service principal, as for serve. No workspace can be reached here:
    `databricks_front.DatabricksFront` (a mock, said there) demands the Bearer token it issued in front of the
    real MLflow server."""
    from databricks_front import DatabricksFront
    server, logged = stored
    client_id, client_secret = "e2e-backfill-principal", "dose-e2e-backfill-secret-51c2"
    front = DatabricksFront(server.port, client_id=client_id, client_secret=client_secret)
    receiver = OTLPReceiver()
    try:
        result = backfill(None, receiver, tmp_path, "--experiment-name", "backfill-a",
                          env={"MLFLOW_TRACKING_URI": "databricks", "DATABRICKS_HOST": front.url, "DATABRICKS_CLIENT_ID": client_id,
                               "DATABRICKS_CLIENT_SECRET": client_secret})
        assert result.returncode == 0, result.stdout + result.stderr
        check_delivered(receiver, logged["a"])
        assert front.token_requests == 1 and front.forwarded
        assert all(auth.startswith("Bearer dbx-oauth-token-") for _, _, auth in front.forwarded)
        assert client_secret not in result.stdout + result.stderr and "dbx-oauth-token-" not in result.stdout + result.stderr
        # No credential of MLflow's reaches the destination.
        assert all("Authorization" not in request.headers for request in receiver.requests)
    finally:
        receiver.close()
        front.close()
