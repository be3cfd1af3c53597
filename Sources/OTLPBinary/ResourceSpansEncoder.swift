import Foundation
import OTLPProto
import SwiftProtobuf

/// Encodes `ResourceSpans` to protobuf bytes by hand, byte for byte what SwiftProtobuf writes (fields in number
/// order, proto3 defaults left out, unknown fields last), in one pass: a nested message's length is written
/// after its body, moved into place when it needs more than one byte. `OTLPBinaryTests` compares the
/// output with SwiftProtobuf's on captured uploads and random messages.
public enum ResourceSpansEncoder {
    /// The protobuf bytes of one `ResourceSpans`.
    public static func encode(_ message: Opentelemetry_Proto_Trace_V1_ResourceSpans) -> [UInt8] {
        var writer = ProtoWriter(capacity: 4096)
        write(message, to: &writer)
        return writer.withBytes { Array($0) }
    }

    /// Appends one `ResourceSpans` to `request` as field 1 of an `ExportTraceServiceRequest` (tag, length, bytes):
    /// framed and encoded in the writer's own buffer, then copied onto the request (one copy of the bytes).
    /// - Returns: how many bytes were appended.
    @discardableResult
    public static func append(_ message: Opentelemetry_Proto_Trace_V1_ResourceSpans, asRequestFieldTo request: inout [UInt8]) -> Int {
        var writer = ProtoWriter(capacity: 8192)
        writer.message(1) { writer in write(message, to: &writer) }
        writer.withBytes { request.append(contentsOf: $0) }
        return writer.count
    }

    static func write(_ message: Opentelemetry_Proto_Trace_V1_ResourceSpans, to writer: inout ProtoWriter) {
        if message.hasResource {
            writer.message(1) { writer in write(message.resource, to: &writer) }
        }
        for scopeSpans in message.scopeSpans {
            writer.message(2) { writer in write(scopeSpans, to: &writer) }
        }
        writer.string(3, message.schemaURL)
        writer.unknown(message.unknownFields)
    }

    static func write(_ message: Opentelemetry_Proto_Resource_V1_Resource, to writer: inout ProtoWriter) {
        for attribute in message.attributes { writer.message(1) { writer in write(attribute, to: &writer) } }
        writer.varint(2, UInt64(message.droppedAttributesCount))
        for entity in message.entityRefs {
            // Entity references (rare, newer senders) are written by SwiftProtobuf: same bytes, less code here. It
            // cannot fail: proto3 messages without `Any` fields have nothing that could stop their encoding.
            let bytes = (try? entity.serializedBytes() as [UInt8]) ?? []
            writer.message(3) { writer in bytes.withUnsafeBytes { writer.append($0) } }
        }
        writer.unknown(message.unknownFields)
    }

    static func write(_ message: Opentelemetry_Proto_Trace_V1_ScopeSpans, to writer: inout ProtoWriter) {
        if message.hasScope {
            writer.message(1) { writer in write(message.scope, to: &writer) }
        }
        for span in message.spans { writer.message(2) { writer in write(span, to: &writer) } }
        writer.string(3, message.schemaURL)
        writer.unknown(message.unknownFields)
    }

    static func write(_ message: Opentelemetry_Proto_Common_V1_InstrumentationScope, to writer: inout ProtoWriter) {
        writer.string(1, message.name)
        writer.string(2, message.version)
        for attribute in message.attributes { writer.message(3) { writer in write(attribute, to: &writer) } }
        writer.varint(4, UInt64(message.droppedAttributesCount))
        writer.unknown(message.unknownFields)
    }

    static func write(_ span: Opentelemetry_Proto_Trace_V1_Span, to writer: inout ProtoWriter) {
        writer.data(1, span.traceID)
        writer.data(2, span.spanID)
        writer.string(3, span.traceState)
        writer.data(4, span.parentSpanID)
        writer.string(5, span.name)
        writer.enumValue(6, span.kind.rawValue)
        writer.fixed64(7, span.startTimeUnixNano)
        writer.fixed64(8, span.endTimeUnixNano)
        for attribute in span.attributes { writer.message(9) { writer in write(attribute, to: &writer) } }
        writer.varint(10, UInt64(span.droppedAttributesCount))
        for event in span.events { writer.message(11) { writer in write(event, to: &writer) } }
        writer.varint(12, UInt64(span.droppedEventsCount))
        for link in span.links { writer.message(13) { writer in write(link, to: &writer) } }
        writer.varint(14, UInt64(span.droppedLinksCount))
        if span.hasStatus {
            let status = span.status
            writer.message(15) { writer in
                writer.string(2, status.message)
                writer.enumValue(3, status.code.rawValue)
                writer.unknown(status.unknownFields)
            }
        }
        writer.fixed32(16, span.flags)
        writer.unknown(span.unknownFields)
    }

    static func write(_ event: Opentelemetry_Proto_Trace_V1_Span.Event, to writer: inout ProtoWriter) {
        writer.fixed64(1, event.timeUnixNano)
        writer.string(2, event.name)
        for attribute in event.attributes { writer.message(3) { writer in write(attribute, to: &writer) } }
        writer.varint(4, UInt64(event.droppedAttributesCount))
        writer.unknown(event.unknownFields)
    }

    static func write(_ link: Opentelemetry_Proto_Trace_V1_Span.Link, to writer: inout ProtoWriter) {
        writer.data(1, link.traceID)
        writer.data(2, link.spanID)
        writer.string(3, link.traceState)
        for attribute in link.attributes { writer.message(4) { writer in write(attribute, to: &writer) } }
        writer.varint(5, UInt64(link.droppedAttributesCount))
        writer.fixed32(6, link.flags)
        writer.unknown(link.unknownFields)
    }

    static func write(_ keyValue: Opentelemetry_Proto_Common_V1_KeyValue, to writer: inout ProtoWriter) {
        writer.string(1, keyValue.key)
        // `value` and `hasValue` each copy the optional out of the message (through its generic value witness):
        // the value is read once, and `hasValue` asked only for an empty one (left unset, nothing is written; set
        // to an empty `AnyValue`, an empty field 2 is).
        let value = keyValue.value
        if value.value != nil || !value.unknownFields.data.isEmpty || keyValue.hasValue {
            writer.message(2) { writer in write(value, to: &writer) }
        }
        writer.varint(3, UInt64(bitPattern: Int64(keyValue.keyStrindex)))
        writer.unknown(keyValue.unknownFields)
    }

    static func write(_ value: Opentelemetry_Proto_Common_V1_AnyValue, to writer: inout ProtoWriter) {
        // A member of the oneof is written even when it holds its type's default value.
        switch value.value {
        case .stringValue(let text)?:
            writer.tag(1, .lengthDelimited)
            writer.lengthPrefixed(text)
        case .boolValue(let flag)?:
            writer.tag(2, .varint)
            writer.rawVarint(flag ? 1 : 0)
        case .intValue(let number)?:
            writer.tag(3, .varint)
            writer.rawVarint(UInt64(bitPattern: number))
        case .doubleValue(let number)?:
            writer.tag(4, .fixed64)
            writer.rawFixed64(number.bitPattern)
        case .arrayValue(let array)?:
            writer.message(5) { writer in
                for element in array.values { writer.message(1) { writer in write(element, to: &writer) } }
                writer.unknown(array.unknownFields)
            }
        case .kvlistValue(let list)?:
            writer.message(6) { writer in
                for entry in list.values { writer.message(1) { writer in write(entry, to: &writer) } }
                writer.unknown(list.unknownFields)
            }
        case .bytesValue(let bytes)?:
            writer.tag(7, .lengthDelimited)
            writer.rawVarint(UInt64(bytes.count))
            bytes.withUnsafeBytes { writer.append($0) }
        case .stringValueStrindex(let index)?:
            writer.tag(8, .varint)
            writer.rawVarint(UInt64(bitPattern: Int64(index)))
        case nil:
            break
        }
        writer.unknown(value.unknownFields)
    }
}

/// Appends protobuf wire format to a buffer it owns (grown by doubling, freed with the writer). Every write first
/// makes room for what it writes (`reserve`), then stores into the buffer directly: no per-byte uniqueness and
/// capacity checks of an array, which were a third of the encoder's instructions.
struct ProtoWriter: ~Copyable {
    /// The buffer: `capacity` bytes, the first `count` written.
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// The bytes written so far.
    private(set) var count = 0

    /// A writer whose buffer starts with room for `capacity` bytes.
    init(capacity: Int) {
        self.capacity = max(capacity, 16)
        base = UnsafeMutablePointer<UInt8>.allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// The bytes written, for the length of the call.
    func withBytes<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws -> Result) rethrows -> Result {
        try body(UnsafeBufferPointer(start: base, count: count))
    }

    /// Makes room for `extra` more bytes.
    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(toAtLeast: count + extra) }
    }

    private mutating func grow(toAtLeast needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    /// Appends raw bytes.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        reserve(bytes.count)
        // In bounds: `reserve` made room for `bytes.count` bytes after `count`.
        UnsafeMutableRawPointer(base + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    mutating func rawVarint(_ value: UInt64) {
        reserve(10)  // a varint of 64 bits takes at most 10 bytes
        var value = value
        while value >= 0x80 {
            base[count] = UInt8(truncatingIfNeeded: value) | 0x80
            count += 1
            value >>= 7
        }
        base[count] = UInt8(value)
        count += 1
    }

    mutating func tag(_ field: Int, _ wireType: ProtoReader.WireType) {
        rawVarint(UInt64(field) << 3 | UInt64(wireType.rawValue))
    }

    mutating func rawFixed64(_ value: UInt64) {
        reserve(8)
        UnsafeMutableRawPointer(base + count).storeBytes(of: value.littleEndian, as: UInt64.self)  // unaligned stores are allowed
        count += 8
    }

    mutating func varint(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, .varint)
        rawVarint(value)
    }

    /// An enum field: negative values as ten-byte varints, as protobuf writes `int32`.
    mutating func enumValue(_ field: Int, _ value: Int) {
        guard value != 0 else { return }
        tag(field, .varint)
        rawVarint(UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: value))))
    }

    mutating func fixed64(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, .fixed64)
        rawFixed64(value)
    }

    mutating func fixed32(_ field: Int, _ value: UInt32) {
        guard value != 0 else { return }
        tag(field, .fixed32)
        reserve(4)
        UnsafeMutableRawPointer(base + count).storeBytes(of: value.littleEndian, as: UInt32.self)
        count += 4
    }

    mutating func lengthPrefixed(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            rawVarint(UInt64(utf8.count))
            append(UnsafeRawBufferPointer(utf8))
        }
    }

    mutating func string(_ field: Int, _ text: String) {
        guard !text.isEmpty else { return }
        tag(field, .lengthDelimited)
        lengthPrefixed(text)
    }

    mutating func data(_ field: Int, _ data: Data) {
        guard !data.isEmpty else { return }
        tag(field, .lengthDelimited)
        rawVarint(UInt64(data.count))
        // From the bytes: `Data` used as a sequence walks its iterator (~600 instructions for a 16-byte id against ~100).
        data.withUnsafeBytes { append($0) }
    }

    mutating func unknown(_ storage: UnknownStorage) {
        if !storage.data.isEmpty { storage.data.withUnsafeBytes { append($0) } }
    }

    /// A length-delimited nested message: its body is written first behind a one-byte length, which is widened
    /// (the body moved right) when the body turns out to be 128 bytes or more.
    mutating func message(_ field: Int, _ body: (inout ProtoWriter) -> Void) {
        tag(field, .lengthDelimited)
        reserve(1)
        let lengthAt = count
        count += 1
        body(&self)
        let length = count - lengthAt - 1
        if length < 0x80 {
            base[lengthAt] = UInt8(length)
            return
        }
        var width = 1
        var rest = length >> 7
        while rest > 0 {
            width += 1
            rest >>= 7
        }
        reserve(width - 1)
        // Within the buffer: the body's `length` bytes move `width - 1` to the right, into the room just reserved
        // (`copyMemory` allows the two ranges to overlap).
        UnsafeMutableRawPointer(base + lengthAt + width).copyMemory(from: base + lengthAt + 1, byteCount: length)
        count += width - 1
        var value = length
        var index = lengthAt
        while value >= 0x80 {
            base[index] = UInt8(truncatingIfNeeded: value) | 0x80
            value >>= 7
            index += 1
        }
        base[index] = UInt8(value)
    }
}
