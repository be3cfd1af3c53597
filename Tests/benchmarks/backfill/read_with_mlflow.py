"""The peer: MLflow's own client reading every trace of `backfill-bench` with its spans (`mlflow.search_traces`,
paging as the client pages). Prints the traces read and the seconds it took."""

import sys
import time

import mlflow

mlflow.set_tracking_uri(sys.argv[1])
experiment = mlflow.get_experiment_by_name("backfill-bench").experiment_id
client = mlflow.MlflowClient()
started = time.monotonic()
total, token = 0, None
while True:
    page = client.search_traces(locations=[experiment], max_results=100, page_token=token)
    total += len(page)
    token = page.token
    if not token:
        break
print(f"RESULT traces={total} seconds={time.monotonic() - started:.2f}")
