"""Driver of Tests/benchmarks/scaling/run.sh: one proxy vs two replicas round robin vs two replicas with affinity,
all in front of one real MLflow server.
Usage: scaling.py RUNS TRACE_INFO_WAIT (the proxy binary in MLFLOW_OTEL_PROXY_BIN)."""

import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
from conftest import MLflowServer, Proxy, free_port, run_workload, wait_for  # noqa: E402
from otlp_receiver import OTLPReceiver  # noqa: E402

RUNS, WAIT = int(sys.argv[1]), float(sys.argv[2])


def nginx(work, replicas, affinity):
    port = free_port()
    servers = "\n".join(f"    server 127.0.0.1:{p};" for p in replicas)
    # With affinity every call of a client goes to one replica (here all clients share 127.0.0.1, so `hash` on the
    # client address puts them all on one: what ClientIP affinity does for one client pod).
    balance = "    hash $remote_addr consistent;" if affinity else ""
    (work / "nginx.conf").write_text(f"""worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work};
  upstream replicas {{
{balance}
{servers}
    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    location / {{ proxy_pass http://replicas; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
""")
    process = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf")])
    time.sleep(0.5)
    return process, f"http://127.0.0.1:{port}"


def counter(proxy, name):
    text = urllib.request.urlopen(proxy.admin_url + "/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def scenario(label, replicas_count, affinity):
    work = Path(tempfile.mkdtemp(prefix=f"scaling-{replicas_count}-"))
    receiver = OTLPReceiver()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    # OpenTelemetry-only mode with a shared MLflow server upstream (experiments and other calls go there), as a
    # gateway runs; trace uploads are answered by whichever replica gets them.
    proxies = [Proxy(work / f"replica-{i}", args=["--upstream", MLFLOW.url, "--trace-info-wait", str(WAIT)], env=env, log_level="info")
               for i in range(replicas_count)]
    balancer = None
    try:
        if replicas_count == 1:
            url = proxies[0].url
        else:
            balancer, url = nginx(work, [p.port for p in proxies], affinity)
        expected_spans, finished = 0, {}
        for _ in range(RUNS):
            traces, _ = run_workload(url, WORKLOAD_EXPERIMENT="scaling", MLFLOW_ENABLE_ASYNC_TRACE_LOGGING="false")
            done = time.time()
            for trace in traces:
                expected_spans += len(trace["spans"])
                finished[trace["trace_id"]] = done
        wait_for(lambda: len(receiver.all_spans()) >= expected_spans, timeout=WAIT * 4 + 30, message="every span")
        time.sleep(1)
        offset = time.time() - time.monotonic()
        with receiver.lock:
            requests = list(receiver.requests)
        roots, delays, spans = {}, [], 0
        for request in requests:
            for _, _, span in request.spans():
                spans += 1
                if not span.parent_span_id:
                    attributes = {kv.key: kv.value.string_value for kv in span.attributes}
                    roots[span.trace_id.hex()] = "mlflow.trace.state" in attributes
                    delays.append(request.at + offset - span.end_time_unix_nano / 1e9)
        complete = sum(1 for has_info in roots.values() if has_info)
        timed_out = sum(counter(p, 'mlflow_otel_proxy_traces_assembled_total{completion="timed_out"}') for p in proxies)
        return {"scenario": label, "traces": len(roots), "spans": f"{spans}/{expected_spans}", "with trace info": f"{complete}/{len(roots)}",
                "assembly timed out (per replica)": int(timed_out),
                "end → export p50": f"{statistics.median(delays):.2f} s", "max": f"{max(delays):.2f} s"}
    finally:
        if balancer:
            balancer.terminate()
            balancer.wait()
        for proxy in proxies:
            proxy.stop()
        receiver.close()


MLFLOW = MLflowServer(Path(tempfile.mkdtemp(prefix="scaling-mlflow-")))
try:
    results = [scenario("one proxy (sidecar)", 1, False), scenario("two replicas, round robin", 2, False),
               scenario("two replicas, client affinity", 2, True)]
finally:
    MLFLOW.stop()
keys = list(results[0].keys())
print("| " + " | ".join(keys) + " |")
print("|" + "---|" * len(keys))
for row in results:
    print("| " + " | ".join(str(row[k]) for k in keys) + " |")
