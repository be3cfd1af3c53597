"""Sends COUNT MLflow-shaped traces to the proxy, one after the other over one keep-alive connection: each one the
span upload (/v1/traces, protobuf, 5 spans) and the StartTraceV3 a 3.17 client sends, with a fresh random trace id,
from the payload make_payload.py wrote. Fails on any answer but 200.
Usage: send_traces.py PAYLOAD PORT COUNT"""

import http.client
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trace_payload import TracePayload  # noqa: E402

payload, port, count = TracePayload(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
for _ in range(count):
    for path, body, headers in payload.trace():
        connection.request("POST", path, body, headers)
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            sys.exit(f"{path}: HTTP {answer.status}")
