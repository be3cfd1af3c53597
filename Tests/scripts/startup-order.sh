#!/usr/bin/env bash
# Writes Sources/MLflowOTelProxy/startup-functions.txt: the functions the release binary runs from its start until it
# has answered /healthz with the image's settings (admin listener, spool), in the order they first run. Release links
# place them first and together (lld's --symbol-ordering-file, Package.swift); built with function sections
# (Tests/scripts/build-release.sh), start-up then maps about 8 MB less of the binary's code, which was most of the
# proxy's idle RSS (BENCHMARKS.md, "Re-measured 2026-12-05").
#
#   Tests/scripts/startup-order.sh [BINARY]   (default: builds the release binary as the Dockerfile does)
#
# Run it again when start-up changes (new services, dependencies, a new toolchain): a function missing from the list
# is only placed elsewhere (the link ignores names it does not find), so a stale list costs idle memory, never
# correctness. Needs valgrind (installed when missing) and Python 3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../benchmarks/tools.sh"  # ROOT, the working directory, install_missing
install_missing valgrind:valgrind curl:curl
[ $# -gt 0 ] && PROXY_BIN=$1
source "$ROOT/Tests/benchmarks/common.sh"  # PROXY_BIN (built when not given), WORK, PIDS, port
source "$ROOT/Tests/benchmarks/callgrind.sh"
OUTPUT=Sources/MLflowOTelProxy/startup-functions.txt

# Counting from the first instruction, names as the link knows them (mangled, also C++'s).
ADMIN="127.0.0.1:$(port)"
CALLGRIND_OPTIONS="--instr-atstart=yes --demangle=no" callgrind_start 0 "$PROXY_BIN" \
  MLFLOW_OTEL_PROXY_LISTEN="127.0.0.1:$(port)" MLFLOW_OTEL_PROXY_ADMIN_LISTEN="$ADMIN" \
  MLFLOW_OTEL_PROXY_SPOOL_DIR="$WORK/spool" -- serve --log-level info
for _ in $(seq 300); do curl -fsS "http://$ADMIN/healthz" >/dev/null 2>&1 && break; sleep 1; done
curl -fsS "http://$ADMIN/healthz" >/dev/null
callgrind_control -d "$CALLGRIND_PID" >/dev/null 2>&1  # the profile up to now: start-up and the first /healthz
kill "$CALLGRIND_PID"; wait "$CALLGRIND_PID" 2>/dev/null || true

python3 - "$WORK/callgrind-0.out.1" "$WORK/proxy-0" "$OUTPUT" <<'PY'
import re, sys
profile, binary, output = sys.argv[1:]
objects, functions, current_object, order, seen = {}, {}, None, [], set()
# callgrind's compressed names: "fn=(id) name" the first time, "fn=(id)" after; "ob=" the same for objects.
for line in open(profile):
    match = re.match(r"^(ob|cob|fn|cfn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if not match:
        continue
    kind, number, name = match.groups()
    if kind in ("ob", "cob"):
        if name:
            objects[number] = name
        if kind == "ob":
            current_object = objects.get(number)
    else:
        if name:
            functions[number] = name.split("'")[0]  # "'2" marks a recursion level, not part of the name
        symbol = functions[number]
        # Only the binary's own functions with a name (not the shared libraries', not unnamed addresses).
        if kind == "fn" and current_object == binary and not symbol.startswith("0x") and symbol not in seen:
            seen.add(symbol)
            order.append(symbol)
with open(output, "w") as file:
    file.write("\n".join(order) + "\n")
print(f"{output}: {len(order)} functions")
PY
rm -rf "$WORK"
# The build does not know the list is an input of the link: without its binary, the next release build links again.
rm -f "$(swift build -c release --show-bin-path)/mlflow-otel-proxy"
