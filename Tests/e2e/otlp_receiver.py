"""An OTLP/HTTP receiver for the tests: decodes every request with the official protobuf definitions
(`opentelemetry-proto` from PyPI) and keeps it, with the headers it arrived with."""

import base64
import gzip
import json
import socket
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def parse_otlp_json(body):
    """OTLP/JSON → message: hex ids become base64 (protobuf JSON), as the OTLP spec's JSON mapping requires."""
    data = json.loads(body)

    def convert(node):
        if isinstance(node, dict):
            return {key: (base64.b64encode(bytes.fromhex(value)).decode() if key in ("traceId", "spanId", "parentSpanId")
                          and isinstance(value, str) else convert(value)) for key, value in node.items()}
        if isinstance(node, list):
            return [convert(item) for item in node]
        return node

    return json_format.ParseDict(convert(data), ExportTraceServiceRequest(), ignore_unknown_fields=False)


class ReceivedRequest:
    def __init__(self, path, headers, raw, message):
        self.path = path
        self.headers = headers
        self.raw = raw
        self.message = message
        self.status = 200
        self.at = time.monotonic()

    def spans(self):
        for resource_spans in self.message.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    yield resource_spans.resource, scope_spans.scope, span


class OTLPReceiver:
    """Started on 127.0.0.1 on a free port; `status` can be changed to inject failures, and `script` lists
    faults for the next trace requests, one each, in order: a status (`503`), a status with headers
    (`(429, {"Retry-After": "2"})`), `"reset"` (the connection is reset instead of an answer),
    `"reset_mid_response"` (reset after the head and part of the body), `("slow", seconds)` (200, that late) or
    `("partial", n)` (200 with a partial success rejecting n spans)."""

    def __init__(self, tls=None, port=0):
        """`tls`: optional dict with certfile, keyfile and (for mutual TLS) client_ca; `port`: 0 for a free one."""
        self.requests = []
        self.metrics = []  # (headers, ExportMetricsServiceRequest) for every POST to …/v1/metrics
        self.tls_errors = []
        self.lock = threading.Lock()
        self.status = 200
        self.script = []
        # When set, a trace request whose `api-key` header is not one of these gets 401 (a vendor after a key rotation).
        self.accepted_keys = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                raw = body
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path.endswith("/v1/metrics"):
                    metrics = ExportMetricsServiceRequest()
                    metrics.ParseFromString(body)
                    with receiver.lock:
                        receiver.metrics.append((dict(self.headers.items()), metrics))
                    payload = ExportMetricsServiceResponse().SerializeToString()
                    self.send_response(receiver.status)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if self.headers.get("Content-Type") == "application/json":
                    message = parse_otlp_json(body)
                else:
                    message = ExportTraceServiceRequest()
                    message.ParseFromString(body)
                received = ReceivedRequest(self.path, dict(self.headers.items()), raw, message)
                with receiver.lock:
                    action = receiver.script.pop(0) if receiver.script else receiver.status
                    if receiver.accepted_keys is not None and self.headers.get("api-key") not in receiver.accepted_keys:
                        action = 401
                    receiver.requests.append(received)
                headers = {}
                response = ExportTraceServiceResponse()
                if isinstance(action, tuple) and action[0] == "slow":
                    time.sleep(action[1])  # answers, late
                    action = 200
                if action in ("reset", "reset_mid_response"):
                    received.status = None
                    if action == "reset_mid_response":  # the head and part of the body, then a reset
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100\r\n\r\n\x0a\x05")
                        self.wfile.flush()
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if isinstance(action, tuple) and action[0] == "partial":
                    response.partial_success.rejected_spans = action[1]
                    response.partial_success.error_message = f"{action[1]} spans rejected by the test receiver"
                    action = 200
                elif isinstance(action, tuple):
                    action, headers = action
                received.status = action
                payload = response.SerializeToString()
                if action == 401:
                    payload = b'{"code": 16, "message": "invalid API key (test receiver)"}'
                    headers = {**headers, "Content-Type": "application/json"}
                self.send_response(received.status)
                if "Content-Type" not in headers:
                    self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls["certfile"], tls["keyfile"])
            if tls.get("client_ca"):
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(tls["client_ca"])
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True, do_handshake_on_connect=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def accepted_spans(self):
        """Spans of the requests answered 200 (what a real backend would have stored)."""
        with self.lock:
            requests = [request for request in self.requests if request.status == 200]
        return [item for request in requests for item in request.spans()]

    def all_spans(self):
        with self.lock:
            requests = list(self.requests)
        return [item for request in requests for item in request.spans()]

    def clear(self):
        with self.lock:
            self.requests.clear()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
