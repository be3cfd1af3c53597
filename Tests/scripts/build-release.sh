#!/usr/bin/env bash
# Builds the release binary exactly as the Dockerfile does and prints its path: the Swift standard library linked
# statically, every function in its own section (Swift and C; the link then places the functions start-up runs
# together, Package.swift and Tests/scripts/startup-order.sh) and jemalloc as the allocator (its Debian package,
# libjemalloc2, installed when missing; root, as apt-get is). Build output goes to stderr.
#   Tests/scripts/build-release.sh        (the Dockerfile runs it; test_packaging.py checks that it does)
set -euo pipefail
cd "$(dirname "$0")/../.."
Tests/scripts/install-system-packages.sh libjemalloc2 >&2
# -disable-incremental-llvm-codegen: Swift keeps an object file whose code did not change without generating it
# again, and function sections are not part of what it compares; objects built before these flags would keep their
# old layout.
FLAGS=(-c release --static-swift-stdlib --product mlflow-otel-proxy
       -Xswiftc -Xfrontend -Xswiftc -function-sections -Xswiftc -Xfrontend -Xswiftc -disable-incremental-llvm-codegen
       -Xcc -ffunction-sections)
swift build "${FLAGS[@]}" >&2
echo "$(swift build -c release --show-bin-path)/mlflow-otel-proxy"
