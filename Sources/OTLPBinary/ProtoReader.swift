import Foundation
import JSONText

/// Thrown by ``ProtoReader`` and the decoders built on it for anything they do not take: malformed bytes, a
/// wire type a field does not have, a field unknown to the compiled messages, a repeated singular message.
/// The callers then decode the same bytes with SwiftProtobuf, which either keeps what this reader does not
/// (unknown fields, merged messages) or says exactly what is malformed, so the hand-written path never
/// accepts or rejects anything SwiftProtobuf would not.
public struct NotOnFastPath: Error, Sendable {
    /// Why the fast path declined (shown when the error is printed; the callers fall back without logging it).
    public let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Reads protobuf wire format from a byte buffer: varints, fixed-width numbers and length-delimited ranges.
/// Holds an unsafe pointer only for the duration of a `withUnsafeBytes` call (see ``TraceRequestDecoder``).
struct ProtoReader {
    /// The protobuf wire types this reader meets.
    enum WireType: UInt8 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case fixed32 = 5
    }

    let base: UnsafeRawBufferPointer
    var index: Int
    let end: Int

    init(_ base: UnsafeRawBufferPointer, from start: Int = 0, to end: Int? = nil) {
        self.base = base
        index = start
        self.end = end ?? base.count
    }

    var isAtEnd: Bool { index >= end }

    /// A varint; one byte (tags, most lengths and small numbers) read inline, longer ones by ``longVarint()``.
    @inline(__always)
    mutating func varint() throws(NotOnFastPath) -> UInt64 {
        if index < end {
            let byte = base[index]
            if byte < 0x80 {
                index += 1
                return UInt64(byte)
            }
        }
        return try longVarint()
    }

    /// A varint of any length (the bounds, overflow and truncation checks of every varint).
    mutating func longVarint() throws(NotOnFastPath) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while index < end {
            let byte = base[index]
            index += 1
            if shift == 63 && byte > 1 { throw NotOnFastPath("varint overflow") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw NotOnFastPath("varint too long") }
        }
        throw NotOnFastPath("truncated varint")
    }

    /// The next field's number and wire type.
    @inline(__always)
    mutating func tag() throws(NotOnFastPath) -> (field: Int, wireType: WireType) {
        let key = try varint()
        guard let wireType = WireType(rawValue: UInt8(key & 7)) else { throw NotOnFastPath("wire type \(key & 7)") }
        let field = key >> 3
        guard field > 0, field < 1 << 29 else { throw NotOnFastPath("field number \(field)") }
        return (Int(field), wireType)
    }

    mutating func fixed64() throws(NotOnFastPath) -> UInt64 {
        guard end - index >= 8 else { throw NotOnFastPath("truncated fixed64") }
        let value = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
        index += 8
        return UInt64(littleEndian: value)
    }

    mutating func fixed32() throws(NotOnFastPath) -> UInt32 {
        guard end - index >= 4 else { throw NotOnFastPath("truncated fixed32") }
        let value = base.loadUnaligned(fromByteOffset: index, as: UInt32.self)
        index += 4
        return UInt32(littleEndian: value)
    }

    /// The byte range of a length-delimited field's payload; the reader moves past it.
    mutating func lengthDelimited() throws(NotOnFastPath) -> Range<Int> {
        let length = try varint()
        guard length <= UInt64(end - index) else { throw NotOnFastPath("truncated length-delimited field") }
        let start = index
        index += Int(length)
        return start..<index
    }

    /// A reader over a nested message's bytes.
    func nested(_ range: Range<Int>) -> ProtoReader {
        ProtoReader(base, from: range.lowerBound, to: range.upperBound)
    }

    mutating func string() throws(NotOnFastPath) -> String {
        try text(lengthDelimited())
    }

    /// The string in `range` of the buffer.
    func text(_ range: Range<Int>) throws(NotOnFastPath) -> String {
        if range.isEmpty { return "" }
        // Strings must be valid UTF-8 in proto3; SwiftProtobuf rejects them otherwise, so this declines.
        guard let text = UTF8Validation.string(UnsafeRawBufferPointer(rebasing: base[range])) else {
            throw NotOnFastPath("invalid UTF-8")
        }
        return text
    }

    /// An attribute key: one of ``KnownAttributeKeys`` shared, any other decoded as a string.
    mutating func attributeKey(_ wireType: WireType) throws(NotOnFastPath) -> String {
        try Self.expect(wireType, .lengthDelimited)
        let range = try lengthDelimited()
        if let known = KnownAttributeKeys.match(UnsafeRawBufferPointer(rebasing: base[range])) { return known }
        return try text(range)
    }

    // Typed reads of a known field: its wire type checked, then its value.

    mutating func string(_ wireType: WireType) throws(NotOnFastPath) -> String {
        try Self.expect(wireType, .lengthDelimited)
        return try string()
    }

    mutating func data(_ wireType: WireType) throws(NotOnFastPath) -> Data {
        try Self.expect(wireType, .lengthDelimited)
        let range = try lengthDelimited()
        return Data(UnsafeRawBufferPointer(rebasing: base[range]))
    }

    /// A nested message: a reader over its bytes.
    mutating func message(_ wireType: WireType) throws(NotOnFastPath) -> ProtoReader {
        try Self.expect(wireType, .lengthDelimited)
        return nested(try lengthDelimited())
    }

    mutating func uint32(_ wireType: WireType) throws(NotOnFastPath) -> UInt32 {
        try Self.expect(wireType, .varint)
        return UInt32(truncatingIfNeeded: try varint())
    }

    mutating func fixed64(_ wireType: WireType) throws(NotOnFastPath) -> UInt64 {
        try Self.expect(wireType, .fixed64)
        return try fixed64()
    }

    mutating func fixed32(_ wireType: WireType) throws(NotOnFastPath) -> UInt32 {
        try Self.expect(wireType, .fixed32)
        return try fixed32()
    }

    /// Checks the wire type of a known field.
    @inline(__always)
    static func expect(_ actual: WireType, _ expected: WireType) throws(NotOnFastPath) {
        guard actual == expected else { throw NotOnFastPath("wire type \(actual) where \(expected) was expected") }
    }
}
