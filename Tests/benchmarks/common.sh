# Sourced by the benchmarks after `cd "$ROOT"`: the release build under test (PROXY_BIN=path measures another
# build, a baseline for a before/after in the same session), a work directory (WORK), the processes to stop at
# exit (PIDS) and port() for a free 127.0.0.1 port.
if [ -z "${PROXY_BIN:-}" ]; then
  PROXY_BIN="$(Tests/scripts/build-release.sh)"  # the Dockerfile's build
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
