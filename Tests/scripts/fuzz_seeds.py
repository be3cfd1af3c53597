"""Writes libFuzzer seed corpora from the captured MLflow exchanges: each request body goes to the corpus of
the decoder that reads it. Usage: fuzz_seeds.py FIXTURES_DIR OUT_DIR"""

import gzip
import json
import sys
from pathlib import Path

fixtures, out = Path(sys.argv[1]), Path(sys.argv[2])
counts = {}


def add(target, data):
    directory = out / target
    directory.mkdir(parents=True, exist_ok=True)
    counts[target] = counts.get(target, 0) + 1
    (directory / f"seed-{counts[target]:05d}").write_bytes(data)


for exchange in sorted(fixtures.rglob("*.json")):
    raw = exchange.with_suffix(".req.bin")
    if not raw.exists():
        continue
    request = json.loads(exchange.read_text())["request"]
    headers = {k.lower(): v for k, v in request["headers"]}
    body = raw.read_bytes()
    method, path = request["method"], request["path"]
    if method == "POST" and path.endswith("/v1/traces"):
        if headers.get("content-encoding") == "gzip":
            add("otlp-gzip", body)
            body = gzip.decompress(body)
        add("otlp-json" if "json" in headers.get("content-type", "") else "otlp-protobuf", body)
    elif method == "PUT" and path.endswith("/traces.json"):
        add("traces-json", body)
    elif method == "POST" and path == "/api/3.0/mlflow/traces":
        add("trace-info-v3", body)
    elif (method == "POST" and path == "/api/2.0/mlflow/traces") or (method == "PATCH" and path.startswith("/api/2.0/mlflow/traces/")):
        add("trace-info-v2", body)
# OTLP captured by receivers (protobuf) feed the protobuf decoder too.
for pb in sorted(fixtures.rglob("otlp/*traces*.pb")):
    add("otlp-protobuf", pb.read_bytes())
# gzip bodies: the protobuf seeds compressed (clients send gzip when OTEL_EXPORTER_OTLP_COMPRESSION=gzip).
for seed in sorted((out / "otlp-protobuf").glob("seed-*"))[:20]:
    add("otlp-gzip", gzip.compress(seed.read_bytes()))
print("seeds:", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
