#!/usr/bin/env bash
# Two-replica test for docs/scaling.md: two proxies (release build, OpenTelemetry-only, no upstream) behind one
# nginx, once balancing round robin (a Kubernetes Service without affinity) and once with all of a client's
# calls on one replica (sessionAffinity: ClientIP), and one proxy alone (a sidecar) as the reference. The real
# MLflow 3.17.2 client runs the e2e agent workload RUNS times through each; an OTLP receiver counts the spans,
# the traces that arrived with their trace info, and the delay from a trace's end to its export.
# Usage: Tests/benchmarks/scaling/run.sh   (RUNS=10, TRACE_INFO_WAIT=3 by default)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../tools.sh"  # ROOT, the working directory, install_missing
install_missing nginx:nginx-light
Tests/scripts/setup-python.sh
MLFLOW_OTEL_PROXY_BIN="$(Tests/scripts/build-release.sh)" \
  .venv/bin/python "$HERE/scaling.py" "${RUNS:-10}" "${TRACE_INFO_WAIT:-3}"
