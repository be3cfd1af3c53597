#!/usr/bin/env bash
# Runs the tests in two tiers. Installs what it needs itself: the Debian packages (as root) and the Python
# virtualenvs with the pinned packages.
#
#   Tests/scripts/test-all.sh [pytest arguments]          the everyday tier (about 10 minutes from a fresh clone, 2 cores)
#   Tests/scripts/test-all.sh --full [pytest arguments]   the full tier, what CI runs (about 40 minutes)
#   Tests/scripts/test-all.sh -k reload                   one area: pytest arguments go to the end-to-end runs
#
# Everyday: one debug build, the Swift unit tests, the whole end-to-end suite against that build (a real
# `mlflow server`, the real MLflow clients 2.22.5, 3.1.4 and 3.17.2, OTLP receivers, all on 127.0.0.1; the
# packaging and Helm chart checks are part of it). Tests marked `serial` (timing, load and fault tests) run after
# the others, one at a time; the rest run on several pytest-xdist workers (most of their time is waiting).
#
# Full: the same unit and end-to-end tests, but against a debug build made with AddressSanitizer (a memory error
# aborts the proxy and fails the test), then again under ThreadSanitizer (any data race fails), then the release
# binary built as the Dockerfile builds it (the whole suite again, then the tests marked `release`: the statically
# linked image binary; the memory bounds, which sanitizers distort, assert in this pass), then a timed libFuzzer run
# of every decoder. The ASan pass replaces the plain debug pass: it is the same debug build with more checks, so the
# full tier runs every everyday test.
#
# At the end (also after a failure) it prints the wall time of every phase.
#
# Environment: E2E_WORKERS (default 3) pytest-xdist workers for the parallel part, 0 runs everything in one
# process; FUZZ_SECONDS (default 20) per fuzz target.
set -euo pipefail
cd "$(dirname "$0")/../.."

FULL=0
if [ "${1:-}" = "--full" ]; then
  FULL=1
  shift
fi
PYTEST_ARGS=("$@")
WORKERS="${E2E_WORKERS:-3}"

# --- phase timing -------------------------------------------------------------------------------------------
PHASE_NAMES=()
PHASE_SECONDS=()
STARTED=$SECONDS
phase() {  # name command...: runs the command and records its wall time under name
  local name=$1 start=$SECONDS status=0
  shift
  echo "=== $name"
  "$@" || status=$?
  PHASE_NAMES+=("$name")
  PHASE_SECONDS+=($((SECONDS - start)))
  return $status
}
report() {
  local status=$?
  echo
  echo "=== wall time per phase ($([ $FULL = 1 ] && echo full || echo everyday) tier)"
  local i
  for i in "${!PHASE_NAMES[@]}"; do
    printf '  %-28s %4dm%02ds\n' "${PHASE_NAMES[$i]}" $((PHASE_SECONDS[i] / 60)) $((PHASE_SECONDS[i] % 60))
  done
  printf '  %-28s %4dm%02ds\n' "total" $(((SECONDS - STARTED) / 60)) $(((SECONDS - STARTED) % 60))
  [ $status = 0 ] || echo "=== FAILED (exit $status)"
}
trap report EXIT

# --- installs -----------------------------------------------------------------------------------------------
phase "install: Debian packages" Tests/scripts/install-system-packages.sh
# Before any build: a target importing a module Package.swift does not list for it builds only when another
# target happens to build that module first (one build order passes, another fails).
phase "package: imports declared" python3 Tests/scripts/check-imports.py
# The virtualenvs are made while Swift builds (pip waits mostly on the network, the build on the CPU).
PYTHON_LOG="$(mktemp)"
Tests/scripts/setup-python.sh >"$PYTHON_LOG" 2>&1 &
PYTHON_SETUP=$!
python_ready() {
  if ! wait "$PYTHON_SETUP"; then
    cat "$PYTHON_LOG"
    echo "Tests/scripts/setup-python.sh failed" >&2
    return 1
  fi
  cat "$PYTHON_LOG"
}

no_tests_ok() {  # pytest's exit 5: no test selected (a -k that picks none of one part), not a failure
  [ "$1" = 5 ]
}

# --- the end-to-end runs ------------------------------------------------------------------------------------
PYTEST=(.venv/bin/python -m pytest -q -p no:cacheprovider --durations=15)
# e2e label binary [extra pytest arguments]: the parallel part, then the `serial` tests one at a time.
e2e() {
  local label=$1 binary=$2
  shift 2
  local parallel=()
  [ "$WORKERS" -gt 0 ] && parallel=(-n "$WORKERS" --dist loadgroup)
  local status=0
  MLFLOW_OTEL_PROXY_BIN="$binary" phase "$label (parallel)" "${PYTEST[@]}" "${parallel[@]}" -m "not serial and not release" Tests/e2e "$@" \
    "${PYTEST_ARGS[@]}" || no_tests_ok $? || status=1
  MLFLOW_OTEL_PROXY_BIN="$binary" phase "$label (serial)" "${PYTEST[@]}" -m "serial and not release" Tests/e2e "$@" "${PYTEST_ARGS[@]}" \
    || no_tests_ok $? || status=1
  return $status
}

if [ $FULL = 0 ]; then
  phase "build (debug)" swift build --build-tests
  phase "python virtualenvs (wait)" python_ready
  phase "unit tests" swift test --skip-build
  e2e "e2e" "$(swift build --show-bin-path)/mlflow-otel-proxy"
  exit 0
fi

# --- the full tier ------------------------------------------------------------------------------------------
phase "build (ASan)" swift build --build-tests --sanitize=address --scratch-path .build-asan
phase "python virtualenvs (wait)" python_ready
# Leak checking in the unit tests (XCTest's runner suppressed); in the end-to-end runs it is off: the Swift
# runtime's process-lifetime caches read as leaks at exit.
LSAN_OPTIONS="suppressions=$PWD/Tests/scripts/lsan-suppressions.txt" \
  phase "unit tests (ASan)" swift test --skip-build --sanitize=address --scratch-path .build-asan
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 MLFLOW_OTEL_PROXY_SANITIZER=address \
  e2e "e2e (ASan)" "$(swift build --scratch-path .build-asan --show-bin-path)/mlflow-otel-proxy"

phase "build (TSan)" swift build --build-tests --sanitize=thread --scratch-path .build-tsan
phase "unit tests (TSan)" swift test --skip-build --sanitize=thread --scratch-path .build-tsan
# Any data race aborts the proxy (tsan-suppressions.txt lists the explained exceptions). The packaging checks and
# the client-version matrix are left out of this pass: they do not exercise the proxy's concurrency beyond what
# test_modes does, and the ASan pass ran them. So are the load tests whose point is a bound in time or memory
# (1,100 trickling connections, 2 GiB of concurrent uploads, a 210 MiB backlog): TSan's own cost would decide them;
# the ASan pass runs them for memory errors and the release pass for their bounds.
TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/Tests/scripts/tsan-suppressions.txt" MLFLOW_OTEL_PROXY_SANITIZER=thread \
  e2e "e2e (TSan)" "$(swift build --scratch-path .build-tsan --show-bin-path)/mlflow-otel-proxy" \
  --deselect Tests/e2e/test_packaging.py --deselect Tests/e2e/test_helm_chart.py --deselect Tests/e2e/test_client_matrix.py \
  --deselect Tests/e2e/test_hardening.py::test_1100_trickling_connections_do_not_stop_a_normal_client \
  --deselect Tests/e2e/test_hardening.py::test_64_concurrent_32_mib_uploads_stay_within_the_body_memory_budget \
  --deselect Tests/e2e/test_operations.py::test_a_reload_with_a_200_mib_spooled_backlog_under_load_stays_within_its_memory_bound

# The release binary, built as the Dockerfile builds it: what ships links differently from the debug builds (its own
# allocator, the link's section garbage collection and ordering), so the whole end-to-end suite runs against it, then
# the tests that need it (the image binary; the memory bounds, which sanitizers distort, ran in the suite).
phase "build (release)" Tests/scripts/build-release.sh >/dev/null
RELEASE_BIN="$(swift build -c release --show-bin-path)/mlflow-otel-proxy"
e2e "e2e (release)" "$RELEASE_BIN"
MLFLOW_OTEL_PROXY_BIN="$RELEASE_BIN" MLFLOW_OTEL_PROXY_RELEASE_BIN="$RELEASE_BIN" \
  phase "e2e (release-only)" "${PYTEST[@]}" -m "release" Tests/e2e "${PYTEST_ARGS[@]}" || no_tests_ok $?

# Every decoder under libFuzzer (with ASan) for a short, fixed time; Tests/scripts/fuzz.sh --runs 1000000 for more.
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" phase "fuzz (build and run)" Tests/scripts/fuzz.sh
