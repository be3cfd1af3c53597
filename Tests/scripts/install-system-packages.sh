#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, when any is missing: zlib headers (compress-nio
# links the system zlib), SQLite headers (the intake journal), jemalloc (the release build's allocator), python3 with venv (the test virtualenvs), openssl (certificates of the TLS tests),
# chromium (opens the /status page in a test), Go with sprig and sigs.k8s.io/yaml (Tests/scripts/helm-template renders
# the Helm chart; no helm binary is packaged for Debian or PyPI). Needs root, as apt-get does; a no-op when all are present.
#   Tests/scripts/install-system-packages.sh [PACKAGE...]   (with packages: only those, e.g. from build-release.sh)
set -euo pipefail
packages=(zlib1g-dev libsqlite3-dev libjemalloc2 python3 python3-venv python3-pip openssl chromium
          golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev)
[ $# -gt 0 ] && packages=("$@")
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
