"""Sends COUNT MLflow-shaped traces to the proxy, one after the other over one keep-alive connection: each one the
span upload (/v1/traces, protobuf, 5 spans) and the StartTraceV3 a 3.17 client sends, with a fresh random trace id,
from the payload make_payload.py wrote. Fails on any answer but 200.
Usage: send_traces.py PAYLOAD PORT COUNT"""

import http.client
import json
import os
import sys

payload, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
spans = open(payload + ".bin", "rb").read()
info = open(payload + ".info.json", "rb").read()
meta = json.load(open(payload + ".json"))


def fill(template, raw, hex_id, binary_offsets, hex_offsets):
    out = bytearray(template)
    for offset in binary_offsets:
        out[offset:offset + 16] = raw
    for offset in hex_offsets:
        out[offset:offset + 32] = hex_id
    return bytes(out)


connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
for _ in range(count):
    raw = os.urandom(16)
    hex_id = raw.hex().encode()
    for path, body, headers in (
        ("/v1/traces", fill(spans, raw, hex_id, meta["binary_offsets"], meta["hex_offsets"]),
         {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0"}),
        ("/api/3.0/mlflow/traces", fill(info, raw, hex_id, [], meta["info_offsets"]), {"Content-Type": "application/json"}),
    ):
        connection.request("POST", path, body, headers)
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            sys.exit(f"{path}: HTTP {answer.status}")
