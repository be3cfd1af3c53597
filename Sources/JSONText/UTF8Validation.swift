/// Strings from UTF-8 bytes that must be valid (JSON text, protobuf `string` fields), without the generic
/// validation path of `String(validating:as:)`, which looks up type metadata on every call.
public enum UTF8Validation {
    /// The string the bytes spell, or `nil` when they are not valid UTF-8.
    public static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        isValid(bytes) ? String(decoding: bytes, as: UTF8.self) : nil
    }

    /// Whether the bytes are valid UTF-8 (the well-formed sequences of the Unicode standard, table 3-7: no
    /// overlong forms, no surrogates, nothing above U+10FFFF), checked without building a string.
    public static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            // Eight ASCII bytes at a time (no high bit set in the word), where most text is.
            if index + 8 <= count, let base = bytes.baseAddress,
                UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0
            {
                index += 8
                continue
            }
            let lead = bytes[index]
            if lead < 0x80 {
                index += 1
                continue
            }
            // The number of continuation bytes, and the range the first of them must fall in.
            let continuations: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: continuations = 1
            case 0xE0: (continuations, low) = (2, 0xA0)
            case 0xE1...0xEC, 0xEE...0xEF: continuations = 2
            case 0xED: (continuations, high) = (2, 0x9F)
            case 0xF0: (continuations, low) = (3, 0x90)
            case 0xF1...0xF3: continuations = 3
            case 0xF4: (continuations, high) = (3, 0x8F)
            default: return false
            }
            guard count - index > continuations else { return false }
            let first = bytes[index + 1]
            guard first >= low && first <= high else { return false }
            var offset = 2
            while offset <= continuations {
                guard bytes[index + offset] & 0xC0 == 0x80 else { return false }
                offset += 1
            }
            index += continuations + 1
        }
        return true
    }

    /// The string the bytes spell, or `nil` when they are not valid UTF-8.
    public static func string(_ bytes: UnsafeRawBufferPointer) -> String? {
        // The callers' buffers hold bytes: a `[UInt8]`, or a NIO `ByteBuffer`, whose storage is bound to `UInt8`.
        string(bytes.assumingMemoryBound(to: UInt8.self))
    }
}
