"""Sends N traces the way a 3.17 client does (POST /v1/traces with 5 spans, then StartTraceV3), one after the
other on one keep-alive connection, each with a fresh trace id; the payload files come from
Tests/benchmarks/ingest/make_payload.py. Usage: drive.py PAYLOAD PORT N"""

import http.client
import json
import os
import sys

payload, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
spans = open(payload + ".bin", "rb").read()
info = open(payload + ".info.json", "rb").read()
meta = json.load(open(payload + ".json"))
PLACEHOLDER = bytes(range(0xA0, 0xB0))


def fill(template, raw_offsets, hex_offsets, trace_id):
    data = bytearray(template)
    for offset in raw_offsets:
        data[offset:offset + 16] = trace_id
    for offset in hex_offsets:
        data[offset:offset + 32] = trace_id.hex().encode()
    return bytes(data)


connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
for _ in range(count):
    trace_id = os.urandom(16)
    for path, body, content_type in (
        ("/v1/traces", fill(spans, meta["binary_offsets"], meta["hex_offsets"], trace_id), "application/x-protobuf"),
        ("/api/3.0/mlflow/traces", fill(info, [], meta["info_offsets"], trace_id), "application/json"),
    ):
        connection.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, (path, response.status)
print(f"sent {count} traces")
