"""Logs TRACES traces (a root and two children each, MLflow 3.17's own tracing) into experiment `backfill-bench`
of an MLflow tracking store given as a database URI (argv[1]), in process: the store the benchmark's server then
serves. Spans go to the tracking store as `/v1/traces` uploads put them there."""

import os
import sys
import time

os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
import mlflow  # noqa: E402

mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("backfill-bench")
count = int(os.environ.get("TRACES", "10000"))
started = time.monotonic()
for number in range(count):
    with mlflow.start_span(f"request_{number}", span_type="CHAIN") as root:
        root.set_inputs({"question": f"question {number}", "history": []})
        mlflow.update_current_trace(tags={"team": "bench"}, metadata={"mlflow.trace.session": f"s{number % 50}"})
        with mlflow.start_span("retrieve", span_type="RETRIEVER") as retrieve:
            retrieve.set_outputs([{"page_content": "MLflow is an open source platform", "metadata": {"doc_uri": f"doc://{number}"}}])
        with mlflow.start_span("chat", span_type="CHAT_MODEL") as chat:
            chat.set_attribute("mlflow.chat.tokenUsage", {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17})
            chat.set_outputs({"choices": [{"message": {"role": "assistant", "content": "an answer"}}]})
        root.set_outputs({"answer": "an answer"})
    if number and number % 1000 == 0:
        print(f"  {number} traces logged ({number / (time.monotonic() - started):.0f}/s)", flush=True)
print(f"  {count} traces logged in {time.monotonic() - started:.0f} s", flush=True)
