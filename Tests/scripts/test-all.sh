#!/usr/bin/env bash
# Runs every test: the Swift unit tests under AddressSanitizer and ThreadSanitizer, a short libFuzzer run of
# every decoder, then the end-to-end suite (a real `mlflow server`, the real MLflow Python clients, the proxy
# binary and OTLP receivers, all on 127.0.0.1) against the ASan-built and the TSan-built proxy, and the
# memory-bound and packaging checks against the release binary. Installs what it needs itself: the Debian
# packages (as root) and the Python virtualenvs.
#   Tests/scripts/test-all.sh [pytest arguments for the end-to-end runs]
set -euo pipefail
cd "$(dirname "$0")/../.."
Tests/scripts/install-system-packages.sh
Tests/scripts/setup-python.sh

# Unit tests under both sanitizers; each build also makes a sanitized proxy binary for the end-to-end runs.
swift build --build-tests --sanitize=address --scratch-path .build-asan
LSAN_OPTIONS="suppressions=$PWD/Tests/scripts/lsan-suppressions.txt" swift test --skip-build --sanitize=address --scratch-path .build-asan
swift build --build-tests --sanitize=thread --scratch-path .build-tsan
swift test --skip-build --sanitize=thread --scratch-path .build-tsan

# The release binary with the Dockerfile's flags, for the packaging test and the memory bounds.
swift build -c release --static-swift-stdlib --product mlflow-otel-proxy
RELEASE_BIN="$(swift build -c release --show-bin-path)/mlflow-otel-proxy"
export MLFLOW_OTEL_PROXY_RELEASE_BIN="$RELEASE_BIN"

# Every decoder under libFuzzer (with ASan) for a short, fixed time; Tests/scripts/fuzz.sh --runs 1000000 for more.
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" Tests/scripts/fuzz.sh

PYTEST=(.venv/bin/python -m pytest -q -p no:cacheprovider)
# The end-to-end suite against the ASan proxy (any memory error aborts it and fails the test that caused it;
# leak checking is off: the Swift runtime's process-lifetime caches read as leaks at exit)...
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 MLFLOW_OTEL_PROXY_SANITIZER=address \
  MLFLOW_OTEL_PROXY_BIN="$(swift build --scratch-path .build-asan --show-bin-path)/mlflow-otel-proxy" \
  "${PYTEST[@]}" Tests/e2e "$@"
# ...and against the TSan proxy (any data race aborts it; see tsan-suppressions.txt for the exceptions;
# the client matrix is left out: it repeats test_modes with more client versions and would add minutes).
TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/Tests/scripts/tsan-suppressions.txt" MLFLOW_OTEL_PROXY_SANITIZER=thread \
  MLFLOW_OTEL_PROXY_BIN="$(swift build --scratch-path .build-tsan --show-bin-path)/mlflow-otel-proxy" \
  "${PYTEST[@]}" Tests/e2e --deselect Tests/e2e/test_packaging.py --deselect Tests/e2e/test_client_matrix.py "$@"
# ...and the memory bounds, which sanitizers distort, against the release binary.
MLFLOW_OTEL_PROXY_BIN="$RELEASE_BIN" "${PYTEST[@]}" Tests/e2e -k "large_artifacts_stream or memory_stays_bounded"
