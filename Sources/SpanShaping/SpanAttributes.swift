import JSONText
import OTLPProto
import SwiftProtobuf

typealias KeyValue = Opentelemetry_Proto_Common_V1_KeyValue
typealias AnyValue = Opentelemetry_Proto_Common_V1_AnyValue
typealias Span = Opentelemetry_Proto_Trace_V1_Span

/// Reading and writing a span's attributes by key.
extension [Opentelemetry_Proto_Common_V1_KeyValue] {
    /// The value of `key` (keys told apart by length before text: most attributes are passed over without comparing text).
    func value(_ key: String) -> AnyValue? {
        let length = key.utf8.count
        return first { $0.key.utf8.count == length && $0.key == key }?.value
    }

    /// The string value of `key` (non-empty).
    func string(_ key: String) -> String? {
        guard case .stringValue(let text)? = value(key)?.value, !text.isEmpty else { return nil }
        return text
    }

    /// The value of `key` as JSON: JSON text parsed, other primitives as themselves.
    func json(_ key: String) -> JSONValue? {
        guard let value = value(key) else { return nil }
        return JSONValue(value)
    }

    /// Sets `key`, replacing a value of the same key.
    mutating func set(_ key: String, _ value: AnyValue) {
        let length = key.utf8.count
        if let index = firstIndex(where: { $0.key.utf8.count == length && $0.key == key }) {
            self[index].value = value
        } else {
            append(
                .with {
                    $0.key = key
                    $0.value = value
                })
        }
    }

    mutating func set(_ key: String, string: String) { set(key, .with { $0.stringValue = string }) }
    mutating func set(_ key: String, int: Int64) { set(key, .with { $0.intValue = int }) }
    mutating func set(_ key: String, double: Double) { set(key, .with { $0.doubleValue = double }) }
    mutating func set(_ key: String, json: JSONValue) { set(key, string: json.text) }
    mutating func set(_ key: String, strings: [String]) {
        set(key, .with { $0.arrayValue = .with { $0.values = strings.map { text in .with { $0.stringValue = text } } } })
    }

    /// Sets a JSON value as the attribute type that fits it (numbers typed, text as text, structures as JSON text).
    mutating func set(_ key: String, scalar: JSONValue) {
        switch scalar {
        case .string(let text): set(key, string: text)
        case .bool(let flag): set(key, .with { $0.boolValue = flag })
        case .number:
            if let int = scalar.intValue, !scalar.text.contains(".") {
                set(key, int: int)
            } else if let double = scalar.doubleValue {
                set(key, double: double)
            }
        case .null: break
        case .array, .object: set(key, json: scalar)
        }
    }
}

extension JSONValue {
    /// An attribute value as JSON: strings holding JSON objects or arrays parsed, other strings as strings.
    init?(_ value: AnyValue) {
        switch value.value {
        case .stringValue(let text):
            if let first = Self.leadingByte(of: text), first == UInt8(ascii: "{") || first == UInt8(ascii: "["),
                let parsed = JSONValue(parsing: text)
            {
                self = parsed
            } else {
                self = .string(text)
            }
        case .intValue(let number): self = .number(String(number))
        case .doubleValue(let number):
            self = number.isFinite ? .number("\(number)") : .number(number.isNaN ? "NaN" : number > 0 ? "Infinity" : "-Infinity")
        case .boolValue(let flag): self = .bool(flag)
        default: return nil
        }
    }

    /// The first byte of an attribute's text after spaces and line feeds: a string value is parsed as JSON only when
    /// this is `{` or `[`.
    static func leadingByte(of text: String) -> UInt8? { text.utf8.first { $0 != 0x20 && $0 != 0x0A } }
}

/// Changing a span's repeated fields in place. The generated `attributes` and `events` properties are read and
/// written through the span's shared storage with no in-place accessor, so `span.attributes.append(x)` or
/// `span.attributes[i].value = v` copies the whole array (the storage still holds it) on every call: with redaction
/// patterns, a copy of all attributes for each attribute masked one by one (quadratic in the attribute count), and
/// the same for truncation and event attributes. Taken out of the storage first, the array is changed without a copy
/// and put back once.
extension Opentelemetry_Proto_Trace_V1_Span {
    /// Runs `body` on the span's attributes, changed in place.
    mutating func modifyAttributes<Result>(_ body: (inout [KeyValue]) throws -> Result) rethrows -> Result {
        var attributes = self.attributes
        self.attributes = []
        defer { self.attributes = attributes }
        return try body(&attributes)
    }

    /// Runs `body` on the span's events, changed in place.
    mutating func modifyEvents<Result>(_ body: (inout [Opentelemetry_Proto_Trace_V1_Span.Event]) throws -> Result) rethrows -> Result {
        var events = self.events
        self.events = []
        defer { self.events = events }
        return try body(&events)
    }
}
