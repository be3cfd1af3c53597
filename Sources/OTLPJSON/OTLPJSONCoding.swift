import Foundation
import JSONText
import OTLPProto
import SwiftProtobuf

/// OTLP/JSON encoding and decoding as the OTLP specification defines it, which differs from plain
/// proto3 JSON: trace and span ids are hex strings (not base64) and enums are integers.
public enum OTLPJSONCoding {
    /// The keys whose values are ids (bytes fields) in OTLP trace JSON.
    static let idKeys: Set<String> = ["traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"]

    /// Decodes an OTLP/JSON `ExportTraceServiceRequest` (hex ids; unknown fields ignored).
    /// - Throws: `OTLPJSONError` when the text is not JSON, an id is not hex, or the structure does not match.
    public static func decodeTraceRequest(_ data: Data) throws -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest {
        guard let value = JSONValue(parsing: [UInt8](data)) else { throw OTLPJSONError(message: "the body is not valid JSON") }
        guard value.objectMembers != nil else { throw OTLPJSONError(message: "the body is not a JSON object") }
        let normalized = try convertIDs(value, path: "$", transform: hexToBase64)
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        do {
            return try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(jsonString: normalized.text, options: options)
        } catch {
            throw OTLPJSONError(message: "the JSON does not match ExportTraceServiceRequest: \(error)")
        }
    }

    /// Encodes any OTLP message as OTLP/JSON on one line (hex ids, integer enums): SwiftProtobuf's proto3 JSON with
    /// the id fields rewritten from base64 to hex, member order kept.
    public static func encode(_ message: some SwiftProtobuf.Message) throws -> Data {
        var options = JSONEncodingOptions()
        options.alwaysPrintEnumsAsInts = true
        let plain: [UInt8] = try message.jsonUTF8Bytes(options: options)
        guard let value = JSONValue(parsing: plain) else { throw OTLPJSONError(message: "the encoder wrote JSON that does not parse") }
        return Data(try convertIDs(value, path: "$", transform: base64ToHex).text.utf8)
    }

    private static func convertIDs(_ value: JSONValue, path: String, transform: (String) -> String?) throws -> JSONValue {
        switch value {
        case .object(let members):
            return .object(
                try members.map { member in
                    if idKeys.contains(member.key), case .string(let text) = member.value {
                        guard let converted = transform(text) else {
                            throw OTLPJSONError(message: "\(path).\(member.key) is not a valid id: expected hex")
                        }
                        return (member.key, .string(converted))
                    }
                    return (member.key, try convertIDs(member.value, path: "\(path).\(member.key)", transform: transform))
                })
        case .array(let elements):
            return .array(try elements.enumerated().map { try convertIDs($0.element, path: "\(path)[\($0.offset)]", transform: transform) })
        default:
            return value
        }
    }

    static func hexToBase64(_ hex: String) -> String? {
        guard let bytes = HexID.bytes(hex) else { return nil }
        return Data(bytes).base64EncodedString()
    }

    static func base64ToHex(_ base64: String) -> String? {
        guard let data = Data(base64Encoded: base64) else { return nil }
        return HexID.string(data)
    }
}

/// A malformed OTLP/JSON document.
public struct OTLPJSONError: Error, Sendable, CustomStringConvertible {
    /// What was wrong.
    public var message: String
    /// The message.
    public var description: String { message }
}

/// Lower-case hex text of ids, and its inverse.
public enum HexID {
    /// Lower-case hex of the bytes.
    public static func string(_ bytes: some Sequence<UInt8>) -> String {
        // From contiguous bytes when there are (`Data`, arrays): `Data`'s iterator costs more than the hex itself.
        if let text = bytes.withContiguousStorageIfAvailable(string(contiguous:)) { return text }
        return Array(bytes).withUnsafeBufferPointer(string(contiguous:))
    }

    private static func string(contiguous bytes: UnsafeBufferPointer<UInt8>) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            var index = 0
            for byte in bytes {
                out[index] = JSONValue.hexDigit(byte >> 4)
                out[index + 1] = JSONValue.hexDigit(byte & 0x0f)
                index += 2
            }
            return index
        }
    }

    /// The bytes of an even-length hex string (either case); `nil` if it is not hex. `""` gives `[]`.
    public static func bytes(_ text: some StringProtocol) -> [UInt8]? {
        // From the text's own bytes when they are contiguous (a native string or a slice of one), without a copy.
        if let result = text.utf8.withContiguousStorageIfAvailable(bytes(utf8:)) { return result }
        return Array(text.utf8).withUnsafeBufferPointer(bytes(utf8:))
    }

    private static func bytes(utf8: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard utf8.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
