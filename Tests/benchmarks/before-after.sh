#!/usr/bin/env bash
# Before/after in one run: the ingest and passthrough benchmarks against two release builds of the proxy, alternated
# (before, after, before, after) so that drift of the machine falls on both, then the key figures side by side with
# their ratio. Usage: Tests/benchmarks/before-after.sh BEFORE_BINARY AFTER_BINARY
#   (build BEFORE from an older commit: git worktree add /tmp/before <commit> && (cd /tmp/before &&
#    Tests/scripts/build-release.sh), or the Dockerfile's build command of that commit where the script is missing;
#    ROUNDS=2, DURATION as the benchmarks take it)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BEFORE=${1:?usage: before-after.sh BEFORE_BINARY AFTER_BINARY}
AFTER=${2:?usage: before-after.sh BEFORE_BINARY AFTER_BINARY}
ROUNDS=${ROUNDS:-2}
OUT=$(mktemp -d)
for round in $(seq "$ROUNDS"); do
  for which in before after; do
    bin=$BEFORE; [ "$which" = after ] && bin=$AFTER
    echo "== round $round, $which: ingest"
    PROXY_BIN="$bin" DURATION=${DURATION:-15} "$HERE/ingest/run.sh" > "$OUT/ingest-$which-$round.txt" 2>&1 || { tail -20 "$OUT/ingest-$which-$round.txt"; exit 1; }
    echo "== round $round, $which: passthrough"
    PROXY_BIN="$bin" DURATION=${DURATION:-8} "$HERE/passthrough/run.sh" > "$OUT/passthrough-$which-$round.txt" 2>&1 || { tail -20 "$OUT/passthrough-$which-$round.txt"; exit 1; }
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import re, sys, statistics
out, rounds = sys.argv[1], int(sys.argv[2])
def ingest(text):
    sat = re.search(r"proxy ingest, saturation \| ([\d,]+) spans/s .*?p99 ([\d.]+) ms", text)
    cpu = re.search(r"proxy CPU per 100k spans \| ([\d.]+) s", text)
    clients = re.search(r"proxy, paced \(independent clients\) \| [\d,]+ calls/s, p50 [\d.]+ ms, p99 ([\d.]+) ms", text)
    clients_floor = re.search(r"floor: nginx answering the same clients \| [\d,]+ calls/s, p50 [\d.]+ ms, p99 ([\d.]+) ms", text)
    paced = re.search(r"proxy, paced in wrk's bursts \| [\d,]+ calls/s, p50 [\d.]+ ms, p99 ([\d.]+) ms", text)
    rss = re.search(r"proxy RSS \| idle (\d+) MiB", text)
    floor = re.search(r"floor: nginx answering the same bursts \| [\d,]+ calls/s, p50 [\d.]+ ms, p99 ([\d.]+) ms", text)
    empty = re.search(r"floor: CPU per intercepted call without spans .*? \| proxy (\d+) µs, nginx (\d+) µs", text)
    trace = re.search(r"proxy CPU per trace .*? \| (\d+) µs, of which (-?\d+) µs beyond", text)
    return {"CPU µs per empty upload (proxy)": float(empty.group(1)), "CPU µs per empty upload (nginx)": float(empty.group(2)),
            "CPU µs per trace beyond two empty calls": float(trace.group(2)),
            "ingest spans/s (saturation)": float(sat.group(1).replace(",", "")), "ingest CPU s per 100k spans": float(cpu.group(1)),
            "ingest p99 ms (paced ~1k calls/s, independent clients)": float(clients.group(1)),
            "floor p99 ms (nginx answering the clients)": float(clients_floor.group(1)),
            "ingest p99 ms (wrk's bursts, ~1k calls/s)": float(paced.group(1)),
            "floor p99 ms (nginx answering the bursts)": float(floor.group(1)), "idle RSS MiB": float(rss.group(1))}
def passthrough(text):
    rows = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= 4 and parts[0].startswith("mlflow-otel-proxy,"):
            rows[parts[0]] = (float(parts[1]), parts[3])
    def ms(text):
        value = float(re.sub(r"[a-z]+$", "", text)); return value / 1000 if text.endswith("us") else value * 1000 if text.endswith("s") and not text.endswith("ms") else value
    cpu = re.search(r"CPU per small call, 32 connections: proxy ([\d.]+) us, nginx as proxy ([\d.]+) us", text)
    return {"passthrough small JSON req/s (32 conn)": rows["mlflow-otel-proxy, small JSON"][0],
            "passthrough CPU µs per small call (proxy)": float(cpu.group(1)),
            "passthrough CPU µs per small call (nginx as proxy)": float(cpu.group(2)),
            "passthrough small JSON p99 ms (1 conn)": ms(rows["mlflow-otel-proxy, small JSON, 1 connection"][1]),
            "passthrough 1 MB downloads req/s": rows["mlflow-otel-proxy, 1 MB download"][0]}
results = {"before": {}, "after": {}}
for which in results:
    for r in range(1, rounds + 1):
        for parse, name in ((ingest, "ingest"), (passthrough, "passthrough")):
            for key, value in parse(open(f"{out}/{name}-{which}-{r}.txt").read()).items():
                results[which].setdefault(key, []).append(value)
print("| measure | before | after | after / before |")
print("|---|---|---|---|")
for key in results["before"]:
    b, a = statistics.median(results["before"][key]), statistics.median(results["after"][key])
    print(f"| {key} | {b:,.2f} | {a:,.2f} | {a / b:.2f} |")
print(f"(median of {rounds} alternated rounds; raw outputs in {out})")
PY
