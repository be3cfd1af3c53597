"""Helpers to read spans received as OTLP protobuf messages."""

import json


def value(any_value):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind)


def attributes(message):
    return {kv.key: value(kv.value) for kv in message.attributes}


def kinds(message):
    return {kv.key: kv.value.WhichOneof("value") for kv in message.attributes}


def by_trace(received):
    traces = {}
    for resource, scope, span in received:
        traces.setdefault(span.trace_id.hex(), []).append((resource, scope, span))
    return traces


def check_trace(expected, received_spans):
    """Every expected span exactly once, parents as the client created them, ids as MLflow reported them."""
    spans = [span for _, _, span in received_spans]
    names = sorted(span.name for span in spans)
    assert names == sorted(expected["spans"]), f"spans of {expected['trace_id']}: {names}"
    assert len({span.span_id for span in spans}) == len(spans), "a span arrived twice"
    id_to_name = {span.span_id: span.name for span in spans}
    for span in spans:
        assert "tr-" + span.trace_id.hex() == expected["trace_id"]
        assert len(span.span_id) == 8
        parent = id_to_name.get(span.parent_span_id) if span.parent_span_id else None
        assert parent == expected["spans"][span.name], f"parent of {span.name}"
    return {span.name: span for span in spans}


def json_loads_or_value(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text
