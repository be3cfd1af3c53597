#!/usr/bin/env bash
# Creates the test virtualenvs with pinned packages (again when a requirements file changes):
#   .venv                 Tests/e2e/requirements.txt: MLflow 3.17.2 client and server, OTLP protos, pytest
#   .venv-mlflow-2.22.5   Tests/e2e/clients/mlflow-2.22.5.txt: the 2.22.5 client (and a 2.22.5 server)
#   .venv-mlflow-3.1.4    Tests/e2e/clients/mlflow-3.1.4.txt: the 3.1.4 client
#   .venv-phoenix         Tests/e2e/clients/phoenix.txt: Arize Phoenix, the OpenInference receiver
set -euo pipefail
cd "$(dirname "$0")/../.."
# The machine's own python3 if it can make a virtualenv, Debian's otherwise (install-system-packages.sh brings
# python3-venv); PYTHON overrides both.
if [ -z "${PYTHON:-}" ]; then
  if python3 -m venv --help >/dev/null 2>&1; then PYTHON=python3; else PYTHON=/usr/bin/python3; fi
fi

make_venv() {  # directory requirements-file
  if [ ! -x "$1/bin/python" ]; then
    "$PYTHON" -m venv "$1"
  fi
  if ! cmp -s "$2" "$1/.requirements-installed"; then
    "$1/bin/pip" install --quiet --disable-pip-version-check -r "$2"
    cp "$2" "$1/.requirements-installed"
  fi
}

make_venv .venv Tests/e2e/requirements.txt
make_venv .venv-mlflow-2.22.5 Tests/e2e/clients/mlflow-2.22.5.txt
make_venv .venv-mlflow-3.1.4 Tests/e2e/clients/mlflow-3.1.4.txt
make_venv .venv-phoenix Tests/e2e/clients/phoenix.txt
