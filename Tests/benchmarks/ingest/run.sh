#!/usr/bin/env bash
# Ingest benchmark: MLflow-shaped /v1/traces uploads (5 spans each, a new trace per request) driven by wrk at
# the proxy in OpenTelemetry-only mode (release build), exporting to an nginx receiver that discards; then the
# same load at the MLflow server's own /v1/traces ingest as the peer, in the same run.
# Prints spans/s, proxy CPU seconds per 100k spans, peak RSS, p50/p99 of the intercepted calls at saturation
# and at a paced ~1k requests/s, twice: from independent clients (paced_clients.py: calls started on their own
# schedule, the P3 measure) and in wrk's bursts (wrk's pacing puts its connections in step: ~10 calls at once every
# ~10 ms), each with the floor of that latency here (the discarding nginx answering the same load), the floor of an intercepted call (CPU per span upload without spans, the proxy's and nginx's) and what a trace
# costs beyond it, and the ratio to MLflow's ingest. Usage: Tests/benchmarks/ingest/run.sh
# (MLFLOW_OTEL_PROXY_SEMCONV=mlflow measures without the default GenAI mapping).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../tools.sh"  # ROOT, the working directory, install_missing
DURATION=${DURATION:-20}
FLOOR_DURATION=$(( DURATION / 2 ))

install_missing wrk:wrk nginx:nginx-light
Tests/scripts/setup-python.sh
source "$ROOT/Tests/benchmarks/common.sh"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS=$(getconf CLK_TCK)

export PAYLOAD="$WORK/payload"
.venv/bin/python "$HERE/make_payload.py" "$PAYLOAD"
SPANS_PER_REQUEST=$(.venv/bin/python -c "import json; print(json.load(open('$PAYLOAD.json'))['spans'])")

# The receiver that discards: nginx, one worker, answering 200 to every export.
source "$ROOT/Tests/benchmarks/discard-receiver.sh"
start_discard_receiver

PROXY_PORT=$(port)
# Idle RSS counts the binary's pages that start-up maps, and how many the kernel maps around each touched page depends
# on how the file entered the page cache: a build just written measured ~4 MiB more than the same bytes read from disk.
# The binary's cached pages are dropped first (written back, then POSIX_FADV_DONTNEED), so start-up reads it from
# disk, as a container reads its image's.
python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$PROXY_BIN"
env -i PATH="$PATH" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$NGINX_PORT" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_EXPORTER_OTLP_COMPRESSION=none \
  ${MLFLOW_OTEL_PROXY_SEMCONV:+MLFLOW_OTEL_PROXY_SEMCONV="$MLFLOW_OTEL_PROXY_SEMCONV"} \
  "$PROXY_BIN" --listen "127.0.0.1:$PROXY_PORT" --log-level info > "$WORK/proxy.log" 2>&1 & PROXY_PID=$!
PIDS+=($PROXY_PID)
for _ in $(seq 100); do grep -q "listening" "$WORK/proxy.log" && break; sleep 0.1; done
IDLE_RSS=$(awk '/VmRSS/ {print $2}' "/proc/$PROXY_PID/status")

echo "== proxy, saturation (wrk -t1 -c32, ${DURATION}s)"
BEFORE=$(cpu_ticks $PROXY_PID)
SAT=$(wrk -t1 -c32 -d"${DURATION}s" -s "$HERE/ingest.lua" "http://127.0.0.1:$PROXY_PORT" | grep '^RESULT')
AFTER=$(cpu_ticks $PROXY_PID)
echo "$SAT"
echo "== proxy, paced (wrk -t1 -c10, 10 ms between requests per connection, ${DURATION}s)"
PACED=$(RATE_DELAY_MS=10 wrk -t1 -c10 -d"${DURATION}s" -s "$HERE/ingest.lua" "http://127.0.0.1:$PROXY_PORT" | grep '^RESULT')
echo "$PACED"
echo "== proxy, paced, independent clients (paced_clients.py: 1,000 calls/s over 10 connections, ${DURATION}s)"
CLIENTS=$(.venv/bin/python "$HERE/paced_clients.py" "$PAYLOAD" "$PROXY_PORT" 1000 "$DURATION" | grep '^RESULT')
echo "$CLIENTS"
echo "== proxy, empty span uploads (the floor of an intercepted call; wrk -t1 -c32, ${FLOOR_DURATION}s)"
BEFORE_EMPTY=$(cpu_ticks $PROXY_PID)
EMPTY=$(EMPTY_UPLOADS=1 wrk -t1 -c32 -d"${FLOOR_DURATION}s" -s "$HERE/ingest.lua" "http://127.0.0.1:$PROXY_PORT" | grep '^RESULT')
AFTER_EMPTY=$(cpu_ticks $PROXY_PID)
echo "$EMPTY"
PEAK_RSS=$(awk '/VmHWM/ {print $2}' "/proc/$PROXY_PID/status")
kill -TERM $PROXY_PID; wait $PROXY_PID || true
EXPORTED=$(grep -o 'spans_exported{otlp}=[0-9]*' "$WORK/proxy.log" | cut -d= -f2 || echo 0)
DROPPED=$(grep -o 'spans_dropped{[^}]*}=[0-9]*' "$WORK/proxy.log" | tr '\n' ' ' || true)

# The floor of the paced latency on this machine: the same paced load answered by the nginx receiver that discards
# (no proxy in the path; the proxy is stopped, so the receiver is idle otherwise).
echo "== floor: the nginx receiver answering the same paced load (wrk -t1 -c10, 10 ms apart, ${DURATION}s)"
FLOOR=$(RATE_DELAY_MS=10 wrk -t1 -c10 -d"${DURATION}s" -s "$HERE/ingest.lua" "http://127.0.0.1:$NGINX_PORT" | grep '^RESULT')
echo "$FLOOR"
echo "== floor: the nginx receiver answering the same independent clients (${DURATION}s)"
CLIENTS_FLOOR=$(.venv/bin/python "$HERE/paced_clients.py" "$PAYLOAD" "$NGINX_PORT" 1000 "$DURATION" | grep '^RESULT')
echo "$CLIENTS_FLOOR"
echo "== floor: the nginx receiver answering empty span uploads (wrk -t1 -c32, ${FLOOR_DURATION}s)"
NGINX_WORKER=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1)
BEFORE_NGINX=$(cpu_ticks "$NGINX_WORKER")
NGINX_EMPTY=$(EMPTY_UPLOADS=1 wrk -t1 -c32 -d"${FLOOR_DURATION}s" -s "$HERE/ingest.lua" "http://127.0.0.1:$NGINX_PORT" | grep '^RESULT')
AFTER_NGINX=$(cpu_ticks "$NGINX_WORKER")
echo "$NGINX_EMPTY"

echo "== peer: MLflow server's own /v1/traces ingest (sqlite, wrk -t1 -c8, ${DURATION}s)"
MLFLOW_PORT=$(port)
env -i PATH="$PATH" HOME="$WORK" .venv/bin/mlflow server --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
  --backend-store-uri "sqlite:///$WORK/mlflow.db" --artifacts-destination "$WORK/artifacts" > "$WORK/mlflow.log" 2>&1 & PIDS+=($!)
for _ in $(seq 600); do curl -fsS "http://127.0.0.1:$MLFLOW_PORT/health" >/dev/null 2>&1 && break; sleep 0.2; done
PEER=$(SPANS_ONLY=1 wrk -t1 -c8 -d"${DURATION}s" -s "$HERE/ingest.lua" "http://127.0.0.1:$MLFLOW_PORT" | grep '^RESULT')
echo "$PEER"

.venv/bin/python - "$SAT" "$PACED" "$PEER" "$((AFTER - BEFORE))" "$TICKS" "$SPANS_PER_REQUEST" "$PEAK_RSS" "$IDLE_RSS" "$EXPORTED" "$DROPPED" "$FLOOR" \
  "$EMPTY" "$((AFTER_EMPTY - BEFORE_EMPTY))" "$NGINX_EMPTY" "$((AFTER_NGINX - BEFORE_NGINX))" "$CLIENTS" "$CLIENTS_FLOOR" <<'PY'
import sys
(sat, paced, peer, ticks, hz, per, peak, idle, exported, dropped, floor, empty, empty_ticks, nginx_empty, nginx_ticks, clients,
 clients_floor) = sys.argv[1:]
def parse(line): return {k: int(v) for k, v in (item.split("=") for item in line.split()[1:])}
sat, paced, peer, floor, empty, nginx_empty = parse(sat), parse(paced), parse(peer), parse(floor), parse(empty), parse(nginx_empty)
clients, clients_floor = parse(clients), parse(clients_floor)
per = int(per)
def rate(r, pairs=True):
    # At the proxy every trace is two calls (spans + StartTraceV3); the MLflow peer gets span uploads only.
    return r["requests"] * per / (2 if pairs else 1) / (r["duration_us"] / 1e6)
cpu = int(ticks) / int(hz)
spans = sat["requests"] * per // 2
print()
print("| measure | value |")
print("|---|---|")
print(f"| proxy ingest, saturation | {rate(sat):,.0f} spans/s ({sat['requests'] / (sat['duration_us'] / 1e6):,.0f} intercepted calls/s), p50 {sat['p50_us']/1000:.2f} ms, p99 {sat['p99_us']/1000:.2f} ms |")
print(f"| proxy CPU per 100k spans | {cpu / spans * 100000:.2f} s ({cpu:.1f} s for {spans:,} spans) |")
# The floor of an intercepted call: CPU per empty span upload, the proxy's and nginx's; what a trace (two calls)
# costs beyond two such calls is the trace work itself (decoding, assembly, translation, shaping, export).
empty_us = int(empty_ticks) / int(hz) * 1e6 / max(empty["requests"], 1)
nginx_us = int(nginx_ticks) / int(hz) * 1e6 / max(nginx_empty["requests"], 1)
trace_us = cpu * 1e6 / max(sat["requests"] / 2, 1)
print(f"| floor: CPU per intercepted call without spans (empty upload, saturation) | proxy {empty_us:.0f} µs, nginx {nginx_us:.0f} µs |")
print(f"| proxy CPU per trace (2 calls, {per} spans) | {trace_us:.0f} µs, of which {trace_us - 2 * empty_us:.0f} µs beyond two empty calls |")
def latency(r): return f"{r['requests'] / (r['duration_us'] / 1e6):,.0f} calls/s, p50 {r['p50_us']/1000:.2f} ms, p99 {r['p99_us']/1000:.2f} ms"
print(f"| proxy, paced (independent clients) | {latency(clients)} |")
print(f"| floor: nginx answering the same clients | {latency(clients_floor)} |")
print(f"| proxy, paced in wrk's bursts | {latency(paced)} |")
print(f"| floor: nginx answering the same bursts | {latency(floor)} |")
print(f"| proxy RSS | idle {int(idle)/1024:.0f} MiB, peak {int(peak)/1024:.0f} MiB |")
print(f"| spans exported / dropped | {exported} / {dropped.strip() or 'none'} |")
print(f"| MLflow server ingest (peer) | {rate(peer, pairs=False):,.0f} spans/s, p50 {peer['p50_us']/1000:.2f} ms, p99 {peer['p99_us']/1000:.2f} ms, errors {peer['errors_status']} |")
print(f"| ratio proxy / MLflow | {rate(sat) / max(rate(peer, pairs=False), 1e-9):,.1f}x |")
errors = sat["errors_status"] + sat["errors_connect"] + sat["errors_timeout"] + paced["errors_status"]
print(f"| non-2xx / socket errors at the proxy | {errors} |")
PY
