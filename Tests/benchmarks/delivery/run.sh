#!/usr/bin/env bash
# Delivery benchmark (release build, everything on 127.0.0.1):
#  1. one destination dead (its port closed) next to a healthy one (nginx that discards), under a paced load of
#     about 10k spans/s for DEAD_DURATION seconds (300 by default), memory queue: throughput at the healthy
#     destination, the proxy's RSS sampled every second against the configured queue bound, what was dropped;
#  2. the same with the disk spool on: RSS and the spool's size against its bound;
#  3. spool write throughput: the proxy at saturation with only a dead destination, spool off / on / on with
#     fsync; the peer, in the same run: SQLite in WAL mode storing the same batch bytes (one transaction per
#     batch, synchronous=NORMAL and FULL), the design the spool could have used instead.
# Usage: Tests/benchmarks/delivery/run.sh   (DEAD_DURATION=300 DURATION=20 by default)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../tools.sh"  # ROOT, the working directory, install_missing
INGEST="$ROOT/Tests/benchmarks/ingest"
DEAD_DURATION=${DEAD_DURATION:-300}
DURATION=${DURATION:-20}
QUEUE_BYTES=$((64 * 1024 * 1024))
SPOOL_BYTES=$((256 * 1024 * 1024))

install_missing wrk:wrk nginx:nginx-light
Tests/scripts/setup-python.sh
PROXY_BIN="$(Tests/scripts/build-release.sh)"  # the Dockerfile's build

WORK=$(mktemp -d)
PIDS=()
# The big parts (spools, the peer's files) are removed at the end; samples, logs and results stay in $WORK.
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"/spool-* "$WORK"/peer.*
  echo "samples, logs and results: $WORK"
}
trap cleanup EXIT
port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export PAYLOAD="$WORK/payload"
.venv/bin/python "$INGEST/make_payload.py" "$PAYLOAD"
SPANS_PER_REQUEST=$(.venv/bin/python -c "import json; print(json.load(open('$PAYLOAD.json'))['spans'])")

source "$ROOT/Tests/benchmarks/discard-receiver.sh"
start_discard_receiver  # the healthy destination
DEAD_PORT=$(port)  # nothing listens here: the dead destination

# start_proxy NAME CONFIG_YAML: starts the proxy with that configuration; sets PROXY_PID and PROXY_PORT.
start_proxy() {
  PROXY_PORT=$(port)
  printf '%s\n' "$2" > "$WORK/$1.yaml"
  env -i PATH="$PATH" "$PROXY_BIN" --config "$WORK/$1.yaml" --listen "127.0.0.1:$PROXY_PORT" --log-level info > "$WORK/$1.log" 2>&1 &
  PROXY_PID=$!
  PIDS+=($PROXY_PID)
  for _ in $(seq 100); do grep -q "listening" "$WORK/$1.log" && break; sleep 0.1; done
}
stop_proxy() { kill -TERM "$PROXY_PID"; wait "$PROXY_PID" || true; }
counter() { grep -o "$2=[0-9]*" "$WORK/$1.log" | tail -1 | cut -d= -f2 || echo 0; }
# sample NAME SECONDS [DIR]: every second, the proxy's RSS (KiB) and the size of DIR (bytes) into NAME.samples.
sample() {
  for _ in $(seq "$2"); do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$PROXY_PID/status" 2>/dev/null || true)
    size=0
    if [ -n "${3:-}" ] && [ -d "$3" ]; then size=$( (du -sb "$3" 2>/dev/null || true) | cut -f1 | head -1); fi
    echo "${rss:-0} ${size:-0}" >> "$WORK/$1.samples"
    sleep 1
  done
}

DESTINATIONS="destinations:
  healthy: { endpoint: \"http://127.0.0.1:$NGINX_PORT\", protocol: http/protobuf }
  dead: { endpoint: \"http://127.0.0.1:$DEAD_PORT\", protocol: http/protobuf }"

# ~10k spans/s: each trace is two calls (spans, then trace info), so ~4k calls/s: 44 connections, 10 ms apart.
for phase in memory spool; do
  if [ "$phase" = memory ]; then
    start_proxy dead-$phase "$DESTINATIONS
sending_queue: { max_bytes: $QUEUE_BYTES }"
  else
    start_proxy dead-$phase "$DESTINATIONS
sending_queue: { max_bytes: $QUEUE_BYTES, spool: { directory: \"$WORK/spool-$phase\", max_bytes: $SPOOL_BYTES } }"
  fi
  IDLE_RSS=$(awk '/VmRSS/ {print $2}' "/proc/$PROXY_PID/status")
  echo "== dead destination + healthy one, $phase queue, paced ~10k spans/s for ${DEAD_DURATION}s (idle RSS $((IDLE_RSS / 1024)) MiB)"
  SPOOL_DIR=""
  if [ "$phase" = spool ]; then SPOOL_DIR="$WORK/spool-$phase/dead"; fi  # the dead destination's spool (its bound)
  sample dead-$phase "$DEAD_DURATION" "$SPOOL_DIR" &
  SAMPLER=$!
  RESULT=$(RATE_DELAY_MS=10 wrk -t1 -c44 -d"${DEAD_DURATION}s" -s "$INGEST/ingest.lua" "http://127.0.0.1:$PROXY_PORT" | grep '^RESULT')
  wait $SAMPLER || true
  JOURNAL=0
  if [ -d "$WORK/spool-$phase/.intake" ]; then JOURNAL=$(du -sb "$WORK/spool-$phase/.intake" | cut -f1); fi
  stop_proxy
  echo "$RESULT idle_rss_kib=$IDLE_RSS journal_bytes=$JOURNAL" > "$WORK/dead-$phase.result"
  cat "$WORK/dead-$phase.result"
done

# Spool write throughput: only the dead destination, so every batch goes to the queue (and the spool) and stays;
# with the spool on, every upload is also journaled (SQLite WAL) until its spans are spooled.
for variant in off on fsync; do
  case $variant in
    off) QUEUE="sending_queue: { max_bytes: $QUEUE_BYTES }" ;;
    on) QUEUE="sending_queue: { max_bytes: $QUEUE_BYTES, spool: { directory: \"$WORK/spool-$variant\", max_bytes: 4294967296 } }" ;;
    fsync) QUEUE="sending_queue: { max_bytes: $QUEUE_BYTES, spool: { directory: \"$WORK/spool-$variant\", max_bytes: 4294967296, fsync: true } }" ;;
  esac
  start_proxy spool-$variant "destinations:
  dead: { endpoint: \"http://127.0.0.1:$DEAD_PORT\", protocol: http/protobuf }
$QUEUE"
  echo "== spool $variant, saturation (wrk -t1 -c32, ${DURATION}s)"
  RESULT=$(wrk -t1 -c32 -d"${DURATION}s" -s "$INGEST/ingest.lua" "http://127.0.0.1:$PROXY_PORT" | grep '^RESULT')
  sleep 2  # the last batches seal
  SPOOLED=0
  FILES=0
  if [ -d "$WORK/spool-$variant/dead" ]; then  # the destination's batches only (the intake journal is beside it)
    SPOOLED=$(du -sb "$WORK/spool-$variant/dead" | cut -f1)
    FILES=$(find "$WORK/spool-$variant/dead" -name '*.otlp' | wc -l)
  fi
  stop_proxy
  echo "$RESULT spool_bytes=${SPOOLED:-0} spool_files=$FILES" > "$WORK/spool-$variant.result"
  cat "$WORK/spool-$variant.result"
done

echo "== peer: SQLite WAL storing the same batches (${DURATION}s each for synchronous=NORMAL and FULL)"
BATCH=$(find "$WORK/spool-on" -name '*.otlp' -print -quit)
.venv/bin/python - "$BATCH" "$WORK/peer.db" "$DURATION" > "$WORK/peer.result" <<'PY'
import os, sqlite3, sys, time
batch = open(sys.argv[1], "rb").read()
# The spool's own write path with the same system calls as SpoolDirectory.write (temporary file, write, fsync
# when on, rename, directory fsync when on), so the two storage designs compare on the same batches.
for fsync in (False, True):
    directory = sys.argv[2] + (".files-fsync" if fsync else ".files")
    os.makedirs(directory)
    count, started = 0, time.monotonic()
    while time.monotonic() - started < float(sys.argv[3]):
        temporary = f"{directory}/.incoming-{count}"
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.write(fd, batch)
        if fsync:
            os.fsync(fd)
        os.close(fd)
        os.rename(temporary, f"{directory}/{count:020d}-0.otlp")
        if fsync:
            dfd = os.open(directory, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)
        count += 1
    elapsed = time.monotonic() - started
    print(f"FILES fsync={int(fsync)} batches={count} bytes={count * len(batch)} seconds={elapsed:.3f} batch_bytes={len(batch)}")
for synchronous in ("NORMAL", "FULL"):
    path = sys.argv[2] + synchronous
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE batches (sequence INTEGER PRIMARY KEY, spans INTEGER, body BLOB)")
    count, started = 0, time.monotonic()
    while time.monotonic() - started < float(sys.argv[3]):
        db.execute("BEGIN")
        db.execute("INSERT INTO batches (spans, body) VALUES (?, ?)", (0, batch))
        db.execute("COMMIT")
        count += 1
    elapsed = time.monotonic() - started
    print(f"PEER synchronous={synchronous} batches={count} bytes={count * len(batch)} seconds={elapsed:.3f} batch_bytes={len(batch)}")
    db.close()
PY
cat "$WORK/peer.result"

.venv/bin/python - "$WORK" "$SPANS_PER_REQUEST" "$QUEUE_BYTES" "$SPOOL_BYTES" <<'PY'
import pathlib, re, sys
work, per, queue_bytes, spool_bytes = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def fields(text): return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", text)}
def counter(log, name):
    match = re.findall(re.escape(name) + r"=(\d+)", (work / log).read_text())
    return int(match[-1]) if match else 0
print()
print("| dead destination for the run, ~10k spans/s offered | memory queue | spool |")
print("|---|---|---|")
rows = {}
for phase in ("memory", "spool"):
    r = fields((work / f"dead-{phase}.result").read_text())
    samples = [tuple(map(int, line.split())) for line in (work / f"dead-{phase}.samples").read_text().split("\n") if len(line.split()) == 2]
    seconds = r["duration_us"] / 1e6
    offered = r["requests"] * per / 2 / seconds
    log = f"dead-{phase}.log"
    rows[phase] = {
        "offered": f"{offered:,.0f} spans/s ({r['requests'] / seconds:,.0f} calls/s), p50 {r['p50_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms",
        "healthy": f"{counter(log, 'spans_exported{healthy}') / seconds:,.0f} spans/s ({counter(log, 'spans_exported{healthy}'):,} spans)",
        "rss": f"idle {r['idle_rss_kib'] / 1024:.0f} MiB, peak {max(s[0] for s in samples) / 1024:.0f} MiB, last {samples[-1][0] / 1024:.0f} MiB",
        "growth": f"{(max(s[0] for s in samples) - r['idle_rss_kib']) / 1024:.0f} MiB (queue bound {queue_bytes / 2**20:.0f} MiB)",
        "spool": (f"dead destination's spool peak {max(s[1] for s in samples) / 2**20:.0f} MiB (bound {spool_bytes / 2**20:.0f} MiB);"
                  f" intake journal {r['journal_bytes'] / 2**20:.0f} MiB at the end") if phase == "spool" else "off",
        "dropped": f"{counter(log, 'spans_dropped{dead,queue_full}'):,} at the dead one (queue_full); healthy {counter(log, 'spans_dropped{healthy,queue_full}')}",
        "errors": f"{int(r['errors_status'] + r['errors_connect'] + r['errors_timeout'])}",
    }
for label, key in (("offered load (wrk)", "offered"), ("healthy destination received", "healthy"), ("proxy RSS", "rss"),
                   ("RSS growth over idle", "growth"), ("spool size", "spool"), ("spans dropped", "dropped"), ("client errors", "errors")):
    print(f"| {label} | {rows['memory'][key]} | {rows['spool'][key]} |")
print()
print("| spool write throughput (saturation, dead destination) | spans/s accepted | spool MiB/s | p99 |")
print("|---|---|---|---|")
rates = {}
for variant in ("off", "on", "fsync"):
    r = fields((work / f"spool-{variant}.result").read_text())
    seconds = r["duration_us"] / 1e6
    rates[variant] = r.get("spool_bytes", 0) / seconds / 2**20
    print(f"| spool {variant} | {r['requests'] * per / 2 / seconds:,.0f} | {rates[variant]:.1f} ({int(r.get('spool_files', 0)):,} files) | {r['p99_us'] / 1000:.2f} ms |")
print()
print("| storing whole batches (the same bytes, one per write) | MiB/s | batches/s |")
print("|---|---|---|")
measured = {}
for line in (work / "peer.result").read_text().splitlines():
    p = fields(line)
    if line.startswith("FILES"):
        label, key = ("spool files (write-then-rename)" + (", fsync" if p["fsync"] else ""), "fsync" if p["fsync"] else "plain")
    else:
        full = "FULL" in line
        label, key = (f"peer: SQLite WAL, synchronous={'FULL' if full else 'NORMAL'}", "sqlite-fsync" if full else "sqlite-plain")
    measured[key] = p["bytes"] / p["seconds"] / 2**20
    print(f"| {label} ({int(p['batch_bytes']):,}-byte batches) | {measured[key]:.1f} | {p['batches'] / p['seconds']:,.0f} |")
print(f"| **ratio spool files / SQLite WAL** | **{measured['plain'] / measured['sqlite-plain']:.2f}×** without fsync, "
      f"**{measured['fsync'] / measured['sqlite-fsync']:.2f}×** with fsync | |")
PY
