#!/usr/bin/env bash
# Instructions per ingested trace: the proxy under valgrind's callgrind (instructions counted, not timed), N traces
# (span upload + StartTraceV3, the ingest benchmark's payload) sent one after the other after a warm-up, counted from
# the first upload until the proxy's /metrics shows all their spans exported. A count, not a time: it does not move
# with the load of a shared machine (CPU seconds per span vary by up to ±20 % between runs here), so changes of a few
# percent show. It is not the target's measure (CPU time at saturation, run.sh): one connection, and a count weighs a
# cache miss like an add.
# Usage: Tests/benchmarks/ingest/instructions.sh [BINARY...]   (default: the release build; N=500 traces)
# With two binaries it prints the second's count over the first's.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../tools.sh"  # ROOT, the working directory, install_missing
N=${N:-500}
install_missing valgrind:valgrind nginx:nginx-light
Tests/scripts/setup-python.sh
[ $# -gt 0 ] && PROXY_BIN=$1  # without arguments common.sh builds the release build and measures it
source "$ROOT/Tests/benchmarks/common.sh"
BINARIES=("$@")
[ ${#BINARIES[@]} -gt 0 ] || BINARIES=("$PROXY_BIN")
export PAYLOAD="$WORK/payload"
.venv/bin/python "$HERE/make_payload.py" "$PAYLOAD" >/dev/null
source "$ROOT/Tests/benchmarks/discard-receiver.sh"
start_discard_receiver

SPANS_PER_TRACE=$(.venv/bin/python -c "import json; print(json.load(open('$PAYLOAD.json'))['spans'])")
# Waits until the proxy has exported $2 spans (its admin /metrics), so the count covers every export the traces
# cause however slow valgrind makes them; fails the run if they do not arrive within 5 minutes.
wait_exported() {
  local admin=$1 expected=$2 exported=0
  for _ in $(seq 300); do
    exported=$(curl -fsS "http://$admin/metrics" 2>/dev/null | awk '/^mlflow_otel_proxy_spans_exported_total/ {sum += $2} END {print sum + 0}')
    [ "$exported" -ge "$expected" ] && return 0
    sleep 1  # each look is a request the proxy answers, counted too: few of them (a few thousand instructions each)
  done
  echo "only $exported of $expected spans were exported; see $WORK" >&2
  return 1
}

source "$ROOT/Tests/benchmarks/callgrind.sh"
TOTALS=()
for index in "${!BINARIES[@]}"; do
  PROXY_PORT=$(port)
  ADMIN="127.0.0.1:$(port)"
  callgrind_start "$index" "${BINARIES[$index]}" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$NGINX_PORT" \
    OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_EXPORTER_OTLP_COMPRESSION=none MLFLOW_OTEL_PROXY_ADMIN_LISTEN="$ADMIN" \
    -- --listen "127.0.0.1:$PROXY_PORT" --log-level info
  .venv/bin/python "$HERE/send_traces.py" "$PAYLOAD" "$PROXY_PORT" 200  # warm-up: caches, pools, first-use paths
  wait_exported "$ADMIN" $((200 * SPANS_PER_TRACE))
  callgrind_on
  .venv/bin/python "$HERE/send_traces.py" "$PAYLOAD" "$PROXY_PORT" "$N"
  wait_exported "$ADMIN" $(((200 + N) * SPANS_PER_TRACE))
  TOTALS+=("$(callgrind_total "$index")")
done
instruction_rows "trace" "$N" "${BINARIES[@]}" -- "${TOTALS[@]}"
