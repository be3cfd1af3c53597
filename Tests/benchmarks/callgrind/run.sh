#!/usr/bin/env bash
# Instruction counts of the ingest path under valgrind's callgrind: the proxy (release build, OpenTelemetry-only,
# exporting to an nginx receiver that discards) gets TRACES traces (a 5-span /v1/traces upload and its
# StartTraceV3, as a 3.17 client sends them) one after the other; a second run gets none. The difference divided
# by TRACES is the instructions one trace costs, repeatable whatever else the machine does (callgrind counts
# instructions, not time). Prints it and the functions with the most inclusive instructions.
# Usage: Tests/benchmarks/callgrind/run.sh [PROXY_BINARY]   (TRACES=300 by default)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
TRACES=${TRACES:-300}
cd "$ROOT"
command -v valgrind >/dev/null && command -v nginx >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind nginx-light >/dev/null
}
Tests/scripts/setup-python.sh
if [ -n "${1:-}" ]; then PROXY_BIN=$1; else
  swift build -c release --product mlflow-otel-proxy >/dev/null
  PROXY_BIN="$(swift build -c release --show-bin-path)/mlflow-otel-proxy"
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
.venv/bin/python "$ROOT/Tests/benchmarks/ingest/make_payload.py" "$WORK/payload" >/dev/null
source "$ROOT/Tests/benchmarks/discard-receiver.sh"
start_discard_receiver

measure() {  # traces → total instructions of the proxy process
  local count=$1 out="$WORK/callgrind.$1" proxy_port
  proxy_port=$(port)
  env -i PATH="$PATH" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$NGINX_PORT" OTEL_EXPORTER_OTLP_COMPRESSION=none \
    valgrind --tool=callgrind --callgrind-out-file="$out" "$PROXY_BIN" --listen "127.0.0.1:$proxy_port" --admin-listen off \
    --log-level warning > "$WORK/proxy.$count.log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$proxy_port/health" && break; sleep 0.2; done
  .venv/bin/python "$HERE/drive.py" "$WORK/payload" "$proxy_port" "$count" >/dev/null
  kill -TERM $pid; wait $pid || true
  awk '/^summary:/ {print $2}' "$out"
}
IDLE=$(measure 0)
LOADED=$(measure "$TRACES")
echo "instructions: start and stop $IDLE; with $TRACES traces $LOADED"
echo "instructions per trace (5 spans + trace info): $(( (LOADED - IDLE) / TRACES ))"
echo "most inclusive instructions, with $TRACES traces:"
callgrind_annotate --inclusive=yes "$WORK/callgrind.$TRACES" 2>/dev/null | grep -v "^-\|^$" | sed -n '1,60p' | cut -c1-200 | swift demangle --simplified
