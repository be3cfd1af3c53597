#!/usr/bin/env bash
# Writes Sources/MLflowOTelProxy/startup-functions.txt: the functions the release binary runs from its start until it
# has answered /healthz with the image's settings (admin listener, spool), in the order they first run. Release links
# place them first and together (lld's --symbol-ordering-file, Package.swift); built with function sections (the
# release build command in the Dockerfile), start-up then maps a few megabytes of code pages instead of most of the
# 34 MB of code, which is most of the proxy's idle RSS (BENCHMARKS.md, idle RSS).
#
#   Tests/scripts/startup-order.sh [BINARY]   (default: builds the release binary as the Dockerfile does)
#
# Run it again when start-up changes (new services, dependencies, a new toolchain): a function missing from the list
# is only placed elsewhere (the link ignores names it does not find), so a stale list costs idle memory, never
# correctness. Needs valgrind (installed when missing) and Python 3.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUTPUT=Sources/MLflowOTelProxy/startup-functions.txt
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
if [ $# -gt 0 ]; then
  BINARY=$1
else
  BINARY="$(Tests/scripts/build-release.sh)"
fi

WORK=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
# Valgrind 3.19 cannot read the DWARF 5 debug info of these builds: a copy without it (the symbols stay).
strip --strip-debug -o "$WORK/proxy" "$BINARY"
read -r PORT ADMIN < <(python3 -c 'import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in sockets])')
env -i PATH="$PATH" MLFLOW_OTEL_PROXY_LISTEN="127.0.0.1:$PORT" MLFLOW_OTEL_PROXY_ADMIN_LISTEN="127.0.0.1:$ADMIN" \
  MLFLOW_OTEL_PROXY_SPOOL_DIR="$WORK/spool" \
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$WORK/callgrind.out" "$WORK/proxy" serve \
  >"$WORK/proxy.log" 2>&1 & PID=$!
for _ in $(seq 300); do
  curl -fsS "http://127.0.0.1:$ADMIN/healthz" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/proxy.log" >&2; exit 1; }
  sleep 1
done
curl -fsS "http://127.0.0.1:$ADMIN/healthz" >/dev/null
callgrind_control -d "$PID" >/dev/null 2>&1  # the profile up to now: start-up and the first /healthz
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=

python3 - "$WORK/callgrind.out.1" "$WORK/proxy" "$OUTPUT" <<'PY'
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
# The build does not know the list is an input of the link: without its binary, the next release build links again.
rm -f "$(swift build -c release --show-bin-path)/mlflow-otel-proxy"
