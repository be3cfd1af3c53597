"""An OTLP/gRPC receiver for the tests: a real gRPC server (grpcio) serving TraceService/Export and
MetricsService/Export with the official opentelemetry-proto stubs; it keeps every request with its metadata."""

import threading
import time
from concurrent import futures

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver):
        self.receiver = receiver

    def Export(self, request, context):
        with self.receiver.lock:
            self.receiver.metrics.append(({key: value for key, value in context.invocation_metadata()}, request))
        return metrics_service_pb2.ExportMetricsServiceResponse()


class GRPCReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, tls=None):
        """`tls`: optional dict with certfile and keyfile."""
        self.requests = []
        self.metrics = []  # (metadata, ExportMetricsServiceRequest)
        self.times = []  # when each Export call arrived (monotonic), answered or not
        self.script = []  # faults for the next calls: ("exhausted", retry_delay_seconds or None) or a grpc.StatusCode
        # When set, a call whose `api-key` metadata is not one of these gets UNAUTHENTICATED (a vendor after a key rotation).
        self.accepted_keys = None
        self.rejected = 0
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(self), self.server)
        if tls:
            credentials = grpc.ssl_server_credentials([(open(tls["keyfile"], "rb").read(), open(tls["certfile"], "rb").read())])
            self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Export(self, request, context):
        metadata = {key: value for key, value in context.invocation_metadata()}
        with self.lock:
            self.times.append(time.monotonic())
            action = self.script.pop(0) if self.script else None
            if action is None and self.accepted_keys is not None and metadata.get("api-key") not in self.accepted_keys:
                action = grpc.StatusCode.UNAUTHENTICATED
                self.rejected += 1
            if action is None:
                self.requests.append((metadata, request))
        if isinstance(action, tuple) and action[0] == "exhausted":
            # RESOURCE_EXHAUSTED, with google.rpc.RetryInfo in grpc-status-details-bin when a delay is given.
            status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message="quota exceeded (test receiver)")
            if action[1] is not None:
                retry_info = error_details_pb2.RetryInfo()
                retry_info.retry_delay.FromMilliseconds(int(action[1] * 1000))
                detail = any_pb2.Any()
                detail.Pack(retry_info)
                status.details.append(detail)
                context.set_trailing_metadata([("grpc-status-details-bin", status.SerializeToString())])
            context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
            context.set_details(status.message)
            return trace_service_pb2.ExportTraceServiceResponse()
        if action is not None:
            context.set_code(action)
            context.set_details("injected by the test receiver")
            return trace_service_pb2.ExportTraceServiceResponse()
        return trace_service_pb2.ExportTraceServiceResponse()

    def all_spans(self):
        with self.lock:
            requests = list(self.requests)
        return [span for _, request in requests for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]

    def close(self):
        self.server.stop(grace=None)
