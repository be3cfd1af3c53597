import CompressNIO
import Foundation
import NIOCore
import OTLPBinary
import OTLPJSON
import OTLPProto
import SwiftProtobuf

/// Decodes `POST /v1/traces` bodies: OTLP protobuf or OTLP/JSON, optionally gzip- or deflate-compressed.
public enum OTLPRequestDecoder {
    /// The scope name MLflow's own OTLP exporter uses; its span attributes are JSON text (flavour b).
    public static let mlflowExporterScope = "mlflow.tracing.provider"

    /// The body format a `Content-Type` names.
    public enum BodyFormat: Sendable, Equatable {
        /// `application/x-protobuf`.
        case protobuf
        /// `application/json`.
        case json
    }

    /// The format for a `Content-Type` header, ignoring parameters such as `charset`.
    /// - Throws: ``WireError`` (`unsupportedContentType`) for anything else, or when absent.
    public static func bodyFormat(contentType: String?) throws(WireError) -> BodyFormat {
        if let contentType, let format = format(ofContentType: contentType) { return format }
        throw WireError(
            .unsupportedContentType,
            "Content-Type must be application/x-protobuf or application/json, got \(contentType.map { "\"\($0)\"" } ?? "none")"
        )
    }

    /// The media types an upload may name, lower-case, and their formats.
    private static let mediaTypes: [(name: StaticString, format: BodyFormat)] = [
        ("application/x-protobuf", .protobuf), ("application/json", .json), ("application/protobuf", .protobuf),
    ]

    /// The format a `Content-Type` value names by its media type: the text before any `;`, without the optional
    /// whitespace around it (spaces and tabs, RFC 9110), compared ignoring ASCII case. Read on every upload (several
    /// times), so from the value's bytes: no string built, no Foundation character sets.
    static func format(ofContentType contentType: String) -> BodyFormat? {
        var contentType = contentType
        return contentType.withUTF8 { bytes -> BodyFormat? in
            func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
            var end = bytes.firstIndex(of: UInt8(ascii: ";")) ?? bytes.count
            var start = 0
            while start < end, isSpace(bytes[start]) { start += 1 }
            while end > start, isSpace(bytes[end - 1]) { end -= 1 }
            for (name, format) in mediaTypes where name.utf8CodeUnitCount == end - start {
                let matches = name.withUTF8Buffer { expected in
                    expected.indices.allSatisfy { index in
                        let byte = bytes[start + index]
                        let lower = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
                        return lower == expected[index]
                    }
                }
                if matches { return format }
            }
            return nil
        }
    }

    /// Undoes `Content-Encoding` (`gzip`, `deflate`, `identity` or none).
    /// - Parameter limit: the largest decompressed size accepted.
    public static func decompress(_ body: ByteBuffer, contentEncoding: String?, limit: Int) throws(WireError) -> ByteBuffer {
        let encoding = contentEncoding?.trimmingCharacters(in: .whitespaces).lowercased() ?? "identity"
        let algorithm: CompressionAlgorithm
        switch encoding {
        case "", "identity": return body
        case "gzip", "x-gzip": algorithm = .gzip()
        case "deflate": algorithm = .zlib()
        default: throw WireError(.badEncoding, "Content-Encoding \"\(encoding)\" is not supported; use gzip, deflate or none")
        }
        var input = body
        do {
            return try input.decompress(with: algorithm, maxSize: limit, allocator: ByteBufferAllocator())
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw WireError(.bodyTooLarge, "the decompressed body exceeds the limit of \(limit) bytes")
        } catch {
            throw WireError(.badEncoding, "the body is not valid \(encoding) data")
        }
    }

    /// Decodes an `ExportTraceServiceRequest` and splits it into one ``SpanBatch`` per resource and encoding.
    ///
    /// - Parameters:
    ///   - body: the (already decompressed) body.
    ///   - format: protobuf or JSON.
    ///   - experimentID: the `x-mlflow-experiment-id` header, when present.
    public static func decode(_ body: ByteBuffer, format: BodyFormat, experimentID: String?) throws(WireError) -> [SpanBatch] {
        let request: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
        switch format {
        case .protobuf:
            do {
                // Structured span attributes come out as the JSON strings translation makes of them anyway.
                request = try body.withUnsafeReadableBytes { try TraceRequestDecoder.decode($0, structuredSpanAttributesAsJSON: true) }
            } catch {
                throw WireError(.malformedBody, "the body is not a valid OTLP ExportTraceServiceRequest protobuf")
            }
        case .json:
            do {
                request = try OTLPJSONCoding.decodeTraceRequest(Data(Array(buffer: body)))
            } catch {
                throw WireError(.malformedBody, "the body is not a valid OTLP/JSON ExportTraceServiceRequest: \(error)")
            }
        }
        return try batches(from: request, experimentID: experimentID)
    }

    /// Splits a decoded request into batches and checks every id's length.
    public static func batches(
        from request: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest,
        experimentID: String?
    ) throws(WireError) -> [SpanBatch] {
        var result: [SpanBatch] = []
        for resourceSpans in request.resourceSpans {
            for scopeSpans in resourceSpans.scopeSpans where !scopeSpans.spans.isEmpty {
                for span in scopeSpans.spans {
                    // Read from the bytes: `Data`'s iterator costs more than the check.
                    guard span.traceID.count == 16, span.traceID.withUnsafeBytes({ $0.contains { $0 != 0 } }) else {
                        throw WireError(.invalidID, "span \"\(span.name)\" has a trace id of \(span.traceID.count) bytes; expected 16 non-zero bytes")
                    }
                    guard span.spanID.count == 8 else {
                        throw WireError(.invalidID, "span \"\(span.name)\" has a span id of \(span.spanID.count) bytes; expected 8")
                    }
                    guard span.parentSpanID.isEmpty || span.parentSpanID.count == 8 else {
                        throw WireError(
                            .invalidID, "span \"\(span.name)\" has a parent span id of \(span.parentSpanID.count) bytes; expected 8 or none")
                    }
                }
                let encoding: AttributeEncoding = scopeSpans.scope.name == mlflowExporterScope ? .jsonText : .typed
                var batch = SpanBatch(
                    spans: scopeSpans.spans,
                    resourceAttributes: resourceSpans.resource.attributes,
                    encoding: encoding,
                    experimentID: experimentID
                )
                if scopeSpans.hasScope && !scopeSpans.scope.name.isEmpty && scopeSpans.scope.name != mlflowExporterScope {
                    batch.scope = scopeSpans.scope
                }
                result.append(batch)
            }
        }
        return result
    }
}
