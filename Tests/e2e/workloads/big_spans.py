"""Two large traces for the size-limit tests: one span whose input is about 5 MB of JSON, and a trace of 25 spans
of about 400 kB each (10 MB in all). Prints the trace ids and the span count."""

import json
import os

import mlflow

mlflow.set_experiment(os.environ.get("WORKLOAD_EXPERIMENT", "big"))


@mlflow.trace(name="huge_input", span_type="LLM")
def huge(document):
    return {"summary": "short"}


@mlflow.trace(name="chunk", span_type="PARSER")
def chunk(index, text):
    return len(text)


@mlflow.trace(name="many_chunks", span_type="CHAIN")
def many():
    for index in range(25):
        chunk(index, f"{index:02d}" + "y" * 400_000)
    return "done"


huge({"title": "big", "pages": ["x" * 1_000_000 for _ in range(5)]})
first = mlflow.get_last_active_trace_id()
many()
print("WORKLOAD_RESULT " + json.dumps({"trace_ids": [first, mlflow.get_last_active_trace_id()], "spans": 27}))
