#!/usr/bin/env bash
# Passthrough benchmark: wrk through mlflow-otel-proxy (MLflow-only mode, release build) and, in the same run,
# through nginx (one worker, proxy_pass, keep-alive to the upstream) to the same fast upstream (another nginx
# worker answering a small MLflow JSON call and serving a 1 MB artifact). Reports req/s and p50/p99 and the
# ratio. Usage: Tests/benchmarks/passthrough/run.sh   (DURATION=10 seconds per run by default)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../tools.sh"  # ROOT, the working directory, install_missing
DURATION=${DURATION:-10}

install_missing wrk:wrk nginx:nginx-light
source "$ROOT/Tests/benchmarks/common.sh"

UPSTREAM=$(port); NGINX_PROXY=$(port); PROXY=$(port); ADMIN=$(port)
mkdir -p "$WORK/www/api/2.0/mlflow-artifacts/artifacts/0"
head -c 1048576 /dev/urandom > "$WORK/www/api/2.0/mlflow-artifacts/artifacts/0/model.bin"
source "$ROOT/Tests/benchmarks/nginx.sh"
source "$HERE/upstream.sh"
{
  nginx_preamble
  cat <<CONF
http {
  access_log off;
  client_body_temp_path $WORK; proxy_temp_path $WORK;
  # The fast upstream.
$(fast_upstream_server "$UPSTREAM")
  # The peer: nginx as a reverse proxy to the same upstream.
  upstream mlflow { server 127.0.0.1:$UPSTREAM; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PROXY;
    location / { proxy_pass http://mlflow; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
}
CONF
} > "$WORK/nginx.conf"
nginx -c "$WORK/nginx.conf" & PIDS+=($!)
env -i PATH="$PATH" "$PROXY_BIN" --upstream "http://127.0.0.1:$UPSTREAM" --listen "127.0.0.1:$PROXY" --admin-listen "127.0.0.1:$ADMIN" \
  --log-level warning > "$WORK/proxy.log" 2>&1 & PROXY_PID=$!
PIDS+=($PROXY_PID)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$ADMIN/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.5

# CPU time (clock ticks, user + system) of a process so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# nginx's one worker (the child of the master started above) serves both the upstream and the nginx peer.
NGINX_WORKER=$(awk -v master="${PIDS[0]}" '$4 == master {print $1; exit}' /proc/[0-9]*/stat 2>/dev/null)
run() {  # label port path connections
  local proxy_before nginx_before
  proxy_before=$(ticks "$PROXY_PID"); nginx_before=$(ticks "$NGINX_WORKER")
  wrk -t1 -c"$4" -d"${DURATION}s" --latency "http://127.0.0.1:$2$3" > "$WORK/wrk.txt"
  local rps p50 p99 requests
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$WORK/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/wrk.txt")
  requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
  echo "$1|$rps|$p50|$p99|$requests|$(($(ticks "$PROXY_PID") - proxy_before))|$(($(ticks "$NGINX_WORKER") - nginx_before))"
}
SMALL=/api/2.0/mlflow/experiments/get?experiment_id=1
BIG=/api/2.0/mlflow-artifacts/artifacts/0/model.bin
{
  run "direct (no proxy), small JSON" "$UPSTREAM" "$SMALL" 32
  run "nginx proxy_pass, small JSON" "$NGINX_PROXY" "$SMALL" 32
  run "mlflow-otel-proxy, small JSON" "$PROXY" "$SMALL" 32
  run "nginx proxy_pass, small JSON, 1 connection" "$NGINX_PROXY" "$SMALL" 1
  run "mlflow-otel-proxy, small JSON, 1 connection" "$PROXY" "$SMALL" 1
  run "nginx proxy_pass, 1 MB download" "$NGINX_PROXY" "$BIG" 8
  run "mlflow-otel-proxy, 1 MB download" "$PROXY" "$BIG" 8
} | tee "$WORK/results.txt"
echo
echo "| run | req/s | p50 | p99 |"
echo "|---|---|---|---|"
awk -F'|' '{print "| " $1 " | " $2 " | " $3 " | " $4 " |"}' "$WORK/results.txt"
python3 - "$WORK/results.txt" "$(getconf CLK_TCK)" <<'PY'
import sys
table = {line.split("|")[0]: line.strip().split("|")[1:] for line in open(sys.argv[1])}
rows = {label: float(values[0]) for label, values in table.items()}
for kind in ("small JSON", "small JSON, 1 connection", "1 MB download"):
    print(f"ratio proxy / nginx, {kind}: {rows[f'mlflow-otel-proxy, {kind}'] / rows[f'nginx proxy_pass, {kind}']:.2f}x")
# CPU per small call at 32 connections: the proxy's own process; nginx as a proxy is its worker's time in the nginx run
# less the upstream's share (the same worker's time per call while it served the proxy's run as the upstream alone).
tick_us = 1e6 / int(sys.argv[2])
requests, proxy_ticks, _ = (int(value) for value in table["mlflow-otel-proxy, small JSON"][3:6])
upstream_us = int(table["mlflow-otel-proxy, small JSON"][5]) * tick_us / requests
nginx_requests, _, nginx_ticks = (int(value) for value in table["nginx proxy_pass, small JSON"][3:6])
proxy_us = proxy_ticks * tick_us / requests
nginx_us = nginx_ticks * tick_us / nginx_requests - upstream_us
print(f"CPU per small call, 32 connections: proxy {proxy_us:.1f} us, nginx as proxy {nginx_us:.1f} us "
      f"(its worker {nginx_ticks * tick_us / nginx_requests:.1f} us less the upstream's {upstream_us:.1f} us): {proxy_us / nginx_us:.2f}x")
PY
