#!/usr/bin/env bash
# The floor under the passthrough (#20, P1): the same benchmark (run.sh, then instructions.sh) with the proxy replaced
# by the two cheapest relays Swift NIO can make (nio-floor/: each client connection paired with its own upstream
# connection on the same event loop), then the proxy itself.
#   nio-floor-bytes: bytes copied both ways, no HTTP at all: the least any passthrough on NIO pays.
#   nio-floor-http:  NIO's HTTP/1 codecs on both sides (set up as the proxy sets them up), the parts passed across
#                    unchanged: the least a passthrough that decodes and encodes both heads with NIO pays.
# The relays are measured, never shipped; they have none of the proxy's rules (limits, timeouts, hop-by-hop headers,
# X-Forwarded-*, a pool shared by connections).
# Usage: Tests/benchmarks/passthrough/floor.sh   (PROXY_BIN=path: that build instead of the release build; DURATION)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../tools.sh"  # ROOT, the working directory, install_missing
(cd "$HERE/nio-floor" && swift build -c release --static-swift-stdlib >&2)
FLOOR=$(cd "$HERE/nio-floor" && swift build -c release --static-swift-stdlib --show-bin-path)
[ -n "${PROXY_BIN:-}" ] || PROXY_BIN=$("$ROOT/Tests/scripts/build-release.sh")
for binary in "$FLOOR/nio-floor-bytes" "$FLOOR/nio-floor-http" "$PROXY_BIN"; do
  echo "## $(basename "$binary") in the proxy's place"
  PROXY_BIN=$binary "$HERE/run.sh" | grep -E '^ratio|^CPU per'
done
echo "## instructions per call"
"$HERE/instructions.sh" "$FLOOR/nio-floor-bytes" "$FLOOR/nio-floor-http" "$PROXY_BIN" | grep '^|'
