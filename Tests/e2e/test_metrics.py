"""Span metrics over OTLP: the histogram the receiver gets matches the spans sent, for both temporalities;
OTEL_METRICS_EXPORTER=none switches it off; metrics are flushed on shutdown."""

import time

import pytest

from captures import exchanges, is_trace_upload, replay, sent_spans
from conftest import wait_for

UPLOADS = [e for e in exchanges("3.17.2/01_sync") if is_trace_upload(e)]
SENT = sent_spans(UPLOADS)


def points(receiver, name="mlflow.trace.span.duration"):
    result = []
    for _, request in list(receiver.metrics):
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        result += [(metric, point) for point in metric.histogram.data_points]
    return result


def attrs(point):
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in point.attributes}


def expected_counts():
    counts = {}
    for name, parent, start, end in SENT.values():
        counts[parent == ""] = counts.get(parent == "", 0) + 1
    return counts


@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
def test_span_duration_histogram_matches_the_spans(temporality, receiver, start_proxy):
    proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_METRIC_EXPORT_INTERVAL": "300",
                             "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": temporality, "OTEL_SERVICE_NAME": "metrics-test"})
    replay(proxy.port, UPLOADS)
    wait_for(lambda: len(receiver.all_spans()) >= len(SENT), message="spans")

    def total():
        found = points(receiver)
        if temporality == "cumulative":
            # The latest export holds the totals.
            latest = max((p.time_unix_nano for _, p in found), default=0)
            found = [(m, p) for m, p in found if p.time_unix_nano == latest]
        return sum(p.count for _, p in found), found

    wait_for(lambda: total()[0] >= len(SENT), timeout=20, message="span-duration metrics")
    time.sleep(1)  # a few more intervals: cumulative totals stay, delta periods add nothing
    count, found = total()
    assert count == len(SENT)
    metric = found[0][0]
    assert metric.unit == "ms" and metric.histogram.aggregation_temporality == (1 if temporality == "delta" else 2)
    by_root = {}
    for _, point in found:
        values = attrs(point)
        assert values["experiment_id"] == "1" and values["span_status"] in ("OK", "ERROR") and values["span_type"]
        by_root[values["root"]] = by_root.get(values["root"], 0) + point.count
        assert sum(point.bucket_counts) == point.count
        assert list(point.explicit_bounds) == [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]
    assert by_root == expected_counts()
    durations = sum((end - start) / 1e6 for _, _, start, end in SENT.values())
    assert abs(sum(point.sum for _, point in found) - durations) < 0.01
    tokens = points(receiver, "gen_ai.client.token.usage")
    assert {attrs(p)["gen_ai.token.type"] for _, p in tokens} == {"input", "output"}
    for headers, request in receiver.metrics:
        resource = {kv.key: kv.value.string_value for kv in request.resource_metrics[0].resource.attributes}
        assert resource["service.name"] == "metrics-test"


def test_metrics_exporter_none_switches_metrics_off(receiver, start_proxy):
    proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_METRIC_EXPORT_INTERVAL": "200", "OTEL_METRICS_EXPORTER": "none"})
    replay(proxy.port, UPLOADS)
    wait_for(lambda: len(receiver.all_spans()) >= len(SENT), message="spans")
    time.sleep(1)
    proxy.stop()
    assert receiver.metrics == []


def test_metrics_are_flushed_on_shutdown(receiver, start_proxy):
    proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url + "/v1/traces",
                             "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": receiver.url + "/v1/metrics", "OTEL_METRIC_EXPORT_INTERVAL": "600000"})
    replay(proxy.port, UPLOADS)
    wait_for(lambda: len(receiver.all_spans()) >= len(SENT), message="spans")
    assert receiver.metrics == []
    assert proxy.stop() == 0
    assert sum(p.count for _, p in points(receiver)) == len(SENT)


def test_a_destination_in_the_config_file_gets_metrics(receiver, start_proxy, tmp_path):
    import json

    config = tmp_path / "metrics.yaml"
    config.write_text(json.dumps({"destinations": {"vendor": {
        "endpoint": receiver.url, "protocol": "http/protobuf", "headers": {"x-api-key": "s3cr3t-api-key"}, "metrics": {"enabled": True, "interval": "300ms"}}}}))
    proxy = start_proxy(["--config", str(config)])
    replay(proxy.port, UPLOADS)
    wait_for(lambda: sum(p.count for _, p in points(receiver)) >= len(SENT), timeout=20, message="metrics at the destination")
    assert all(headers["x-api-key"] == "s3cr3t-api-key" for headers, _ in receiver.metrics)
