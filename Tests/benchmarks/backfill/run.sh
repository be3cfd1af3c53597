#!/usr/bin/env bash
# Backfill benchmark: TRACES traces (default 10,000; 3 spans each, loaded through the server's own /v1/traces into
# a SQLite tracking store) served by `mlflow server`, backfilled by the proxy's release build to an nginx receiver that
# discards; then, in the same run, the peer: MLflow's own client reading the same traces with their spans
# (`MlflowClient.search_traces`, page by page). Prints traces/s, the backfill's CPU, the MLflow server's CPU during
# each, and the ratio. Usage: Tests/benchmarks/backfill/run.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../tools.sh"  # ROOT, the working directory, install_missing
TRACES=${TRACES:-10000}

install_missing nginx:nginx-light
Tests/scripts/setup-python.sh
source "$ROOT/Tests/benchmarks/common.sh"
TICKS=$(getconf CLK_TCK)
# CPU ticks of a process group (the MLflow server and its uvicorn worker).
group_ticks() { ps -o pid= -g "$1" | while read -r pid; do awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || true; done | awk '{s+=$1} END {print s+0}'; }

source "$ROOT/Tests/benchmarks/discard-receiver.sh"
start_discard_receiver

MLFLOW_PORT=$(port)
env -i PATH="$PATH" HOME="$WORK" MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid .venv/bin/mlflow server --host 127.0.0.1 \
  --port "$MLFLOW_PORT" --workers 1 --backend-store-uri "sqlite:///$WORK/mlflow.db" --artifacts-destination "$WORK/artifacts" \
  > "$WORK/mlflow.log" 2>&1 & MLFLOW_PID=$!
PIDS+=($MLFLOW_PID)
for _ in $(seq 600); do curl -fsS "http://127.0.0.1:$MLFLOW_PORT/health" >/dev/null 2>&1 && break; sleep 0.2; done
echo "== loading $TRACES traces through the server's /v1/traces"
env -i PATH="$PATH" HOME="$WORK" TRACES="$TRACES" .venv/bin/python "$HERE/load.py" "http://127.0.0.1:$MLFLOW_PORT"
sleep 2

echo "== backfill (release build) to nginx"
SERVER_BEFORE=$(group_ticks $MLFLOW_PID)
# The backfill under a Python wrapper that reports its wall time and CPU (user + system, from getrusage).
env -i PATH="$PATH" OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:$NGINX_PORT/v1/traces" OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf \
  .venv/bin/python -c '
import resource, subprocess, sys, time
started = time.monotonic()
with open(sys.argv[1], "w") as out, open(sys.argv[2], "w") as err:
    code = subprocess.run(sys.argv[3:], stdout=out, stderr=err).returncode
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"TIMING seconds={time.monotonic() - started:.3f} cpu={usage.ru_utime + usage.ru_stime:.3f} code={code}")
' "$WORK/backfill.out" "$WORK/backfill.err" "$PROXY_BIN" backfill --upstream "http://127.0.0.1:$MLFLOW_PORT" --experiment-name backfill-bench \
  --checkpoint "$WORK/bench.checkpoint" --log-level warning > "$WORK/timing"
SERVER_AFTER=$(group_ticks $MLFLOW_PID)
cat "$WORK/backfill.out" "$WORK/timing"
TIMING=$(grep '^TIMING' "$WORK/timing")

echo "== peer: MLflow's client reading the same traces with their spans"
PEER_BEFORE=$(group_ticks $MLFLOW_PID)
PEER=$(env -i PATH="$PATH" HOME="$WORK" .venv/bin/python "$HERE/read_with_mlflow.py" "http://127.0.0.1:$MLFLOW_PORT" | grep '^RESULT')
PEER_AFTER=$(group_ticks $MLFLOW_PID)
echo "$PEER"

.venv/bin/python - "$TRACES" "$TIMING" "$((SERVER_AFTER - SERVER_BEFORE))" "$PEER" "$((PEER_AFTER - PEER_BEFORE))" "$TICKS" \
  "$WORK/backfill.out" <<'PY'
import re, sys
traces, timing, server_ticks, peer, peer_ticks, hz, out = sys.argv[1:]
timing = dict(item.split("=") for item in timing.split()[1:])
traces, seconds, cpu, hz = int(traces), float(timing["seconds"]), float(timing["cpu"]), int(hz)
summary = open(out).read()
exported = int(re.search(r"exported now: +(\d+) traces", summary).group(1))
requests = int(re.search(r"MLflow requests: +(\d+)", summary).group(1))
peer = dict(item.split("=") for item in peer.split()[1:])
peer_seconds = float(peer["seconds"])
print()
print("| measure | value |")
print("|---|---|")
print(f"| backfill | {exported:,} of {traces:,} traces in {seconds:.1f} s: {exported / seconds:,.0f} traces/s, {requests:,} MLflow requests |")
print(f"| backfill CPU | {cpu:.1f} s ({cpu / max(exported, 1) * 1000:.2f} ms per trace), exit {timing['code']} |")
print(f"| MLflow server CPU during the backfill | {int(server_ticks) / hz:.1f} s ({int(server_ticks) / hz / seconds * 100:.0f}% of a core) |")
print(f"| peer: MLflow client reading them (search_traces with spans) | {int(peer['traces']):,} traces in {peer_seconds:.1f} s: {int(peer['traces']) / peer_seconds:,.0f} traces/s |")
print(f"| MLflow server CPU during the peer's read | {int(peer_ticks) / hz:.1f} s |")
print(f"| ratio backfill (read + translate + export) / client read, traces/s | {(exported / seconds) / (int(peer['traces']) / peer_seconds):.2f}x |")
PY
