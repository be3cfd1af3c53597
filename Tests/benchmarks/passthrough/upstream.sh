# Sourced by the passthrough benchmarks: the fast upstream's nginx server block (a small MLflow JSON answer to
# GET /api/2.0/mlflow/experiments/get, files under WORK/www), for the http block of an nginx configuration.
fast_upstream_server() {  # PORT
  cat <<CONF
  server {
    listen 127.0.0.1:$1;
    root $WORK/www;
    location = /api/2.0/mlflow/experiments/get {
      default_type application/json;
      return 200 '{"experiment": {"experiment_id": "1", "name": "bench", "lifecycle_stage": "active", "artifact_location": "mlflow-artifacts:/1"}}';
    }
  }
CONF
}
