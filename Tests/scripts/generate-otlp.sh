#!/usr/bin/env bash
# Regenerates Sources/OTLPProto from the committed descriptor set (Protos/opentelemetry-proto.binpb,
# made by make_descriptor_set.py from the PyPI package opentelemetry-proto==1.45.2) and Protos/google/rpc.
# Needs protoc (Debian: protobuf-compiler). The output is committed; the build never runs this.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build --product protoc-gen-swift >/dev/null
swift build --product protoc-gen-grpc-swift-2 >/dev/null
BIN=$(swift build --show-bin-path)
OUT=Sources/OTLPProto
rm -f "$OUT"/*.pb.swift "$OUT"/*.grpc.swift
protoc --descriptor_set_in=Protos/opentelemetry-proto.binpb \
  --plugin=protoc-gen-swift="$BIN/protoc-gen-swift" --swift_out="$OUT" \
  --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores \
  opentelemetry/proto/common/v1/common.proto opentelemetry/proto/resource/v1/resource.proto \
  opentelemetry/proto/trace/v1/trace.proto opentelemetry/proto/metrics/v1/metrics.proto \
  opentelemetry/proto/collector/trace/v1/trace_service.proto \
  opentelemetry/proto/collector/metrics/v1/metrics_service.proto
protoc --proto_path=Protos --plugin=protoc-gen-swift="$BIN/protoc-gen-swift" --swift_out="$OUT" \
  --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores google/rpc/status.proto
# gRPC client stubs for TraceService/Export (and MetricsService), used by the OTLP/gRPC exporter.
protoc --descriptor_set_in=Protos/opentelemetry-proto.binpb \
  --plugin=protoc-gen-grpc-swift-2="$BIN/protoc-gen-grpc-swift-2" --grpc-swift-2_out="$OUT" \
  --grpc-swift-2_opt=Visibility=Public,Client=true,Server=false,FileNaming=PathToUnderscores \
  opentelemetry/proto/collector/trace/v1/trace_service.proto opentelemetry/proto/collector/metrics/v1/metrics_service.proto
echo "generated: $(ls "$OUT"/*.pb.swift | wc -l) files"
