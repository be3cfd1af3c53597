/// A parsed JSON value that keeps object member order and number text, so that values the proxy rewrites
/// (masked, truncated, converted, echoed back) read like the client's own JSON.
///
/// The one JSON reader and writer of the proxy's hot paths (Foundation's `JSONSerialization` goes through
/// `Any`, bridging and locale-aware key sorting, which cost a quarter of the ingest CPU when it answered
/// every `StartTraceV3`). Strings are written the way MLflow's Python client writes them
/// (`json.dumps(…, ensure_ascii=False)`).
public enum JSONValue: Sendable, Equatable {
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
        var output: [UInt8] = []
        output.reserveCapacity(128)
        write(to: &output)
        return String(decoding: output, as: UTF8.self)
    }

    /// Appends the compact JSON text to UTF-8 bytes.
    public func write(to output: inout [UInt8]) {
        switch self {
        case .null: output.appendLiteral("null")
        case .bool(let value): if value { output.appendLiteral("true") } else { output.appendLiteral("false") }
        case .number(let raw): output.append(contentsOf: raw.utf8)
        case .string(let value): Self.writeString(value, to: &output)
        case .array(let values):
            output.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                value.write(to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            for (index, member) in members.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.writeString(member.key, to: &output)
                output.append(UInt8(ascii: ":"))
                member.value.write(to: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// Appends `text` as a JSON string, escaped as Python's `json.dumps(…, ensure_ascii=False)` escapes it:
    /// `"`, `\\` and control characters only; everything else, non-ASCII included, as is.
    public static func writeString(_ text: String, to output: inout String) {
        var bytes: [UInt8] = []
        writeString(text, to: &bytes)
        output += String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `text` as a JSON string to UTF-8 bytes, escaped the same way.
    public static func writeString(_ text: String, to output: inout [UInt8]) {
        var text = text
        text.withUTF8 { utf8 in writeString(utf8: utf8, to: &output) }
    }

    /// Appends UTF-8 bytes (valid: the caller checked them) as a JSON string, escaped as ``writeString(_:to:)-([UInt8])``
    /// escapes a string: no string is built for text that is only copied from one encoding to another.
    public static func writeString(utf8: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        // Most strings need no escape: runs without one are appended whole.
        var runStart = 0
        var index = JSONStringBytes.firstSpecial(in: utf8, from: 0)
        while index < utf8.count {
            let byte = utf8[index]
            output.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
            runStart = index + 1
            index = JSONStringBytes.firstSpecial(in: utf8, from: runStart)
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): output.appendLiteral(#"\\"#)
            case UInt8(ascii: "\n"): output.appendLiteral(#"\n"#)
            case UInt8(ascii: "\r"): output.appendLiteral(#"\r"#)
            case UInt8(ascii: "\t"): output.appendLiteral(#"\t"#)
            case 0x08: output.appendLiteral(#"\b"#)
            case 0x0C: output.appendLiteral(#"\f"#)
            default:
                output.appendLiteral(#"\u00"#)
                output.append(hexDigit(byte >> 4))
                output.append(hexDigit(byte & 0x0F))
            }
        }
        output.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        output.append(UInt8(ascii: "\""))
    }

    /// Appends UTF-8 bytes that may be invalid as a JSON string, escaped as ``writeString(utf8:to:)`` escapes them,
    /// when they are valid UTF-8. Plain ASCII text (no byte to escape) is appended after one pass over it.
    /// - Returns: false, with nothing appended, when they are not valid UTF-8.
    public static func writeString(checkingUTF8 bytes: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) -> Bool {
        if JSONStringBytes.isPlainASCII(bytes) {
            output.append(UInt8(ascii: "\""))
            output.append(contentsOf: bytes)
            output.append(UInt8(ascii: "\""))
            return true
        }
        guard UTF8Validation.isValid(bytes) else { return false }
        writeString(utf8: bytes, to: &output)
        return true
    }

    /// The lower-case hex digit of a nibble (JSON's `\u00XX` escapes, hex trace and span ids).
    public static func hexDigit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10 }

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
        let length = key.utf8.count  // keys told apart by length before text: most lookups compare no text
        return members.first { $0.key.utf8.count == length && $0.key == key }?.value
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

    /// The reader behind ``init(parsing:)-([UInt8])`` and ``JSONScanner``: one grammar for both.
    struct Parser {
        let bytes: [UInt8]
        var index = 0

        /// Checks and passes over one value, building none of it (strings and numbers read as the parser reads
        /// them, so that what it accepts is exactly what ``parseValue(depth:)`` accepts).
        mutating func skipValue(depth: Int) -> Bool {
            guard depth < JSONValue.maxDepth else { return false }
            skipWhitespace()
            guard index < bytes.count else { return false }
            let isObject = bytes[index] == UInt8(ascii: "{")
            guard isObject || bytes[index] == UInt8(ascii: "[") else {
                return parseValue(depth: depth) != nil  // a string, number or literal: nothing nested to build
            }
            index += 1
            let closing = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
            if closesAtOnce(closing) { return true }
            while true {
                if isObject { guard memberKey() != nil else { return false } }
                guard skipValue(depth: depth + 1) else { return false }
                switch afterItem(closing) {
                case .more: continue
                case .closed: return true
                case nil: return false
                }
            }
        }

        /// After a container's opening byte: whether it closes at once (the closing byte then consumed).
        mutating func closesAtOnce(_ closing: UInt8) -> Bool {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == closing else { return false }
            index += 1
            return true
        }

        /// What follows an item of a container.
        enum AfterItem { case more, closed }

        /// After an item of a container: `.more` past a `,`, `.closed` past the closing byte, `nil` for anything else.
        mutating func afterItem(_ closing: UInt8) -> AfterItem? {
            skipWhitespace()
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                return .more
            }
            guard bytes[index] == closing else { return nil }
            index += 1
            return .closed
        }

        /// An object member's key and the `:` after it; `nil` when the text there is not one.
        mutating func memberKey() -> String? {
            skipWhitespace()
            guard let key = parseString() else { return nil }
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
            index += 1
            return key
        }

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
                if closesAtOnce(UInt8(ascii: "}")) { return .object(members) }
                // Room for a few members at once: growing one by one reallocates at 1, 2 and 4.
                members.reserveCapacity(8)
                while true {
                    guard let key = memberKey(), let value = parseValue(depth: depth + 1) else { return nil }
                    members.append((key, value))
                    switch afterItem(UInt8(ascii: "}")) {
                    case .more: continue
                    case .closed: return .object(members)
                    case nil: return nil
                    }
                }
            case UInt8(ascii: "["):
                index += 1
                var values: [JSONValue] = []
                if closesAtOnce(UInt8(ascii: "]")) { return .array(values) }
                values.reserveCapacity(8)
                while true {
                    guard let value = parseValue(depth: depth + 1) else { return nil }
                    values.append(value)
                    switch afterItem(UInt8(ascii: "]")) {
                    case .more: continue
                    case .closed: return .array(values)
                    case nil: return nil
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
            // Only ASCII digits, signs, dots and exponents were taken: the bytes are valid UTF-8 as they are.
            guard index > start else { return nil }
            let raw = bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[start..<index]), as: UTF8.self) }
            guard Double(raw) != nil else { return nil }
            return .number(raw)
        }

        mutating func parseString() -> String? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            // Most strings have no escapes: one validation of the whole run.
            let start = index
            let end = bytes.withUnsafeBufferPointer { JSONStringBytes.firstSpecial(in: $0, from: start) }
            if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
                guard let text = bytes.withUnsafeBufferPointer({ UTF8Validation.string(UnsafeBufferPointer(rebasing: $0[index..<end])) })
                else { return nil }
                index = end + 1
                return text
            }
            // Escapes: the unescaped runs and the escaped characters are gathered as UTF-8 and validated once (a
            // run ends at a backslash, which is ASCII, so a broken sequence inside a run stays broken in the whole).
            var utf8: [UInt8] = []
            utf8.reserveCapacity(end - index + 16)
            var runStart = index
            index = end  // the first special byte, found above
            while true {
                guard index < bytes.count else { return nil }
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    utf8.append(contentsOf: bytes[runStart..<index])
                    index += 1
                    return utf8.withUnsafeBufferPointer { UTF8Validation.string($0) }
                }
                if byte == UInt8(ascii: "\\") {
                    guard index + 1 < bytes.count else { return nil }
                    utf8.append(contentsOf: bytes[runStart..<index])
                    let escape = bytes[index + 1]
                    index += 2
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        guard var code = hex4() else { return nil }
                        if (0xD800..<0xDC00).contains(code), matches("\\u") {
                            index += 2
                            guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        UTF8.encode(Unicode.Scalar(code) ?? "\u{FFFD}") { utf8.append($0) }
                    default: return nil
                    }
                    runStart = index
                    let from = index
                    index = bytes.withUnsafeBufferPointer { JSONStringBytes.firstSpecial(in: $0, from: from) }
                    continue
                }
                return nil  // a control character
            }
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
