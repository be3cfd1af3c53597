"""The application code of the three examples in MLflow's "OpenTelemetry Export" page, word for word, without the
environment variables the page sets in the application: those are set on the proxy instead. The application only
points MLFLOW_TRACKING_URI at the proxy (the drop-in change). SEED_EXAMPLE selects the example: `otel-only`,
`dual` or `metrics`. Prints `WORKLOAD_RESULT {"trace_id": ...}`."""

import json
import os

import mlflow

example = os.environ["SEED_EXAMPLE"]
mlflow.set_experiment(os.environ.get("WORKLOAD_EXPERIMENT", "seed"))

if example in ("otel-only", "metrics"):
    # Trace will be exported ONLY to the OTel collector at http://localhost:4317/v1/traces
    with mlflow.start_span(name="foo") as span:
        span.set_inputs({"a": 1})
        span.set_outputs({"b": 2})
elif example == "dual":
    # (the page's mlflow.set_tracking_uri("databricks") is the proxy's upstream instead)
    # Traces will be exported to BOTH MLflow and the OTel collector
    with mlflow.start_span(name="dual_export_example") as span:
        span.set_inputs({"model": "gpt-4", "prompt": "Hello world"})

        # Your ML workflow here
        result = "Generated response"

        span.set_outputs({"response": result})
        span.set_attributes({"token_count": 15})
else:
    raise SystemExit(f"unknown SEED_EXAMPLE {example}")

if hasattr(mlflow, "flush_trace_async_logging"):
    mlflow.flush_trace_async_logging()
print("WORKLOAD_RESULT " + json.dumps({"trace_id": mlflow.get_last_active_trace_id()}))
