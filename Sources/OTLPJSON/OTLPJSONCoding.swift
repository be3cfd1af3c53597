import Foundation
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
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw OTLPJSONError(message: "the body is not valid JSON")
        }
        guard object is [String: Any] else { throw OTLPJSONError(message: "the body is not a JSON object") }
        let converted = try convertIDs(object, path: "$", transform: hexToBase64)
        let normalized = try JSONSerialization.data(withJSONObject: converted)
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        do {
            return try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(jsonUTF8Data: normalized, options: options)
        } catch {
            throw OTLPJSONError(message: "the JSON does not match ExportTraceServiceRequest: \(error)")
        }
    }

    /// Encodes any OTLP message as OTLP/JSON on one line (hex ids, integer enums).
    public static func encode(_ message: some SwiftProtobuf.Message) throws -> Data {
        var options = JSONEncodingOptions()
        options.alwaysPrintEnumsAsInts = true
        let plain = try message.jsonUTF8Data(options: options)
        let object = try JSONSerialization.jsonObject(with: plain)
        let converted = try convertIDs(object, path: "$", transform: base64ToHex)
        return try JSONSerialization.data(withJSONObject: converted, options: [.withoutEscapingSlashes])
    }

    private static func convertIDs(_ value: Any, path: String, transform: (String) -> String?) throws -> Any {
        if let dictionary = value as? [String: Any] {
            var result: [String: Any] = [:]
            result.reserveCapacity(dictionary.count)
            for (key, child) in dictionary {
                if idKeys.contains(key), let text = child as? String {
                    guard let converted = transform(text) else {
                        throw OTLPJSONError(message: "\(path).\(key) is not a valid id: expected hex")
                    }
                    result[key] = converted
                } else {
                    result[key] = try convertIDs(child, path: "\(path).\(key)", transform: transform)
                }
            }
            return result
        }
        if let array = value as? [Any] {
            return try array.enumerated().map { try convertIDs($0.element, path: "\(path)[\($0.offset)]", transform: transform) }
        }
        return value
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
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of an even-length hex string (either case); `nil` if it is not hex. `""` gives `[]`.
    public static func bytes(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
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
