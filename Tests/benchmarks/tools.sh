# Sourced first by the benchmarks (after HERE): ROOT, the repository, made the working directory, and
# install_missing COMMAND:PACKAGE..., which installs from Debian the packages whose commands are not on PATH (one
# apt-get run for all of them), so a benchmark runs on a fresh machine.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

install_missing() {
  local pair packages=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || packages+=("${pair#*:}")
  done
  [ ${#packages[@]} -eq 0 ] && return 0
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
}
