import Foundation
import MLflowWire
import OTLPProto
import TraceAssembly

/// A stored trace as the live path assembles it.
extension StoredTraceDecoder {
    /// Why a stored trace cannot be exported.
    public enum Skip: String, Sendable, Equatable {
        /// MLflow holds no span of it (an unfinished trace, or spans that were never uploaded).
        case noSpans = "no_spans"
        /// Its spans belong to more than one trace id, or to another id than the record's.
        case mixedTraceIDs = "mixed_trace_ids"
    }

    /// The trace the live path would have assembled from `info` and `spans`.
    public static func assemble(_ stored: StoredTraceInfo, spans batch: SpanBatch) -> Result<AssembledTrace, SkipReason> {
        guard let first = batch.spans.first else { return .failure(SkipReason(.noSpans)) }
        let traceID = first.traceID
        guard batch.spans.allSatisfy({ $0.traceID == traceID }) else { return .failure(SkipReason(.mixedTraceIDs)) }
        if let expected = stored.info.otelTraceID, expected != [UInt8](traceID) { return .failure(SkipReason(.mixedTraceIDs)) }
        let experimentID = batch.experimentID ?? stored.info.experimentID
        let spans = batch.spans.map {
            AssembledSpan(
                span: $0, encoding: batch.encoding, resourceAttributes: batch.resourceAttributes, experimentID: experimentID, scope: batch.scope)
        }
        return .success(AssembledTrace(traceID: traceID, spans: spans, info: stored.info, completion: .complete))
    }

    /// A ``Skip`` as an error value.
    public struct SkipReason: Error, Sendable, Equatable {
        /// The reason.
        public var skip: Skip
        init(_ skip: Skip) { self.skip = skip }
    }
}
