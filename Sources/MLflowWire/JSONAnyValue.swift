import Foundation
import JSONText
import OTLPProto
import SwiftProtobuf

/// Conversions between JSON and OTLP `AnyValue`.
public enum JSONAnyValue {
    /// Typed key/values from a parsed JSON object's members, sorted by key so the output is deterministic (a key
    /// written twice keeps its last value, as a JSON object read into a dictionary does).
    public static func keyValues(from members: [(key: String, value: JSONValue)]) -> [Opentelemetry_Proto_Common_V1_KeyValue] {
        var last: [String: JSONValue] = [:]
        for member in members { last[member.key] = member.value }
        return last.keys.sorted().map { key in
            .with {
                $0.key = key; $0.value = anyValue(from: last[key] ?? .null)
            }
        }
    }

    /// An `AnyValue` for a JSON value: `null` stays empty, a number written without a fraction or exponent that fits
    /// 64 bits is an integer, any other number a double; objects become kvlists, arrays arrays.
    public static func anyValue(from value: JSONValue) -> Opentelemetry_Proto_Common_V1_AnyValue {
        var result = Opentelemetry_Proto_Common_V1_AnyValue()
        switch value {
        case .null: break
        case .bool(let flag): result.boolValue = flag
        case .string(let text): result.stringValue = text
        case .number(let text):
            if let integer = integer(text) {
                result.intValue = integer
            } else {
                result.doubleValue = Double(text) ?? .nan
            }
        case .array(let values): result.arrayValue = .with { $0.values = values.map(anyValue(from:)) }
        case .object(let members): result.kvlistValue = .with { $0.values = keyValues(from: members) }
        }
        return result
    }

    /// The integer a JSON number's text writes, when it has no fraction or exponent and fits 64 bits.
    public static func integer(_ text: String) -> Int64? {
        guard !text.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) else { return nil }
        return Int64(text)
    }
}
