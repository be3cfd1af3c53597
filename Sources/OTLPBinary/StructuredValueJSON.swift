import Foundation
import JSONText

/// Writes an `AnyValue` still in wire form as the JSON text the translator makes of structured attribute values
/// (objects and arrays as one string, written as Python's `json.dumps` writes them: `", "` and `": "`, non-ASCII
/// kept), without building the nested messages first. Declines (``NotOnFastPath``) what the decoder declines:
/// a value with two members, unknown fields, invalid UTF-8, nesting deeper than ``TraceRequestDecoder/maxValueDepth``.
enum StructuredValueJSON {
    /// Whether the `AnyValue` in `range` holds a key-value list or an array (its first field says so; a value with
    /// more than one field is declined when it is written).
    static func isStructured(_ reader: ProtoReader, _ range: Range<Int>) -> Bool {
        var nested = reader.nested(range)
        guard !nested.isAtEnd, let (field, _) = try? nested.tag() else { return false }
        return field == 5 || field == 6
    }

    /// The JSON text of the `AnyValue` in `range`.
    static func text(_ reader: ProtoReader, _ range: Range<Int>) throws(NotOnFastPath) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(range.count + range.count / 4 + 16)
        var nested = reader.nested(range)
        try write(&nested, depth: 1, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func write(_ reader: inout ProtoReader, depth: Int, into out: inout [UInt8]) throws(NotOnFastPath) {
        guard depth <= TraceRequestDecoder.maxValueDepth else { throw NotOnFastPath("values nested deeper than the fast path takes") }
        guard !reader.isAtEnd else {
            out.appendLiteral("null")
            return
        }
        let (field, wireType) = try reader.tag()
        switch field {
        case 1:
            try ProtoReader.expect(wireType, .lengthDelimited)
            try writeString(reader, try reader.lengthDelimited(), into: &out)
        case 2:
            try ProtoReader.expect(wireType, .varint)
            if try reader.varint() != 0 { out.appendLiteral("true") } else { out.appendLiteral("false") }
        case 3:
            try ProtoReader.expect(wireType, .varint)
            out.append(contentsOf: String(Int64(bitPattern: try reader.varint())).utf8)
        case 4:
            out.append(contentsOf: PythonJSONNumbers.double(Double(bitPattern: try reader.fixed64(wireType))).utf8)
        case 5:
            var array = try reader.message(wireType)
            out.append(UInt8(ascii: "["))
            var first = true
            while !array.isAtEnd {
                let (inner, innerType) = try array.tag()
                guard inner == 1 else { throw NotOnFastPath("ArrayValue field \(inner)") }
                var element = try array.message(innerType)
                if !first { out.appendLiteral(", ") }
                first = false
                try write(&element, depth: depth + 1, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case 6:
            var list = try reader.message(wireType)
            out.append(UInt8(ascii: "{"))
            var first = true
            while !list.isAtEnd {
                let (inner, innerType) = try list.tag()
                guard inner == 1 else { throw NotOnFastPath("KeyValueList field \(inner)") }
                let entry = try list.message(innerType)
                if !first { out.appendLiteral(", ") }
                first = false
                try writeEntry(entry, depth: depth, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case 7:
            JSONValue.writeString(try reader.data(wireType).base64EncodedString(), to: &out)
        case 8:
            try ProtoReader.expect(wireType, .varint)
            out.append(contentsOf: String(Int32(truncatingIfNeeded: try reader.varint())).utf8)
        default:
            throw NotOnFastPath("AnyValue field \(field)")
        }
        guard reader.isAtEnd else { throw NotOnFastPath("AnyValue with two values") }
    }

    /// The protobuf string in `range` as a JSON string, escaped straight from its bytes (no string built); invalid
    /// UTF-8 is declined, as SwiftProtobuf rejects it.
    static func writeString(_ reader: ProtoReader, _ range: Range<Int>, into out: inout [UInt8]) throws(NotOnFastPath) {
        let bytes = UnsafeRawBufferPointer(rebasing: reader.base[range]).assumingMemoryBound(to: UInt8.self)
        guard JSONValue.writeString(checkingUTF8: bytes, to: &out) else { throw NotOnFastPath("invalid UTF-8") }
    }

    /// One `KeyValue` of a list as `"key": value` (its fields may come in any order; the last key wins, as in
    /// protobuf; a value sent twice would be merged, which is SwiftProtobuf's to do).
    static func writeEntry(_ entry: ProtoReader, depth: Int, into out: inout [UInt8]) throws(NotOnFastPath) {
        var entry = entry
        var key: Range<Int>?
        var value: Range<Int>?
        while !entry.isAtEnd {
            let (field, wireType) = try entry.tag()
            switch field {
            case 1:
                try ProtoReader.expect(wireType, .lengthDelimited)
                key = try entry.lengthDelimited()
            case 2:
                try ProtoReader.expect(wireType, .lengthDelimited)
                guard value == nil else { throw NotOnFastPath("value twice") }
                value = try entry.lengthDelimited()
            default: throw NotOnFastPath("KeyValue field \(field)")
            }
        }
        try writeString(entry, key ?? entry.end..<entry.end, into: &out)
        out.appendLiteral(": ")
        var nested = entry.nested(value ?? entry.end..<entry.end)
        try write(&nested, depth: depth + 1, into: &out)
    }
}
