/// A parsed JSON value that keeps object member order and number text, so that values the proxy rewrites
/// (masked, truncated, converted, echoed back) read like the client's own JSON.
///
/// The one JSON reader and writer of the proxy's hot paths (Foundation's `JSONSerialization` goes through
/// `Any`, bridging and locale-aware key sorting, which cost a quarter of the ingest CPU when it answered
/// every `StartTraceV3`). Strings are written the way MLflow's Python client writes them
/// (`json.dumps(…, ensure_ascii=False)`).
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number as it was written (also Python's `NaN` and `Infinity`, which MLflow's client may write).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    /// Equality by value, members compared in order.
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a.map(\.key) == b.map(\.key) && a.map(\.value) == b.map(\.value)
        default: return false
        }
    }

    /// The deepest nesting parsed; deeper text is not JSON to the proxy (hostile input cannot exhaust the stack).
    public static let maxDepth = 256

    /// Parses JSON text; `nil` when it is not one complete JSON value.
    public init?(parsing text: String) {
        self.init(parsing: Array(text.utf8))
    }

    /// Parses JSON bytes (UTF-8); `nil` when they are not one complete JSON value.
    public init?(parsing bytes: [UInt8]) {
        var parser = Parser(bytes: bytes)
        guard let value = parser.parseValue(depth: 0) else { return nil }
        parser.skipWhitespace()
        guard parser.index == parser.bytes.count else { return nil }
        self = value
    }

    /// Compact JSON text (`,` and `:` without spaces).
    public var text: String {
        var output = ""
        write(to: &output)
        return output
    }

    func write(to output: inout String) {
        switch self {
        case .null: output += "null"
        case .bool(let value): output += value ? "true" : "false"
        case .number(let raw): output += raw
        case .string(let value): Self.writeString(value, to: &output)
        case .array(let values):
            output += "["
            for (index, value) in values.enumerated() {
                if index > 0 { output += "," }
                value.write(to: &output)
            }
            output += "]"
        case .object(let members):
            output += "{"
            for (index, member) in members.enumerated() {
                if index > 0 { output += "," }
                Self.writeString(member.key, to: &output)
                output += ":"
                member.value.write(to: &output)
            }
            output += "}"
        }
    }

    /// Appends `text` as a JSON string, escaped as Python's `json.dumps(…, ensure_ascii=False)` escapes it:
    /// `"`, `\\` and control characters only; everything else, non-ASCII included, as is.
    public static func writeString(_ text: String, to output: inout String) {
        output += "\""
        // Most strings need no escape: append them whole.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            output += text
            output += "\""
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case "\u{08}": output += "\\b"
            case "\u{0C}": output += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        output += "\""
    }

    /// This object with member `key` set to `value` (replaced in place when present, appended otherwise);
    /// other values are returned unchanged.
    public func setting(_ key: String, to value: JSONValue) -> JSONValue {
        guard case .object(var members) = self else { return self }
        if let index = members.firstIndex(where: { $0.key == key }) {
            members[index].value = value
        } else {
            members.append((key, value))
        }
        return .object(members)
    }

    /// The members, when this is an object.
    public var objectMembers: [(key: String, value: JSONValue)]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// The member named `key` of an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// The string, when this is one.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The elements, when this is an array.
    public var arrayValue: [JSONValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    /// The number as an integer, when it is a whole number.
    public var intValue: Int64? {
        guard case .number(let raw) = self else { return nil }
        if let value = Int64(raw) { return value }
        if let double = Double(raw), double.rounded() == double, abs(double) < 9e18 { return Int64(double) }
        return nil
    }

    /// The number as a double.
    public var doubleValue: Double? {
        guard case .number(let raw) = self else { return nil }
        return Double(raw)
    }

    /// Text for a value shown as content: strings as they are, everything else as JSON.
    public var contentText: String { stringValue ?? text }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func skipWhitespace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 {
                index += 1
            }
        }

        mutating func parseValue(depth: Int) -> JSONValue? {
            guard depth < JSONValue.maxDepth else { return nil }
            skipWhitespace()
            guard index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                index += 1
                var members: [(key: String, value: JSONValue)] = []
                skipWhitespace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return .object(members)
                }
                while true {
                    skipWhitespace()
                    guard let key = parseString() else { return nil }
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
                    index += 1
                    guard let value = parseValue(depth: depth + 1) else { return nil }
                    members.append((key, value))
                    skipWhitespace()
                    guard index < bytes.count else { return nil }
                    if bytes[index] == UInt8(ascii: ",") {
                        index += 1
                    } else if bytes[index] == UInt8(ascii: "}") {
                        index += 1
                        return .object(members)
                    } else {
                        return nil
                    }
                }
            case UInt8(ascii: "["):
                index += 1
                var values: [JSONValue] = []
                skipWhitespace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return .array(values)
                }
                while true {
                    guard let value = parseValue(depth: depth + 1) else { return nil }
                    values.append(value)
                    skipWhitespace()
                    guard index < bytes.count else { return nil }
                    if bytes[index] == UInt8(ascii: ",") {
                        index += 1
                    } else if bytes[index] == UInt8(ascii: "]") {
                        index += 1
                        return .array(values)
                    } else {
                        return nil
                    }
                }
            case UInt8(ascii: "\""):
                return parseString().map(JSONValue.string)
            case UInt8(ascii: "t"):
                return literal("true", .bool(true))
            case UInt8(ascii: "f"):
                return literal("false", .bool(false))
            case UInt8(ascii: "n"):
                return literal("null", .null)
            case UInt8(ascii: "N"):
                return literal("NaN", .number("NaN"))
            case UInt8(ascii: "I"):
                return literal("Infinity", .number("Infinity"))
            case UInt8(ascii: "-") where matches("-Infinity"):
                return literal("-Infinity", .number("-Infinity"))
            default:
                return parseNumber()
            }
        }

        func matches(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            return word.withUTF8Buffer { $0.elementsEqual(bytes[index..<index + count]) }
        }

        mutating func literal(_ word: StaticString, _ value: JSONValue) -> JSONValue? {
            guard matches(word) else { return nil }
            index += word.utf8CodeUnitCount
            return value
        }

        mutating func parseNumber() -> JSONValue? {
            let start = index
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "e"),
                    UInt8(ascii: "E"):
                    index += 1
                    continue
                default: break
                }
                break
            }
            guard index > start, let raw = String(validating: bytes[start..<index], as: UTF8.self), Double(raw) != nil else { return nil }
            return .number(raw)
        }

        mutating func parseString() -> String? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            // Most strings have no escapes: one validation of the whole run.
            var end = index
            while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 { end += 1 }
            if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
                guard let text = String(validating: bytes[index..<end], as: UTF8.self) else { return nil }
                index = end + 1
                return text
            }
            var scalars = String.UnicodeScalarView()
            var runStart = index
            func flush(_ end: Int) -> Bool {
                guard end > runStart else { return true }
                guard let run = String(validating: bytes[runStart..<end], as: UTF8.self) else { return false }
                scalars.append(contentsOf: run.unicodeScalars)
                return true
            }
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    guard flush(index) else { return nil }
                    index += 1
                    return String(scalars)
                }
                if byte == UInt8(ascii: "\\") {
                    guard flush(index), index + 1 < bytes.count else { return nil }
                    let escape = bytes[index + 1]
                    index += 2
                    switch escape {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"):
                        guard var code = hex4() else { return nil }
                        if (0xD800..<0xDC00).contains(code), matches("\\u") {
                            index += 2
                            guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
                    default: return nil
                    }
                    runStart = index
                    continue
                }
                if byte < 0x20 { return nil }
                index += 1
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count, let text = String(validating: bytes[index..<index + 4], as: UTF8.self),
                let value = UInt32(text, radix: 16)
            else { return nil }
            index += 4
            return value
        }
    }
}
