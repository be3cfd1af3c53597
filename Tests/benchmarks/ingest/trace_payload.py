"""The calls a 3.17 client makes per trace, from the payload make_payload.py wrote: for a fresh random trace id, the
span upload (/v1/traces, protobuf, 5 spans) and then its StartTraceV3. Shared by send_traces.py and paced_clients.py
(ingest.lua makes the same calls in wrk)."""

import json
import os


class TracePayload:
    def __init__(self, payload):
        self.spans = open(payload + ".bin", "rb").read()
        self.info = open(payload + ".info.json", "rb").read()
        self.meta = json.load(open(payload + ".json"))

    @staticmethod
    def fill(template, raw, hex_id, binary_offsets, hex_offsets):
        out = bytearray(template)
        for offset in binary_offsets:
            out[offset:offset + 16] = raw
        for offset in hex_offsets:
            out[offset:offset + 32] = hex_id
        return bytes(out)

    def trace(self):
        """The two calls of one new trace: (path, body, headers) each."""
        raw = os.urandom(16)
        hex_id = raw.hex().encode()
        return (
            ("/v1/traces", self.fill(self.spans, raw, hex_id, self.meta["binary_offsets"], self.meta["hex_offsets"]),
             {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0"}),
            ("/api/3.0/mlflow/traces", self.fill(self.info, raw, hex_id, [], self.meta["info_offsets"]),
             {"Content-Type": "application/json"}),
        )
