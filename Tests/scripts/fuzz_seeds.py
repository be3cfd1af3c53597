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
# Span inputs and outputs as clients write them (the JSON text inside traces.json attributes), for genai-json,
# plus one payload per message format the GenAI mapping reads.
for body in sorted((out / "traces-json").glob("seed-*")):
    try:
        document = json.loads(body.read_bytes())
    except ValueError:
        continue
    spans = (document.get("spans") or document.get("data", {}).get("spans") or []) if isinstance(document, dict) else []
    for span in spans[:50]:
        for key in ("mlflow.spanInputs", "mlflow.spanOutputs"):
            value = (span.get("attributes") or {}).get(key)
            if isinstance(value, str):
                add("genai-json", value.encode())
for payload in (
    {"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "t"}]},
                                {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
                                {"role": "tool", "tool_call_id": "c", "content": "r"}], "tools": [{"type": "function"}], "temperature": 0.1},
    {"id": "x", "model": "m", "choices": [{"message": {"role": "assistant", "content": "a"}, "finish_reason": "stop"}],
     "usage": {"prompt_tokens": 1, "completion_tokens": 2}},
    {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}], "instructions": "i",
     "output": [{"type": "message", "content": [{"type": "output_text", "text": "o"}]}], "status": "completed"},
    {"system": [{"text": "s"}], "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]}],
     "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "usage": {"input_tokens": 1, "cache_read_input_tokens": 2}},
    {"contents": [{"role": "model", "parts": [{"function_call": {"name": "f", "args": {}}}]}],
     "candidates": [{"content": {"parts": [{"text": "o"}]}, "finish_reason": "STOP"}], "config": {"system_instruction": "s"}},
    [{"page_content": "p", "metadata": {"doc_uri": "d", "score": 0.5}, "id": "1"}],
):
    add("genai-json", json.dumps(payload).encode())
print("seeds:", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
