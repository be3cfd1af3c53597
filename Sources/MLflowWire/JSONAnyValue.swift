import Foundation
import OTLPProto
import SwiftProtobuf

/// Conversions between JSON and OTLP `AnyValue`.
public enum JSONAnyValue {
    /// Typed key/values from a parsed JSON object (native values, as in `traces.json` event attributes),
    /// sorted by key so the output is deterministic.
    public static func keyValues(from object: [String: Any]) -> [Opentelemetry_Proto_Common_V1_KeyValue] {
        object.keys.sorted().map { key in
            .with {
                $0.key = key; $0.value = anyValue(from: object[key] as Any)
            }
        }
    }

    /// An `AnyValue` for a value produced by `JSONSerialization` (objects become kvlists, arrays arrays).
    public static func anyValue(from value: Any) -> Opentelemetry_Proto_Common_V1_AnyValue {
        var result = Opentelemetry_Proto_Common_V1_AnyValue()
        switch value {
        case is NSNull: break
        case let text as String: result.stringValue = text
        case let number as NSNumber:
            if isBoolean(number) {
                result.boolValue = number.boolValue
            } else if number.isIntegral {
                result.intValue = number.int64Value
            } else {
                result.doubleValue = number.doubleValue
            }
        case let array as [Any]:
            result.arrayValue = .with { $0.values = array.map(anyValue(from:)) }
        case let object as [String: Any]:
            result.kvlistValue = .with { $0.values = keyValues(from: object) }
        default:
            result.stringValue = String(describing: value)
        }
        return result
    }

    /// Whether an `NSNumber` from `JSONSerialization` is a JSON boolean: Foundation gives booleans
    /// their own class (`__NSCFBoolean`, type code `c`), numbers never use the `c` code.
    private static func isBoolean(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c" || String(describing: type(of: number)).contains("Boolean")
    }
}

extension NSNumber {
    /// Whether the number was written without a fraction or exponent (type codes other than `d`/`f`).
    fileprivate var isIntegral: Bool {
        let type = String(cString: objCType)
        return type != "d" && type != "f"
    }
}
