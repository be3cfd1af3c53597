#!/usr/bin/env bash
# Fuzzes every decoder of untrusted input with libFuzzer, seeded from the captured MLflow exchanges.
#   Tests/scripts/fuzz.sh                 each target for FUZZ_SECONDS (default 30) seconds (what CI runs)
#   Tests/scripts/fuzz.sh --runs 1000000  each target for 10^6 executions
#   Tests/scripts/fuzz.sh --runs 1000000 otlp-protobuf   one target
# A crash stops the run with libFuzzer's report; the crashing input is kept in .build-fuzz/crashes/. Each one
# found becomes a Swift regression test and goes into Tests/fuzz/regressions/<target>/, which every run replays
# first (as part of the corpus).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=""
if [ "${1:-}" = "--runs" ]; then RUNS="$2"; shift 2; fi
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(otlp-protobuf otlp-json otlp-gzip traces-json trace-info-v3 trace-info-v2 genai-json config-file mlflow-read)

export MLFLOW_OTEL_PROXY_FUZZ=1
swift build -c release --scratch-path .build-fuzz --product ProxyFuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
BIN="$(swift build -c release --scratch-path .build-fuzz --show-bin-path)/ProxyFuzz"

# Seed corpora: the request bodies every captured client sent, by the decoder that reads them.
SEEDS=.build-fuzz/seeds
rm -rf "$SEEDS"
python3 Tests/scripts/fuzz_seeds.py Tests/TestSupport/Fixtures/mlflow "$SEEDS"
mkdir -p "$SEEDS/config-file" .build-fuzz/crashes
cat > "$SEEDS/config-file/full.yaml" <<'YAML'
listen: 127.0.0.1:5000
admin_listen: off
upstream: { url: http://mlflow:5000, timeout: 30s, headers: { Authorization: "Bearer ${env:FUZZ_SECRET}" }, client_authorization: replace }
mode: dual
inbound_auth: { tokens: ["${env:FUZZ_SECRET}"] }
limits: { max_header_bytes: 8192, request_read_timeout: 5s, idle_timeout: 0, max_connections: 10, max_passthrough_body_bytes: 1000 }
batch: { schedule_delay: 100ms, max_export_batch_size: 10, max_queue_size: 100 }
assembly: { max_traces_in_flight: 5, max_spans_per_trace: 5, max_bytes_held: 1000 }
service: { name: svc, resource_attributes: { a: b } }
destinations:
  dd: { profile: datadog, site: datadoghq.eu, api_key: "${env:FUZZ_SECRET}", metrics: { enabled: true } }
  tempo: { endpoint: "https://tempo:4318", compression: gzip, timeout: 3s, headers: { x: y } }
  grpc: { endpoint: "collector:4317", protocol: grpc, tls: { insecure: true } }
YAML
printf 'destinations:\n  a: { profile: honeycomb, api_key: k }\n  b: { profile: newrelic, api_key: k, region: eu }\n' > "$SEEDS/config-file/profiles.yaml"
# What a 3.17.2 server answered when the client read a trace back (captured), as the backfill reads it.
mkdir -p "$SEEDS/mlflow-read"
cp Tests/BackfillTests/Fixtures/readback-traces-get.json "$SEEDS/mlflow-read/"

for target in "${TARGETS[@]}"; do
  corpus=".build-fuzz/corpus/$target"
  regressions="Tests/fuzz/regressions/$target"
  mkdir -p "$corpus" "$SEEDS/$target" "$regressions"
  if [ -n "$RUNS" ]; then limit=(-runs="$RUNS"); else limit=(-max_total_time="${FUZZ_SECONDS:-30}"); fi
  echo "== $target"
  "$BIN" "$target" "${limit[@]}" -max_len=262144 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix=".build-fuzz/crashes/$target-" "$corpus" "$SEEDS/$target" "$regressions" 2>&1 | grep -E "^#|Done|stat::number_of_executed_units|ERROR|SUMMARY|==" | tail -4
  test "${PIPESTATUS[0]}" -eq 0
done
