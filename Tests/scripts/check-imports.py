#!/usr/bin/env python3
"""Every module a target imports is one of its declared dependencies, and every target it declares it imports.

SwiftPM builds a target that imports an undeclared module whenever that module happens to be built first (another
target depends on it), so the mistake passes on one machine and fails on another: a sanitizer build's order made
`import HummingbirdTesting` fail in a test target that never declared it. Run from the package root; reads
`swift package dump-package`. A declared package target nothing imports is a stale edge in the module graph (products
are not checked that way: one product may hold several modules). Imports under `#if canImport(...)` of system modules are listed in SYSTEM.
"""
import glob
import json
import re
import subprocess
import sys

SYSTEM = {"Foundation", "FoundationEssentials", "Testing", "XCTest", "Dispatch", "Glibc", "Musl", "Darwin",
          "Synchronization", "_Concurrency"}
IMPORT = re.compile(r"\s*(?:@\w+\s+)*(?:(?:public|package|internal|private|fileprivate)\s+)?import\s+"
                    r"(?:(?:struct|class|enum|protocol|func|var|let|typealias)\s+)?(\w+)")

package = json.loads(subprocess.run(["swift", "package", "dump-package"], check=True, capture_output=True, text=True).stdout)
failures = 0
for target in package["targets"]:
    name = target["name"]
    declared = set()
    for dependency in target["dependencies"]:
        for kind in ("byName", "product", "target"):
            if kind in dependency:
                declared.add(dependency[kind][0])
    path = target.get("path") or ("Tests/" if target["type"] == "test" else "Sources/") + name
    files = sorted(glob.glob(path + "/**/*.swift", recursive=True))
    imported = set()
    for file in files:
        with open(file, encoding="utf-8") as source:
            for number, line in enumerate(source, 1):
                match = IMPORT.match(line)
                if not match:
                    continue
                imported.add(match.group(1))
                if match.group(1) not in declared | SYSTEM | {name}:
                    print(f"{file}:{number}: {name} imports {match.group(1)}, which Package.swift does not list")
                    failures += 1
    local = {dependency[kind][0] for dependency in target["dependencies"] for kind in ("byName", "target") if kind in dependency}
    for unused in sorted(local - imported) if files else []:
        print(f"Package.swift: {name} lists {unused}, which none of its files imports")
        failures += 1
sys.exit(1 if failures else 0)
