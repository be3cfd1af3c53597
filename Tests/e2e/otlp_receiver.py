"""An OTLP/HTTP receiver for the tests: decodes every request with the official protobuf definitions
(`opentelemetry-proto` from PyPI) and keeps it, with the headers it arrived with."""

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class ReceivedRequest:
    def __init__(self, path, headers, raw, message):
        self.path = path
        self.headers = headers
        self.raw = raw
        self.message = message

    def spans(self):
        for resource_spans in self.message.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    yield resource_spans.resource, scope_spans.scope, span


class OTLPReceiver:
    """Started on 127.0.0.1 on a free port; `status` can be changed to inject failures."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.status = 200
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
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                with receiver.lock:
                    receiver.requests.append(ReceivedRequest(self.path, dict(self.headers.items()), raw, message))
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

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
