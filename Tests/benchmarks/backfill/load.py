"""Loads TRACES traces (a root and two children each, attributes as MLflow's client writes them) into experiment
`backfill-bench` of a running MLflow server (argv[1]) through its own OTLP ingest, `/v1/traces`, 25 traces per
request (the server stores spans and creates each trace's record from them), so that 10,000 traces load in
minutes rather than the better part of an hour through the tracing client."""

import json
import os
import random
import sys
import time
import urllib.request

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

url = sys.argv[1]


def call(path, body, content_type="application/json", headers=None, method="POST"):
    request = urllib.request.Request(url + path, data=body, method=method,
                                     headers={"Content-Type": content_type, **(headers or {})})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


experiment = json.loads(call("/api/2.0/mlflow/experiments/create", json.dumps({"name": "backfill-bench"}).encode()))["experiment_id"]
count = int(os.environ.get("TRACES", "10000"))
per_request = 25
started = time.monotonic()
now = time.time_ns() - count * 2_000_000


def attribute(span, key, value):
    kv = span.attributes.add()
    kv.key = key
    kv.value.string_value = json.dumps(value)


for first in range(0, count, per_request):
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for number in range(first, min(first + per_request, count)):
        trace_id = random.getrandbits(128).to_bytes(16, "big")
        start = now + number * 2_000_000
        root_id = random.getrandbits(64).to_bytes(8, "big")
        for index, (name, kind) in enumerate([(f"request_{number}", "CHAIN"), ("retrieve", "RETRIEVER"), ("chat", "CHAT_MODEL")]):
            span = scope.spans.add()
            span.trace_id = trace_id
            span.span_id = root_id if index == 0 else random.getrandbits(64).to_bytes(8, "big")
            if index:
                span.parent_span_id = root_id
            span.name = name
            span.start_time_unix_nano = start + index * 100_000
            span.end_time_unix_nano = start + 1_500_000 - index * 100_000
            span.status.code = 1
            attribute(span, "mlflow.traceRequestId", "tr-" + trace_id.hex())
            attribute(span, "mlflow.spanType", kind)
            if index == 0:
                attribute(span, "mlflow.spanInputs", {"question": f"question {number}", "history": []})
                attribute(span, "mlflow.spanOutputs", {"answer": "an answer"})
            elif index == 1:
                attribute(span, "mlflow.spanOutputs", [{"page_content": "MLflow is an open source platform", "metadata": {"doc_uri": f"doc://{number}"}}])
            else:
                attribute(span, "mlflow.chat.tokenUsage", {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17})
                attribute(span, "mlflow.spanOutputs", {"choices": [{"message": {"role": "assistant", "content": "an answer"}}]})
    call("/v1/traces", request.SerializeToString(), "application/x-protobuf", {"x-mlflow-experiment-id": experiment})
    done = min(first + per_request, count)
    if done % 1000 == 0:
        print(f"  {done} traces loaded ({done / (time.monotonic() - started):.0f}/s)", flush=True)
print(f"  {count} traces loaded in {time.monotonic() - started:.0f} s", flush=True)
