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
source "$HERE/../tools.sh"  # ROOT, the working directory, install_missing
N=${N:-2000}
install_missing valgrind:valgrind nginx:nginx-light
[ $# -gt 0 ] && PROXY_BIN=$1  # without arguments common.sh builds the release build and measures it
source "$ROOT/Tests/benchmarks/common.sh"
BINARIES=("$@")
[ ${#BINARIES[@]} -gt 0 ] || BINARIES=("$PROXY_BIN")

UPSTREAM=$(port)
source "$ROOT/Tests/benchmarks/nginx.sh"
source "$HERE/upstream.sh"
{
  nginx_preamble
  cat <<CONF
http {
  access_log off;
$(fast_upstream_server "$UPSTREAM")
}
CONF
} > "$WORK/nginx.conf"
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

source "$ROOT/Tests/benchmarks/callgrind.sh"
TOTALS=()
for index in "${!BINARIES[@]}"; do
  PROXY_PORT=$(port)
  callgrind_start "$index" "${BINARIES[$index]}" MLFLOW_OTEL_PROXY_ADMIN_LISTEN="127.0.0.1:$(port)" \
    -- --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$PROXY_PORT" --log-level info
  python3 "$WORK/send.py" "$PROXY_PORT" 300  # warm-up: caches, the upstream connection, first-use paths
  callgrind_on
  python3 "$WORK/send.py" "$PROXY_PORT" "$N"
  TOTALS+=("$(callgrind_total "$index")")
done
instruction_rows "passthrough call" "$N" "${BINARIES[@]}" -- "${TOTALS[@]}"
