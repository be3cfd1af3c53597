"""Every captured exchange (clients 2.22.5, 3.1.4 and 3.17.2, fault and stub runs included) replayed through
the proxy in OpenTelemetry-only mode: what arrives at the OTLP receiver is checked against what the client sent."""

import pytest

from captures import capture_names, exchanges, is_trace_upload, replay, sent_spans
from conftest import wait_for


def received(receiver):
    result = {}
    for _, _, span in receiver.all_spans():
        key = (span.trace_id.hex(), span.span_id.hex())
        assert key not in result, f"span {key} exported twice"
        result[key] = (span.name, span.parent_span_id.hex(), span.start_time_unix_nano, span.end_time_unix_nano)
    return result


@pytest.mark.parametrize("capture", capture_names())
def test_capture_replays_through_the_proxy(capture, receiver, start_proxy):
    uploads = [e for e in exchanges(capture) if is_trace_upload(e)]
    expected = sent_spans(uploads)
    proxy = start_proxy(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}, args=["--trace-info-wait", "2"])
    statuses = replay(proxy.port, uploads)
    # A healthy proxy answers every upload of a real client with 200 (never 5xx, 408 or 429). The one
    # exception is a call the client could only make after a broken server answer (t03: StartTrace answered
    # {} so the client PATCHed an empty request id): that gets a 400 saying what is wrong.
    for method, path, status in statuses:
        assert status == (400 if path.endswith("/traces/") else 200), statuses
    if expected:
        wait_for(lambda: len(receiver.all_spans()) >= len(expected), timeout=20, message=f"{len(expected)} spans")
    assert received(receiver) == expected
