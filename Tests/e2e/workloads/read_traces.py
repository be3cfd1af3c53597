"""Prints the traces of an experiment as comparable JSON (no ids, no timings), with any MLflow client version:
name, parent, type, inputs, outputs, attributes, status and events of every span, and the trace's tags."""

import json
import sys

import mlflow
from mlflow import MlflowClient

tracking_uri, experiment_name = sys.argv[1], sys.argv[2]
mlflow.set_tracking_uri(tracking_uri)
client = MlflowClient(tracking_uri=tracking_uri)
experiment = client.get_experiment_by_name(experiment_name)
traces = client.search_traces(experiment_ids=[experiment.experiment_id])
result = []
for trace in traces:
    names = {span.span_id: span.name for span in trace.data.spans}
    spans = []
    for span in trace.data.spans:
        attributes = {k: v for k, v in span.attributes.items() if k != "mlflow.traceRequestId"}
        spans.append([span.name, names.get(span.parent_id), span.span_type, json.dumps(span.inputs, sort_keys=True, default=str),
                      json.dumps(span.outputs, sort_keys=True, default=str), json.dumps(attributes, sort_keys=True, default=str),
                      str(span.status.status_code), [e.name for e in span.events]])
    info = trace.info
    tags = {k: v for k, v in info.tags.items() if not k.startswith(("mlflow.artifactLocation", "mlflow.trace.spansLocation"))}
    state = getattr(info, "state", None) or getattr(info, "status", None)
    result.append({"spans": sorted(spans), "tags": tags, "state": str(state).split(".")[-1]})
print(json.dumps(sorted(result, key=lambda t: json.dumps(t["spans"]))))
