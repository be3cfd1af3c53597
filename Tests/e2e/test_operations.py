"""Keys and data survive operations (issue #17): a destination that rejects the proxy's credentials holds the
batches instead of dropping them; a reload with the new key delivers every span exactly once with it, over HTTP
and gRPC, with the spool on and off; a destination that fixes itself resumes on the retry schedule; dual-mode
copies started just before SIGTERM are still exported."""

import json
import signal
import time
import urllib.request

import pytest

from conftest import KNOWN_SECRETS, get_json, run_workload, wait_for
from grpc_receiver import GRPCReceiver
from otlp_receiver import OTLPReceiver

OLD_KEY = "rotation-old-key-3f9a1c"
NEW_KEY = "rotation-new-key-8d27e4"
KNOWN_SECRETS.update([OLD_KEY, NEW_KEY])


def metrics(proxy):
    return urllib.request.urlopen(proxy.admin_url + "/metrics", timeout=10).read().decode()


def metric(proxy, prefix):
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics(proxy).splitlines() if line.startswith(prefix))


def state_is(proxy, state):
    return metric(proxy, f'mlflow_otel_proxy_destination_state{{destination="vendor",state="{state}"}}') == 1


def expected_keys(expected):
    return sorted((item["trace_id"][3:], name) for item in expected for name in item["spans"])


def write_config(tmp_path, receiver, protocol, spool, **destination):
    key_file = tmp_path / "vendor.key"
    if not key_file.exists():
        key_file.write_text(OLD_KEY + "\n")
    endpoint = receiver.url if protocol == "http/protobuf" else f"http://127.0.0.1:{receiver.port}"
    document = {
        "mode": "opentelemetry-only",
        "destinations": {"vendor": {"endpoint": endpoint, "protocol": protocol, "headers": {"api-key": f"${{file:{key_file}}}"},
                                    "auth_retry_interval": "1s", **destination}},
    }
    if spool:
        document["sending_queue"] = {"spool": {"directory": str(tmp_path / "spool")}}
    path = tmp_path / "proxy.yaml"
    path.write_text(json.dumps(document))
    return path, key_file


class Received:
    """What a receiver of either protocol accepted: (trace id hex, span name, api-key) per span, and rejections."""

    def __init__(self, receiver):
        self.receiver = receiver

    def spans(self):
        if isinstance(self.receiver, GRPCReceiver):
            with self.receiver.lock:
                requests = list(self.receiver.requests)
            return [(span.trace_id.hex(), span.name, metadata.get("api-key")) for metadata, request in requests
                    for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
        with self.receiver.lock:
            requests = [request for request in self.receiver.requests if request.status == 200]
        return [(span.trace_id.hex(), span.name, request.headers.get("api-key")) for request in requests for _, _, span in request.spans()]

    def rejections(self):
        if isinstance(self.receiver, GRPCReceiver):
            return self.receiver.rejected
        with self.receiver.lock:
            return sum(1 for request in self.receiver.requests if request.status == 401)


@pytest.fixture(params=["http/protobuf", "grpc"])
def vendor(request):
    receiver = OTLPReceiver() if request.param == "http/protobuf" else GRPCReceiver()
    receiver.accepted_keys = {NEW_KEY}  # the key was rotated at the vendor first: the proxy's old key gets 401
    yield request.param, receiver
    receiver.close()


@pytest.mark.parametrize("spool", [False, True], ids=["memory", "spool"])
def test_a_key_rotated_at_the_vendor_first_then_on_the_proxy_loses_nothing(vendor, spool, tmp_path, start_proxy):
    protocol, receiver = vendor
    received = Received(receiver)
    config, key_file = write_config(tmp_path, receiver, protocol, spool)
    proxy = start_proxy(["--config", str(config)], env={"OTEL_EXPORTER_OTLP_PROTOCOL": ""})
    expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT="rotation")
    # Rejected, held, not dropped: the state says so, once in the log, and nothing is counted as dropped.
    wait_for(lambda: state_is(proxy, "credentials_rejected"), timeout=30, message="the credentials_rejected state")
    assert received.spans() == []
    assert proxy.log().count("rejected the proxy's credentials; its batches are held") == 1
    status = urllib.request.urlopen(proxy.admin_url + "/status", timeout=10).read().decode()
    assert "credentials_rejected" in status and OLD_KEY not in status
    assert metric(proxy, "mlflow_otel_proxy_spans_dropped_total") == 0

    key_file.write_text(NEW_KEY + "\n")
    proxy.process.send_signal(signal.SIGHUP)
    want = expected_keys(expected)
    wait_for(lambda: len(received.spans()) >= len(want), timeout=30, message="every held span delivered with the new key")
    time.sleep(1.5)  # a duplicate would arrive now
    spans = received.spans()
    assert sorted((trace, name) for trace, name, _ in spans) == want  # every span, exactly once
    assert {key for _, _, key in spans} == {NEW_KEY}
    assert metric(proxy, "mlflow_otel_proxy_spans_dropped_total") == 0
    assert state_is(proxy, "healthy")
    assert proxy.stop() == 0


def test_a_vendor_that_accepts_the_old_key_again_gets_the_held_batches_on_the_retry_schedule(tmp_path, start_proxy):
    receiver = OTLPReceiver()
    receiver.accepted_keys = {NEW_KEY}
    received = Received(receiver)
    try:
        config, _ = write_config(tmp_path, receiver, "http/protobuf", spool=False)
        proxy = start_proxy(["--config", str(config)])
        expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT="self-fix")
        wait_for(lambda: received.rejections() >= 2, timeout=30, message="the slow retries of the held batch")
        receiver.accepted_keys = {OLD_KEY, NEW_KEY}  # fixed at the vendor: no reload
        fixed = time.monotonic()
        want = expected_keys(expected)
        wait_for(lambda: len(received.spans()) >= len(want), timeout=30, message="delivery to resume by itself")
        assert time.monotonic() - fixed < 5  # auth_retry_interval is 1 s here
        assert sorted((trace, name) for trace, name, _ in received.spans()) == want
        # Logged once the delivery's answer is handled, which can be just after the receiver recorded the spans.
        wait_for(lambda: "accepts the proxy's credentials again" in proxy.log(), timeout=10, message="the recovery logged")
        assert metric(proxy, "mlflow_otel_proxy_spans_dropped_total") == 0
    finally:
        receiver.close()


def test_on_auth_failure_drop_drops_and_counts_as_the_collector_does(tmp_path, start_proxy):
    receiver = OTLPReceiver()
    receiver.accepted_keys = {NEW_KEY}
    try:
        config, _ = write_config(tmp_path, receiver, "http/protobuf", spool=False, on_auth_failure="drop")
        proxy = start_proxy(["--config", str(config)])
        expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT="drop-on-401")
        total = sum(len(item["spans"]) for item in expected)
        wait_for(lambda: metric(proxy, 'mlflow_otel_proxy_spans_dropped_total{destination="vendor",reason="http_4xx"}') == total,
                 timeout=30, message="the rejected spans counted as dropped")
        assert not state_is(proxy, "credentials_rejected")
    finally:
        receiver.close()


def test_auth_failure_settings_are_checked(tmp_path, start_proxy):
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps({"destinations": {"vendor": {"endpoint": "http://127.0.0.1:9", "on_auth_failure": "retry",
                                                            "auth_retry_interval": "10ms"}}}))
    proxy = start_proxy(["--config", str(path)], expect_start=False)
    assert proxy.process.wait(timeout=30) != 0
    log = proxy.log()
    assert "destinations.vendor.on_auth_failure" in log and "hold, drop" in log
    assert "destinations.vendor.auth_retry_interval" in log and "at least 1s" in log


def test_dual_copies_started_just_before_sigterm_are_exported(mlflow_server, receiver, start_proxy):
    proxy = start_proxy(["--upstream", mlflow_server.url],
                        env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url + "/v1/traces", "MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT": "true",
                             "MLFLOW_OTEL_PROXY_SHUTDOWN_TIMEOUT": "15"})
    expected, _ = run_workload(proxy.url, WORKLOAD_EXPERIMENT="dual-sigterm")
    assert proxy.stop() == 0  # right after the last upload was answered
    got = sorted((span.trace_id.hex(), span.name) for _, _, span in receiver.accepted_spans())
    assert got == expected_keys(expected)


def readiness(proxy):
    return get_json(proxy.admin_url + "/readyz", timeout=10)


@pytest.mark.serial
def test_a_full_spool_disk_refuses_uploads_and_after_kill_9_a_roomy_disk_delivers_every_acknowledged_span(tmp_path):
    import errno
    import os
    import shutil
    import subprocess
    from conftest import Proxy
    from test_delivery import FAST_RETRY, accepted, keys, upload
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs the suite as root)")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], check=True)
    receiver = OTLPReceiver()
    first = restarted = None
    try:
        receiver.status = 503  # the destination is down: batches stay in the spool
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "MLFLOW_OTEL_PROXY_SPOOL_DIR": str(small / "spool"), **FAST_RETRY}
        first = Proxy(tmp_path / "first", args=["--trace-info-wait", "3"], env=env)
        complete, waiting = range(1, 11), range(11, 21)
        for number in complete:
            assert upload(first.port, number) == 200
        # Acknowledged and journaled, but held by the assembler (their root never comes) until the 3 s wait ends:
        # by then the disk is full, so their batch cannot be spooled.
        for number in waiting:
            assert upload(first.port, number, without_root=True) == 200
        with open(small / "filler", "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError as error:
                assert error.errno == errno.ENOSPC
        wait_for(lambda: readiness(first)[0] == 503, timeout=20, message="/readyz to report the unwritable spool")
        status, body = readiness(first)
        assert body["checks"]["spool"]["ok"] is False and "cannot be written" in body["checks"]["spool"]["detail"]
        assert upload(first.port, 99) == 503  # the full period: nothing more is acknowledged
        assert "could not write a batch to the spool; uploads get 503" in first.log()
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        first.log_file.close()
        # The operator moves the spool to a roomy disk and restarts.
        roomy = tmp_path / "roomy"
        shutil.copytree(small / "spool", roomy)
        receiver.status = 200
        restarted = Proxy(tmp_path / "second", args=["--trace-info-wait", "3"], env={**env, "MLFLOW_OTEL_PROXY_SPOOL_DIR": str(roomy)})
        want = set(keys(complete) + keys(waiting, without_root=True))
        wait_for(lambda: set(accepted(receiver)) >= want, timeout=40, message="every acknowledged span delivered after the restart")
        assert not [key for key in accepted(receiver) if key[0] == (99).to_bytes(16, "big").hex()]
    finally:
        receiver.close()
        for proxy in (first, restarted):
            if proxy:
                proxy.stop()
        subprocess.run(["umount", "-l", str(small)], check=False)


def big_trace(number, megabytes):
    """One plain OpenTelemetry span (a complete trace) with a large attribute, as an OTLP/protobuf body."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=number.to_bytes(16, "big"), span_id=(1).to_bytes(8, "big"), name="big",
        start_time_unix_nano=1_700_000_000_000_000_000, end_time_unix_nano=1_700_000_001_000_000_000)
    attribute = span.attributes.add()
    attribute.key = "payload"
    attribute.value.string_value = "x" * int(megabytes * 1024 * 1024)
    return request.SerializeToString()


def post_otlp(port, body):
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.serial
@pytest.mark.memory
def test_a_reload_with_a_200_mib_spooled_backlog_under_load_stays_within_its_memory_bound(tmp_path, start_proxy):
    import threading
    from pathlib import Path
    from conftest import SANITIZER
    from test_delivery import accepted, journal_entries, keys, upload
    receiver = OTLPReceiver()
    try:
        spool = tmp_path / "spool"

        def write(version):
            (tmp_path / "proxy.yaml").write_text(json.dumps({
                "mode": "opentelemetry-only", "sending_queue": {"spool": {"directory": str(spool)}},
                "destinations": {"main": {"endpoint": receiver.url, "protocol": "http/protobuf", "headers": {"x-settings": version},
                                          "retry_on_failure": {"initial_interval": "200ms", "max_interval": "500ms"}}}}))

        write("1")
        proxy = start_proxy(["--config", str(tmp_path / "proxy.yaml")], log_level="info")

        def rss_kib():
            import re
            return int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{proxy.process.pid}/status").read_text()).group(1))

        fresh = rss_kib()
        receiver.status = 503
        backlog = range(1000, 1060)  # 60 traces of 3.5 MiB: 210 MiB spooled
        for number in backlog:
            assert post_otlp(proxy.port, big_trace(number, 3.5)) == 200
        spooled = lambda: sum(path.stat().st_size for path in Path(spool / "main").glob("*.otlp"))  # noqa: E731
        wait_for(lambda: spooled() >= 200 * 1024 * 1024, timeout=60, message="a 200 MiB backlog in the spool")

        baseline = rss_kib()
        samples, stop = [], threading.Event()

        def sample():
            while not stop.is_set():
                samples.append(rss_kib())
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        later = range(1, 301)
        statuses = []
        loader = threading.Thread(target=lambda: statuses.extend(upload(proxy.port, number) for number in later), daemon=True)
        receiver.status = 200
        loader.start()
        write("2")  # the destination changes while the backlog is on disk and load goes on
        proxy.process.send_signal(signal.SIGHUP)
        loader.join(timeout=120)
        assert set(statuses) == {200}
        wait_for(lambda: set(accepted(receiver)) >= set(keys(later)), timeout=120, message="the new traces delivered")
        wait_for(lambda: spooled() == 0, timeout=120, message="the backlog delivered")
        wait_for(lambda: journal_entries(spool) == [], timeout=30, message="the intake journal emptied")
        stop.set()
        sampler.join()
        delivered = {span.trace_id.hex() for _, _, span in receiver.accepted_spans()}
        assert {number.to_bytes(16, "big").hex() for number in backlog} <= delivered
        assert metric(proxy, "mlflow_otel_proxy_spans_dropped_total") == 0
        grown_mib = (max(samples) - fresh) / 1024
        print(f"reload with a 210 MiB spooled backlog: RSS {fresh // 1024} MiB fresh, {baseline // 1024} MiB before the reload, "
              f"at most {max(samples) // 1024} MiB during it")
        if not SANITIZER:
            # Over the freshly started proxy: the memory queue bound (64 MiB) and a fixed overhead (the uploads' own
            # buffers, allocator caches); the 210 MiB backlog stays on disk and is read one batch at a time.
            assert grown_mib < 64 + 128, f"RSS grew by {grown_mib:.0f} MiB over the fresh proxy"
    finally:
        receiver.close()
