"""Writes an MLflow-shaped /v1/traces body (one trace, 5 spans, the attributes the 3.17 client sends) with a
placeholder trace id, plus the byte offsets where wrk's Lua script puts a fresh random id per request."""

import json
import sys

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

PLACEHOLDER = bytes(range(0xA0, 0xB0))  # 16 bytes that occur nowhere else
HEX = PLACEHOLDER.hex().encode()


def kv(key, value):
    any_value = AnyValue()
    if isinstance(value, bool):
        any_value.bool_value = value
    elif isinstance(value, int):
        any_value.int_value = value
    elif isinstance(value, float):
        any_value.double_value = value
    elif isinstance(value, str):
        any_value.string_value = value
    elif isinstance(value, dict):
        any_value.kvlist_value.values.extend(kv(k, v) for k, v in value.items())
    elif isinstance(value, list):
        for item in value:
            any_value.array_value.values.append(kv("", item).value)
    return KeyValue(key=key, value=any_value)


request = ExportTraceServiceRequest()
resource_spans = request.resource_spans.add()
resource_spans.resource.attributes.extend([kv("telemetry.sdk.language", "python"), kv("telemetry.sdk.name", "mlflow"),
                                           kv("telemetry.sdk.version", "3.17.2")])
scope = resource_spans.scope_spans.add()
start = 1_795_678_049_738_866_646
names = [("agent", "AGENT", None), ("retrieve", "RETRIEVER", 1), ("rerank", "RERANKER", 1), ("chat_completion", "CHAT_MODEL", 1),
         ("format_answer", "PARSER", 1)]
for index, (name, span_type, parent) in enumerate(names, start=1):
    span = scope.spans.add()
    span.trace_id = PLACEHOLDER
    span.span_id = bytes([0, 0, 0, 0, 0, 0, 0, index])
    if parent:
        span.parent_span_id = bytes([0, 0, 0, 0, 0, 0, 0, parent])
    span.name = name
    span.start_time_unix_nano = start + index * 1000
    span.end_time_unix_nano = start + 5_000_000 + (6 - index) * 1000
    span.status.code = 1
    span.attributes.extend([
        kv("mlflow.traceRequestId", "tr-" + HEX.decode()),
        kv("mlflow.spanType", span_type),
        kv("mlflow.spanInputs", {"messages": [{"role": "user", "content": "What is MLflow and how do I trace an agent with it?"}],
                                 "temperature": 0.2, "top_k": 5}),
        kv("mlflow.spanOutputs", {"id": "chatcmpl-1", "choices": [{"message": {"role": "assistant",
                                  "content": "MLflow is an open source platform for the ML lifecycle."}, "finish_reason": "stop"}]}),
        kv("mlflow.spanLogLevel", 20),
        kv("mlflow.spanFunctionName", name),
    ])
    if span_type == "CHAT_MODEL":
        span.attributes.extend([kv("mlflow.chat.tokenUsage", {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17}),
                                kv("mlflow.llm.model", "gpt-4o-mini"), kv("mlflow.llm.provider", "openai")])

body = request.SerializeToString()

# The StartTraceV3 the client sends once per trace, after the root span ended (as the 3.17 client writes it).
info = {"trace": {"trace_info": {
    "trace_id": "tr-" + HEX.decode(),
    "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "0"}},
    "request_time": "2026-11-26T07:27:30.401Z", "execution_duration": "0.005s", "state": "OK",
    "trace_metadata": {"mlflow.trace_schema.version": "3", "mlflow.traceInputs": "{\"q\": \"What is MLflow?\"}",
                       "mlflow.traceOutputs": "\"MLflow is an open source platform\"", "mlflow.user": "bench",
                       "mlflow.trace.sizeStats": json.dumps({"total_size_bytes": 3300, "num_spans": len(names)}),
                       "mlflow.trace.tokenUsage": json.dumps({"input_tokens": 12, "output_tokens": 5, "total_tokens": 17}),
                       "mlflow.trace.session": "session-1", "mlflow.source.type": "LOCAL"},
    "tags": {"mlflow.traceName": "agent", "team": "bench"},
    "request_preview": "{\"q\": \"What is MLflow?\"}", "response_preview": "MLflow is an open source platform"}}}
info_body = json.dumps(info).encode()
info_offsets = [i for i in range(len(info_body)) if info_body.startswith(HEX, i)]
binary = [i for i in range(len(body)) if body.startswith(PLACEHOLDER, i)]
text = [i for i in range(len(body)) if body.startswith(HEX, i)]
out = sys.argv[1]
open(out + ".bin", "wb").write(body)
open(out + ".info.json", "wb").write(info_body)
json.dump({"binary_offsets": binary, "hex_offsets": text, "info_offsets": info_offsets, "length": len(body), "spans": len(names)},
          open(out + ".json", "w"))
print(f"payload: {len(body)} bytes, {len(names)} spans, trace id at {len(binary)} + {len(text)} places")
