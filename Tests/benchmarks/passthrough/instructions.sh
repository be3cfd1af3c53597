#!/usr/bin/env bash
# Instructions per passthrough call: the proxy under valgrind's callgrind (instructions counted, not timed), N small
# MLflow API calls (GET experiments/get, the passthrough benchmark's small call) sent one after the other on one
# kept-alive connection after a warm-up, to an nginx upstream on 127.0.0.1. A count, not a time: it does not move with
# the load of a shared machine, so changes of a few percent show. It is not the target's measure (req/s against nginx,
# run.sh): one connection, user-space instructions only (the system calls' kernel time is not in it), and a count
# weighs a cache miss like an add.
# Usage: Tests/benchmarks/passthrough/instructions.sh [BINARY...]   (default: the release build; N=2000 calls)
# With two binaries it prints the second's count over the first's.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
N=${N:-2000}
cd "$ROOT"
if ! command -v valgrind >/dev/null || ! command -v nginx >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind nginx-light >/dev/null
fi
[ $# -gt 0 ] && PROXY_BIN=$1  # without arguments common.sh builds the release build and measures it
source "$ROOT/Tests/benchmarks/common.sh"
BINARIES=("$@")
[ ${#BINARIES[@]} -gt 0 ] || BINARIES=("$PROXY_BIN")

UPSTREAM=$(port)
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK; proxy_temp_path $WORK;
  server {
    listen 127.0.0.1:$UPSTREAM;
    location = /api/2.0/mlflow/experiments/get {
      default_type application/json;
      return 200 '{"experiment": {"experiment_id": "1", "name": "bench", "lifecycle_stage": "active", "artifact_location": "mlflow-artifacts:/1"}}';
    }
  }
}
CONF
nginx -c "$WORK/nginx.conf" & PIDS+=($!)
cat > "$WORK/send.py" <<'PY'
import http.client, sys
connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    connection.request("GET", "/api/2.0/mlflow/experiments/get?experiment_id=1", headers={"User-Agent": "bench", "Accept": "*/*"})
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status
PY

COUNTS=()
for index in "${!BINARIES[@]}"; do
  # Valgrind 3.19 cannot read the DWARF 5 debug info of these builds: a copy without it (the symbols stay).
  BIN="$WORK/proxy-$index"
  strip --strip-debug -o "$BIN" "${BINARIES[$index]}"
  PROXY_PORT=$(port)
  env -i PATH="$PATH" MLFLOW_OTEL_PROXY_ADMIN_LISTEN="127.0.0.1:$(port)" \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind-$index.out" \
    "$BIN" --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$PROXY_PORT" --log-level info > "$WORK/proxy-$index.log" 2>&1 & PROXY_PID=$!
  PIDS+=($PROXY_PID)
  for _ in $(seq 600); do grep -q "\] listening" "$WORK/proxy-$index.log" && break; sleep 0.2; done
  python3 "$WORK/send.py" "$PROXY_PORT" 300  # warm-up: caches, the upstream connection, first-use paths
  callgrind_control -i on "$PROXY_PID" >/dev/null
  python3 "$WORK/send.py" "$PROXY_PORT" "$N"
  callgrind_control -d "$PROXY_PID" >/dev/null
  callgrind_control -i off "$PROXY_PID" >/dev/null
  kill -TERM "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
  TOTAL=$(awk '/^(summary|totals):/ {print $2; exit}' "$WORK"/callgrind-$index.out.*)
  COUNTS+=("$TOTAL")
  echo "| ${BINARIES[$index]} | $((TOTAL / N)) instructions per passthrough call ($N calls) |"
done
if [ ${#COUNTS[@]} -eq 2 ]; then
  python3 -c "import sys; print(f'| second / first | {int(sys.argv[2]) / int(sys.argv[1]):.3f} |')" "${COUNTS[0]}" "${COUNTS[1]}"
fi
