import Foundation
import OTLPProto
import SwiftProtobuf

/// Decodes an OTLP `ExportTraceServiceRequest` from protobuf bytes into the generated messages, by hand: one
/// pass over the bytes, no generic decoder, no type metadata lookups. What it produces is what SwiftProtobuf
/// produces for the same bytes (`OTLPBinaryTests` compares the two on captured uploads and on random
/// messages); anything it does not take (unknown fields, a singular message sent twice, groups, invalid UTF-8,
/// malformed bytes) goes to SwiftProtobuf instead, which keeps or rejects it as it always did.
public enum TraceRequestDecoder {
    /// The decoded request.
    /// - Parameter structuredSpanAttributesAsJSON: span attribute values that are key-value lists or arrays come
    ///   out as the JSON string the translator makes of them (`AttributeValueNormalizer`), written straight from
    ///   the bytes instead of being built as nested messages first. Only on the fast path: what SwiftProtobuf
    ///   decodes keeps its typed values, which the translator then turns into the same strings.
    /// - Throws: SwiftProtobuf's error when the bytes are not a valid request.
    public static func decode(_ bytes: UnsafeRawBufferPointer, structuredSpanAttributesAsJSON: Bool = false) throws
        -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
    {
        do {
            return try decodeFast(bytes, structuredSpanAttributesAsJSON: structuredSpanAttributesAsJSON)
        } catch {
            return try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: [UInt8](bytes))
        }
    }

    /// The hand-written path alone (tests use it to see that it, not the fallback, decoded a message).
    public static func decodeFast(_ bytes: UnsafeRawBufferPointer, structuredSpanAttributesAsJSON: Bool = false) throws(NotOnFastPath)
        -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
    {
        var reader = ProtoReader(bytes)
        var request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        while !reader.isAtEnd {
            let (field, wireType) = try reader.tag()
            switch field {
            case 1:
                var nested = try reader.message(wireType)
                request.resourceSpans.append(try resourceSpans(&nested, asJSON: structuredSpanAttributesAsJSON))
            default: throw NotOnFastPath("ExportTraceServiceRequest field \(field)")
            }
        }
        return request
    }

    static func resourceSpans(_ reader: inout ProtoReader, asJSON: Bool) throws(NotOnFastPath) -> Opentelemetry_Proto_Trace_V1_ResourceSpans {
        var result = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        while !reader.isAtEnd {
            let (field, wireType) = try reader.tag()
            switch field {
            case 1:
                guard !result.hasResource else { throw NotOnFastPath("resource twice") }
                var nested = try reader.message(wireType)
                result.resource = try resource(&nested)
            case 2:
                var nested = try reader.message(wireType)
                result.scopeSpans.append(try scopeSpans(&nested, asJSON: asJSON))
            case 3:
                result.schemaURL = try reader.string(wireType)
            default: throw NotOnFastPath("ResourceSpans field \(field)")
            }
        }
        return result
    }

    static func resource(_ reader: inout ProtoReader) throws(NotOnFastPath) -> Opentelemetry_Proto_Resource_V1_Resource {
        var result = Opentelemetry_Proto_Resource_V1_Resource()
        while !reader.isAtEnd {
            let (field, wireType) = try reader.tag()
            switch field {
            case 1:
                var nested = try reader.message(wireType)
                result.attributes.append(try keyValue(&nested, depth: 0))
            case 2:
                result.droppedAttributesCount = try reader.uint32(wireType)
            default: throw NotOnFastPath("Resource field \(field)")  // entity refs go through SwiftProtobuf
            }
        }
        return result
    }

    static func scopeSpans(_ reader: inout ProtoReader, asJSON: Bool) throws(NotOnFastPath) -> Opentelemetry_Proto_Trace_V1_ScopeSpans {
        var result = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        while !reader.isAtEnd {
            let (field, wireType) = try reader.tag()
            switch field {
            case 1:
                guard !result.hasScope else { throw NotOnFastPath("scope twice") }
                var nested = try reader.message(wireType)
                result.scope = try scope(&nested)
            case 2:
                var nested = try reader.message(wireType)
                result.spans.append(try span(&nested, asJSON: asJSON))
            case 3:
                result.schemaURL = try reader.string(wireType)
            default: throw NotOnFastPath("ScopeSpans field \(field)")
            }
        }
        return result
    }

    static func scope(_ reader: inout ProtoReader) throws(NotOnFastPath) -> Opentelemetry_Proto_Common_V1_InstrumentationScope {
        var result = Opentelemetry_Proto_Common_V1_InstrumentationScope()
        while !reader.isAtEnd {
            let (field, wireType) = try reader.tag()
            switch field {
            case 1:
                result.name = try reader.string(wireType)
            case 2:
                result.version = try reader.string(wireType)
            case 3:
                var nested = try reader.message(wireType)
                result.attributes.append(try keyValue(&nested, depth: 0))
            case 4:
                result.droppedAttributesCount = try reader.uint32(wireType)
            default: throw NotOnFastPath("InstrumentationScope field \(field)")
            }
        }
        return result
    }

    static func span(_ reader: inout ProtoReader, asJSON: Bool) throws(NotOnFastPath) -> Opentelemetry_Proto_Trace_V1_Span {
        var span = Opentelemetry_Proto_Trace_V1_Span()
        var attributes: [Opentelemetry_Proto_Common_V1_KeyValue] = []
        attributes.reserveCapacity(12)
        var events: [Opentelemetry_Proto_Trace_V1_Span.Event] = []
        var links: [Opentelemetry_Proto_Trace_V1_Span.Link] = []
        while !reader.isAtEnd {
            let (field, wireType) = try reader.tag()
            switch field {
            case 1:
                span.traceID = try reader.data(wireType)
            case 2:
                span.spanID = try reader.data(wireType)
            case 3:
                span.traceState = try reader.string(wireType)
            case 4:
                span.parentSpanID = try reader.data(wireType)
            case 5:
                span.name = try reader.string(wireType)
            case 6:
                try ProtoReader.expect(wireType, .varint)
                span.kind = .init(rawValue: Int(Int32(truncatingIfNeeded: try reader.varint()))) ?? .unspecified
            case 7:
                span.startTimeUnixNano = try reader.fixed64(wireType)
            case 8:
                span.endTimeUnixNano = try reader.fixed64(wireType)
            case 9:
                var nested = try reader.message(wireType)
                attributes.append(try keyValue(&nested, depth: 0, structuredAsJSON: asJSON))
            case 10:
                span.droppedAttributesCount = try reader.uint32(wireType)
            case 11:
                var nested = try reader.message(wireType)
                events.append(try event(&nested))
            case 12:
                span.droppedEventsCount = try reader.uint32(wireType)
            case 13:
                var nested = try reader.message(wireType)
                links.append(try link(&nested))
            case 14:
                span.droppedLinksCount = try reader.uint32(wireType)
            case 15:
                guard !span.hasStatus else { throw NotOnFastPath("status twice") }
                var nested = try reader.message(wireType)
                span.status = try status(&nested)
            case 16:
                span.flags = try reader.fixed32(wireType)
            default: throw NotOnFastPath("Span field \(field)")
            }
        }
        // Set once each: every setter of a message with storage checks its uniqueness.
        if !attributes.isEmpty { span.attributes = attributes }
        if !events.isEmpty { span.events = events }
        if !links.isEmpty { span.links = links }
        return span
    }

    static func event(_ reader: inout ProtoReader) throws(NotOnFastPath) -> Opentelemetry_Proto_Trace_V1_Span.Event {
        var result = Opentelemetry_Proto_Trace_V1_Span.Event()
        while !reader.isAtEnd {
            let (field, wireType) = try reader.tag()
            switch field {
            case 1:
                result.timeUnixNano = try reader.fixed64(wireType)
            case 2:
                result.name = try reader.string(wireType)
            case 3:
                var nested = try reader.message(wireType)
                result.attributes.append(try keyValue(&nested, depth: 0))
            case 4:
                result.droppedAttributesCount = try reader.uint32(wireType)
            default: throw NotOnFastPath("Event field \(field)")
            }
        }
        return result
    }

    static func link(_ reader: inout ProtoReader) throws(NotOnFastPath) -> Opentelemetry_Proto_Trace_V1_Span.Link {
        var result = Opentelemetry_Proto_Trace_V1_Span.Link()
        while !reader.isAtEnd {
            let (field, wireType) = try reader.tag()
            switch field {
            case 1:
                result.traceID = try reader.data(wireType)
            case 2:
                result.spanID = try reader.data(wireType)
            case 3:
                result.traceState = try reader.string(wireType)
            case 4:
                var nested = try reader.message(wireType)
                result.attributes.append(try keyValue(&nested, depth: 0))
            case 5:
                result.droppedAttributesCount = try reader.uint32(wireType)
            case 6:
                result.flags = try reader.fixed32(wireType)
            default: throw NotOnFastPath("Link field \(field)")
            }
        }
        return result
    }

    static func status(_ reader: inout ProtoReader) throws(NotOnFastPath) -> Opentelemetry_Proto_Trace_V1_Status {
        var result = Opentelemetry_Proto_Trace_V1_Status()
        while !reader.isAtEnd {
            let (field, wireType) = try reader.tag()
            switch field {
            case 2:
                result.message = try reader.string(wireType)
            case 3:
                try ProtoReader.expect(wireType, .varint)
                result.code = .init(rawValue: Int(Int32(truncatingIfNeeded: try reader.varint()))) ?? .unset
            default: throw NotOnFastPath("Status field \(field)")
            }
        }
        return result
    }

    static func keyValue(_ reader: inout ProtoReader, depth: Int, structuredAsJSON: Bool = false) throws(NotOnFastPath)
        -> Opentelemetry_Proto_Common_V1_KeyValue
    {
        var result = Opentelemetry_Proto_Common_V1_KeyValue()
        var hasValue = false  // a flag, not `result.hasValue`: that reads (copies) the optional value each time
        while !reader.isAtEnd {
            let (field, wireType) = try reader.tag()
            switch field {
            case 1:
                result.key = try reader.attributeKey(wireType)
            case 2:
                try ProtoReader.expect(wireType, .lengthDelimited)
                guard !hasValue else { throw NotOnFastPath("value twice") }
                hasValue = true
                let range = try reader.lengthDelimited()
                if structuredAsJSON && StructuredValueJSON.isStructured(reader, range) {
                    var value = Opentelemetry_Proto_Common_V1_AnyValue()
                    value.stringValue = try StructuredValueJSON.text(reader, range)
                    result.value = value
                } else {
                    var nested = reader.nested(range)
                    result.value = try anyValue(&nested, depth: depth + 1)
                }
            default: throw NotOnFastPath("KeyValue field \(field)")  // key_strindex (profiles only) too
            }
        }
        return result
    }

    /// Values nested deeper than this are left to SwiftProtobuf, whose recursion limit (100 messages) then
    /// rejects a hostile upload instead of this decoder recursing without bound.
    static let maxValueDepth = 24

    static func anyValue(_ reader: inout ProtoReader, depth: Int) throws(NotOnFastPath) -> Opentelemetry_Proto_Common_V1_AnyValue {
        guard depth <= maxValueDepth else { throw NotOnFastPath("values nested deeper than \(maxValueDepth)") }
        var result = Opentelemetry_Proto_Common_V1_AnyValue()
        var hasMember = false  // a flag, not `result.value == nil`: that compares (copies) the oneof each time
        while !reader.isAtEnd {
            let (field, wireType) = try reader.tag()
            // A second member of the oneof: SwiftProtobuf merges same-typed messages, so that case is its to decide.
            guard !hasMember else { throw NotOnFastPath("AnyValue with two values") }
            hasMember = true
            switch field {
            case 1:
                result.value = .stringValue(try reader.string(wireType))
            case 2:
                try ProtoReader.expect(wireType, .varint)
                result.value = .boolValue(try reader.varint() != 0)
            case 3:
                try ProtoReader.expect(wireType, .varint)
                result.value = .intValue(Int64(bitPattern: try reader.varint()))
            case 4:
                result.value = .doubleValue(Double(bitPattern: try reader.fixed64(wireType)))
            case 5:
                var nested = try reader.message(wireType)
                var array = Opentelemetry_Proto_Common_V1_ArrayValue()
                while !nested.isAtEnd {
                    let (inner, innerType) = try nested.tag()
                    guard inner == 1 else { throw NotOnFastPath("ArrayValue field \(inner)") }
                    var element = try nested.message(innerType)
                    array.values.append(try anyValue(&element, depth: depth + 1))
                }
                result.value = .arrayValue(array)
            case 6:
                var nested = try reader.message(wireType)
                var list = Opentelemetry_Proto_Common_V1_KeyValueList()
                while !nested.isAtEnd {
                    let (inner, innerType) = try nested.tag()
                    guard inner == 1 else { throw NotOnFastPath("KeyValueList field \(inner)") }
                    var element = try nested.message(innerType)
                    list.values.append(try keyValue(&element, depth: depth))
                }
                result.value = .kvlistValue(list)
            case 7:
                result.value = .bytesValue(try reader.data(wireType))
            default: throw NotOnFastPath("AnyValue field \(field)")  // string_value_strindex (profiles only) too
            }
        }
        return result
    }
}
