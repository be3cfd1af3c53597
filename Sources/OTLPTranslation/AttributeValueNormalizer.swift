import Foundation
import JSONText
import MLflowWire
import OTLPProto

/// Turns MLflow's attribute encodings into one clean form: primitives as typed OTLP values, structured
/// values (objects, arrays) as one JSON string, never double-encoded.
///
/// The same span reaches the proxy typed (`/v1/traces`) and as JSON text (`traces.json`); both forms
/// normalize to the same value, and structured values are written the way MLflow's Python client writes
/// them (`json.dumps`: `", "` and `": "` separators, non-ASCII kept), so both copies compare equal. Protobuf
/// uploads usually arrive with their structured values already in this form (`OTLPBinary` writes them from the
/// bytes, with the same number formatting, `PythonJSONNumbers`); this normalizer does it for everything else.
public enum AttributeValueNormalizer {
    /// The normalized form of one span attribute value.
    public static func normalize(_ value: Opentelemetry_Proto_Common_V1_AnyValue, encoding: AttributeEncoding)
        -> Opentelemetry_Proto_Common_V1_AnyValue
    {
        replacement(for: value, encoding: encoding) ?? value
    }

    /// The normalized form of a value when it differs from the value, `nil` when the value is already normal
    /// (so a caller leaves it, and the attribute holding it, as they are: no copy).
    public static func replacement(for value: Opentelemetry_Proto_Common_V1_AnyValue, encoding: AttributeEncoding)
        -> Opentelemetry_Proto_Common_V1_AnyValue?
    {
        switch (encoding, value.value) {
        case (.jsonText, .stringValue(let text)?):
            let decoded = decodeJSONText(text)
            // Only a string that decodes to itself is unchanged (text that is not JSON, a trimmed object).
            if case .stringValue(let same)? = decoded.value, same == text { return nil }
            return decoded
        case (_, .kvlistValue?), (_, .arrayValue?):
            // Typed structures (and those of JSON-text spans that came typed) become one JSON string.
            var result = Opentelemetry_Proto_Common_V1_AnyValue()
            result.stringValue = PythonStyleJSON.encode(value)
            return result
        default:
            return nil
        }
    }

    /// Decodes one JSON text (`"\"LLM\""` → `LLM`, `"42"` → 42); objects and arrays keep their text as is.
    /// Text that is not JSON stays the string it is.
    public static func decodeJSONText(_ text: String) -> Opentelemetry_Proto_Common_V1_AnyValue {
        var result = Opentelemetry_Proto_Common_V1_AnyValue()
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let first = trimmed.utf8.first else {
            result.stringValue = text
            return result
        }
        switch first {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            result.stringValue = trimmed
        case UInt8(ascii: "\""):
            if let decoded = JSONValue(parsing: trimmed)?.stringValue {
                result.stringValue = decoded
            } else {
                result.stringValue = text
            }
        case UInt8(ascii: "t") where trimmed == "true": result.boolValue = true
        case UInt8(ascii: "f") where trimmed == "false": result.boolValue = false
        case UInt8(ascii: "n") where trimmed == "null": break
        case UInt8(ascii: "N") where trimmed == "NaN": result.doubleValue = .nan
        case UInt8(ascii: "I") where trimmed == "Infinity": result.doubleValue = .infinity
        case UInt8(ascii: "-") where trimmed == "-Infinity": result.doubleValue = -.infinity
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            if trimmed.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) }),
                let integer = Int64(trimmed)
            {
                result.intValue = integer
            } else if let double = Double(trimmed) {
                result.doubleValue = double
            } else {
                result.stringValue = text
            }
        default:
            result.stringValue = text
        }
        return result
    }
}

/// Writes OTLP values as JSON the way Python's `json.dumps(value, ensure_ascii=False)` writes them.
public enum PythonStyleJSON {
    /// The JSON text of a value (kvlists as objects, arrays as arrays, empty values as `null`).
    public static func encode(_ value: Opentelemetry_Proto_Common_V1_AnyValue) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(value, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static func write(_ value: Opentelemetry_Proto_Common_V1_AnyValue, into out: inout [UInt8]) {
        switch value.value {
        case nil: out.appendLiteral("null")
        case .stringValue(let text): JSONValue.writeString(text, to: &out)
        case .boolValue(let flag): if flag { out.appendLiteral("true") } else { out.appendLiteral("false") }
        case .intValue(let number): out.append(contentsOf: String(number).utf8)
        case .doubleValue(let number): out.append(contentsOf: PythonJSONNumbers.double(number).utf8)
        case .bytesValue(let bytes): JSONValue.writeString(bytes.base64EncodedString(), to: &out)
        case .arrayValue(let array):
            out.append(UInt8(ascii: "["))
            for (index, element) in array.values.enumerated() {
                if index > 0 { out.appendLiteral(", ") }
                write(element, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .kvlistValue(let list):
            out.append(UInt8(ascii: "{"))
            for (index, entry) in list.values.enumerated() {
                if index > 0 { out.appendLiteral(", ") }
                JSONValue.writeString(entry.key, to: &out)
                out.appendLiteral(": ")
                write(entry.value, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .stringValueStrindex(let index):
            // An index into a profiles string table; it has no meaning on trace data, so it is kept as a number.
            out.append(contentsOf: String(index).utf8)
        }
    }

}
