"""MLflow's "OpenTelemetry Export" page (../shared/seed/mlflow-opentelemetry-export.txt), word for word: each
example's environment variables, exactly as the page sets them in an application, are set on the proxy instead
(only the ports are free ones here), and the example's application code runs with the real MLflow 3.17.2 client
pointed at the proxy. MLflow's exporters default to OTLP/gRPC, so a gRPC collector must receive the spans and the
metrics; the page's last block switches traces to http/protobuf with headers. The suite's default of http/protobuf
for the proxy (conftest) is switched off here with an empty value, which OpenTelemetry's rules read as unset."""

import subprocess

from conftest import Proxy, clean_environment, run_workload, wait_for
from grpc_receiver import GRPCReceiver
from spans import attributes, json_loads_or_value

UNSET = ""  # an empty variable is unset (OpenTelemetry's rule): MLflow's default protocol applies


def resource_attributes(request):
    return {kv.key: kv.value.string_value for rs in request.resource_spans for kv in rs.resource.attributes}


def test_opentelemetry_only_example_reaches_a_grpc_collector(mlflow_server, start_proxy):
    collector = GRPCReceiver()
    try:
        proxy = start_proxy(["--upstream", mlflow_server.url], env={
            "OTEL_EXPORTER_OTLP_PROTOCOL": UNSET,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://localhost:{collector.port}/v1/traces",
            "OTEL_SERVICE_NAME": "seed-service"})
        assert "mode=opentelemetry-only" in proxy.log()
        result, _ = run_workload(proxy.url, script="seed_examples.py", SEED_EXAMPLE="otel-only", WORKLOAD_EXPERIMENT="seed-otel")
        wait_for(lambda: collector.all_spans(), message="the span at the gRPC collector")
        (span,) = collector.all_spans()
        assert span.name == "foo"
        values = attributes(span)
        assert json_loads_or_value(values["mlflow.spanInputs"]) == {"a": 1}
        assert json_loads_or_value(values["mlflow.spanOutputs"]) == {"b": 2}
        assert resource_attributes(collector.requests[0][1])["service.name"] == "seed-service"
        # OpenTelemetry only: MLflow never saw the trace.
        assert mlflow_server.client().search_traces(locations=[experiment_id(mlflow_server, "seed-otel")]) == []
    finally:
        collector.close()


def experiment_id(server, name):
    experiment = server.client().get_experiment_by_name(name)
    return experiment.experiment_id


def test_dual_export_example_reaches_mlflow_and_a_grpc_collector(mlflow_server, start_proxy):
    collector = GRPCReceiver()
    try:
        proxy = start_proxy(["--upstream", mlflow_server.url], env={
            "OTEL_EXPORTER_OTLP_PROTOCOL": UNSET,
            "MLFLOW_ENABLE_DUAL_EXPORT": "true",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://localhost:{collector.port}/v1/traces",
            "OTEL_SERVICE_NAME": "my-ml-service"})
        assert "mode=dual" in proxy.log()
        result, _ = run_workload(proxy.url, script="seed_examples.py", SEED_EXAMPLE="dual", WORKLOAD_EXPERIMENT="seed-dual")
        wait_for(lambda: collector.all_spans(), message="the span at the gRPC collector")
        (span,) = collector.all_spans()
        assert span.name == "dual_export_example" and json_loads_or_value(attributes(span)["token_count"]) == 15
        assert resource_attributes(collector.requests[0][1])["service.name"] == "my-ml-service"
        trace = wait_for(lambda: mlflow_server.client().get_trace(result["trace_id"]), message="the trace in MLflow")
        assert [s.name for s in trace.data.spans] == ["dual_export_example"]
        assert trace.data.spans[0].outputs == {"response": "Generated response"}
    finally:
        collector.close()


def test_metrics_example_exports_span_durations_over_grpc(mlflow_server, start_proxy):
    """The page's metrics block alone: traces go to MLflow (MLflow-only mode), metrics over gRPC, as in an
    application. OTEL_METRIC_EXPORT_INTERVAL is the page's optional knob, shortened from its 60000 ms."""
    collector = GRPCReceiver()
    try:
        proxy = start_proxy(["--upstream", mlflow_server.url], env={
            "OTEL_EXPORTER_OTLP_PROTOCOL": UNSET,
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"http://localhost:{collector.port}",
            "OTEL_METRIC_EXPORT_INTERVAL": "300"})
        assert "mode=mlflow-only" in proxy.log()
        result, _ = run_workload(proxy.url, script="seed_examples.py", SEED_EXAMPLE="metrics", WORKLOAD_EXPERIMENT="seed-metrics")

        def durations():
            return [metric for _, request in list(collector.metrics) for rm in request.resource_metrics for sm in rm.scope_metrics
                    for metric in sm.metrics if metric.name == "mlflow.trace.span.duration" and metric.histogram.data_points]

        found = wait_for(durations, timeout=30, message="span-duration metrics at the gRPC collector")
        assert sum(point.count for point in found[-1].histogram.data_points) == 1
        # MLflow-only: the trace went to MLflow untouched, and no span went to the collector.
        assert wait_for(lambda: mlflow_server.client().get_trace(result["trace_id"]), message="the trace in MLflow")
        assert collector.all_spans() == []
    finally:
        collector.close()


def test_the_configurations_block_sends_http_protobuf_with_its_headers(receiver, start_proxy):
    """The page's last block: the same endpoint URL, but http/protobuf and a header (sent only to the collector)."""
    proxy = start_proxy(env={
        "OTEL_EXPORTER_OTLP_PROTOCOL": UNSET,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.url}/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api_key=12345"})
    run_workload(proxy.url, script="seed_examples.py", SEED_EXAMPLE="otel-only")
    wait_for(lambda: receiver.all_spans(), message="the span at the HTTP collector")
    assert receiver.requests[0].path == "/v1/traces" and receiver.requests[0].headers["api_key"] == "12345"


def test_the_other_protocols_well_known_port_gets_a_warning(tmp_path):
    """4318 is OTLP/HTTP's port: with MLflow's default (gRPC) nothing would arrive there, and the proxy says so; the
    same for http/protobuf to 4317. The warning is in the start-up log and in check-config."""
    cases = [({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "OTLP/gRPC to port 4318"),
             ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
              "OTLP/HTTP to port 4317"),
             ({"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:4318",
               "MLFLOW_TRACKING_URI": "http://127.0.0.1:5999"}, "metrics destination")]
    for env, warning in cases:
        checked = subprocess.run([Proxy.BINARY, "check-config"], env=clean_environment(**env), capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stderr
        assert warning in checked.stdout + checked.stderr, (env, checked.stdout + checked.stderr)
    quiet = subprocess.run([Proxy.BINARY, "check-config"], env=clean_environment(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317"),
                           capture_output=True, text=True, timeout=60)
    assert "warning" not in quiet.stdout + quiet.stderr
