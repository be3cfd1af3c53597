/// Reads JSON text in place, value by value, for a caller that wants a few members of a document and its byte
/// positions (to answer with the text as it came, edited where needed) rather than a ``JSONValue`` tree: members
/// are found one after the other, strings decoded only when asked for, everything else checked and passed over.
/// It accepts exactly what ``JSONValue/init(parsing:)-([UInt8])`` accepts (the same parser underneath, the same
/// depth limit), so a document it gets through is one the tree parser would have read.
///
/// After a call reports bad text (`false` or `nil` with ``failed`` set) the scanner's position is unspecified.
public struct JSONScanner {
    private var parser: JSONValue.Parser
    /// Set once the text was found not to be JSON.
    public private(set) var failed = false

    /// What the value at the current position is, by its first byte.
    public enum Kind: Equatable {
        case object, array, string, number, bool, null, invalid
    }

    /// A scanner at the start of `bytes`.
    public init(bytes: [UInt8]) {
        parser = JSONValue.Parser(bytes: bytes)
    }

    /// The text scanned.
    public var bytes: [UInt8] { parser.bytes }

    /// The position: after ``nextMember(count:)``, where the member's value starts; after a value, just past it.
    public var position: Int { parser.index }

    /// The kind of the value at the current position by its first byte (whitespace before it passed over), a hint:
    /// ``skipValue(depth:)`` decides what is valid. Nothing is consumed.
    public mutating func kind() -> Kind {
        parser.skipWhitespace()
        guard parser.index < parser.bytes.count else { return .invalid }
        switch parser.bytes[parser.index] {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        case UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "N"), UInt8(ascii: "I"):
            return .number
        default: return .invalid
        }
    }

    /// Enters the object at the current position (its `{`); `false` when the value there is not one.
    public mutating func enterObject(depth: Int) -> Bool {
        guard depth < JSONValue.maxDepth, kind() == .object else { return false }
        parser.index += 1
        return true
    }

    /// The key of the next member of the object entered (`count`: how many members of it were read so far, which
    /// this advances), the position then at the member's value, which the caller must read or pass over; `nil` at
    /// the object's end (its `}` consumed), or with ``failed`` set when the text is not JSON.
    public mutating func nextMember(count: inout Int) -> String? {
        if count > 0 {
            switch parser.afterItem(UInt8(ascii: "}")) {
            case .more: break
            case .closed: return nil
            case nil: return fail()
            }
        } else if parser.closesAtOnce(UInt8(ascii: "}")) {
            return nil
        }
        guard let key = parser.memberKey() else { return fail() }
        parser.skipWhitespace()
        count += 1
        return key
    }

    /// The string at the current position; `nil` (``failed`` set) when it is not valid string text. Call it where
    /// ``kind()`` is `.string`.
    public mutating func readString() -> String? {
        parser.skipWhitespace()
        guard let text = parser.parseString() else { return fail() }
        return text
    }

    /// Checks and passes over the value at the current position (`depth`: its nesting, as the tree parser counts
    /// it: the document is at 0); `false` (``failed`` set) when it is not JSON.
    @discardableResult
    public mutating func skipValue(depth: Int) -> Bool {
        guard parser.skipValue(depth: depth) else {
            failed = true
            return false
        }
        return true
    }

    /// Whether only whitespace is left.
    public mutating func isAtEnd() -> Bool {
        parser.skipWhitespace()
        return parser.index == parser.bytes.count
    }

    private mutating func fail<T>() -> T? {
        failed = true
        return nil
    }
}
