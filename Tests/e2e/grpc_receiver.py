"""An OTLP/gRPC receiver for the tests: a real gRPC server (grpcio) serving TraceService/Export with the
official opentelemetry-proto stubs; it keeps every request with its metadata."""

import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class GRPCReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, tls=None):
        """`tls`: optional dict with certfile and keyfile."""
        self.requests = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        if tls:
            credentials = grpc.ssl_server_credentials([(open(tls["keyfile"], "rb").read(), open(tls["certfile"], "rb").read())])
            self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Export(self, request, context):
        metadata = {key: value for key, value in context.invocation_metadata()}
        with self.lock:
            self.requests.append((metadata, request))
        return trace_service_pb2.ExportTraceServiceResponse()

    def all_spans(self):
        with self.lock:
            requests = list(self.requests)
        return [span for _, request in requests for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]

    def close(self):
        self.server.stop(grace=None)
