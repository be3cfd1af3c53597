#!/usr/bin/env bash
# Creates .venv with the pinned packages of Tests/e2e/requirements.txt (again when that file changes).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! cmp -s Tests/e2e/requirements.txt .venv/.requirements-installed; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r Tests/e2e/requirements.txt
  cp Tests/e2e/requirements.txt .venv/.requirements-installed
fi
