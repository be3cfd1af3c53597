#!/usr/bin/env bash
# Runs every test: the Swift unit tests, then the end-to-end suite (a real `mlflow server`, the real MLflow
# Python client, the proxy binary and an OTLP receiver, all on 127.0.0.1). Installs what it needs itself: the
# Debian packages (as root) and the Python virtualenvs.
set -euo pipefail
cd "$(dirname "$0")/../.."
Tests/scripts/install-system-packages.sh
Tests/scripts/setup-python.sh
swift build --build-tests
swift test --skip-build
# The release binary with the Dockerfile's flags, for the packaging test.
swift build -c release --static-swift-stdlib --product mlflow-otel-proxy
export MLFLOW_OTEL_PROXY_RELEASE_BIN="$(swift build -c release --show-bin-path)/mlflow-otel-proxy"
MLFLOW_OTEL_PROXY_BIN="$(swift build --show-bin-path)/mlflow-otel-proxy" \
  .venv/bin/python -m pytest Tests/e2e -q -p no:cacheprovider "$@"
