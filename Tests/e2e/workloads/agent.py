"""A traced MLflow application: nested spans, @mlflow.trace, an exception, trace tags and metadata.

Run with MLFLOW_TRACKING_URI set. Prints one JSON line: the MLflow trace ids it produced and, for each,
the spans it expects (name -> parent name), so tests can check what arrived against what was sent.
"""

import json
import os
import sys

import mlflow

experiment = os.environ.get("WORKLOAD_EXPERIMENT", "e2e")
mlflow.set_experiment(experiment)
expected = []


@mlflow.trace(span_type="TOOL")
def add(a, b):
    return a + b


@mlflow.trace(span_type="CHAT_MODEL")
def chat_completion(question):
    span = mlflow.get_current_active_span()
    span.set_attribute("mlflow.chat.tokenUsage", {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17})
    span.set_attribute("mlflow.llm.model", "gpt-4o-mini")
    return {"choices": [{"message": {"role": "assistant", "content": "MLflow is great"}}]}


@mlflow.trace(name="agent_root", span_type="CHAIN")
def agent(question):
    try:
        mlflow.update_current_trace(
            tags={"team": "wire", "env": "test"},
            metadata={"mlflow.trace.session": "session-123", "mlflow.trace.user": "alice", "app.version": "1.2.3"},
        )
    except TypeError:  # MLflow 2.x: tags only
        mlflow.update_current_trace(tags={"team": "wire", "env": "test"})
    span = mlflow.get_current_active_span()
    span.set_attributes({"str_attr": "hello", "int_attr": 42, "float_attr": 3.14, "bool_attr": True,
                         "list_attr": [1, 2, 3], "dict_attr": {"a": 1, "b": [True, None]}})
    with mlflow.start_span("retrieve", span_type="RETRIEVER") as retrieve:
        retrieve.set_inputs({"query": question})
        retrieve.set_outputs([{"page_content": "MLflow is an OSS platform", "metadata": {"doc_uri": "doc://1"}}])
        retrieve.add_event(mlflow.entities.SpanEvent("cache_miss", attributes={"key": "mlflow", "n": 3, "ok": False}))
    try:
        with mlflow.start_span("failing_tool", span_type="TOOL"):
            raise ValueError("tool exploded")
    except ValueError:
        pass
    answer = chat_completion(question)
    total = add(1, 2)
    return {"answer": answer["choices"][0]["message"]["content"], "total": total}


@mlflow.trace
def boom(n):
    raise RuntimeError(f"boom {n}")


agent("What is MLflow?")
has_metadata = "metadata" in __import__("inspect").signature(mlflow.update_current_trace).parameters
expected.append({"trace_id": mlflow.get_last_active_trace_id(), "name": "agent_root", "state": "OK", "metadata": has_metadata,
                 "spans": {"agent_root": None, "retrieve": "agent_root", "failing_tool": "agent_root",
                           "chat_completion": "agent_root", "add": "agent_root"}})
try:
    boom(7)
except RuntimeError:
    pass
expected.append({"trace_id": mlflow.get_last_active_trace_id(), "name": "boom", "state": "ERROR", "metadata": has_metadata,
                 "spans": {"boom": None}})

mlflow.flush_trace_async_logging() if hasattr(mlflow, "flush_trace_async_logging") else None
print("WORKLOAD_RESULT " + json.dumps({"mlflow_version": mlflow.__version__, "traces": expected}) if os.environ.get("WORKLOAD_VERBOSE")
      else "WORKLOAD_RESULT " + json.dumps(expected))
sys.stdout.flush()
