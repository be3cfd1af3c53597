"""Many small traces: WORKLOAD_TRACES traces (default 20), each a root with two children and a tag.

Run with MLFLOW_TRACKING_URI set. Prints one JSON line with the trace ids and expected spans (as agent.py does).
"""

import json
import os
import sys

import mlflow

mlflow.set_experiment(os.environ.get("WORKLOAD_EXPERIMENT", "many"))
expected = []
for number in range(int(os.environ.get("WORKLOAD_TRACES", "20"))):
    with mlflow.start_span(f"request_{number}", span_type="CHAIN") as root:
        root.set_inputs({"n": number})
        mlflow.update_current_trace(tags={"batch": "many", "parity": "even" if number % 2 == 0 else "odd"})
        with mlflow.start_span("lookup", span_type="RETRIEVER") as lookup:
            lookup.set_outputs([{"doc": number}])
        with mlflow.start_span("answer", span_type="LLM") as answer:
            answer.set_attribute("n", number)
        root.set_outputs({"ok": True})
    expected.append({"trace_id": mlflow.get_last_active_trace_id(), "name": f"request_{number}", "state": "OK",
                     "spans": {f"request_{number}": None, "lookup": f"request_{number}", "answer": f"request_{number}"}})
mlflow.flush_trace_async_logging() if hasattr(mlflow, "flush_trace_async_logging") else None
print("WORKLOAD_RESULT " + json.dumps(expected))
sys.stdout.flush()
