/// Strings from UTF-8 bytes that must be valid (JSON text, protobuf `string` fields), without the generic
/// validation path of `String(validating:as:)`, which looks up type metadata on every call.
public enum UTF8Validation {
    /// The string the bytes spell, or `nil` when they are not valid UTF-8.
    public static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var ascii = true
        for byte in bytes where byte >= 0x80 {
            ascii = false
            break
        }
        let text = String(decoding: bytes, as: UTF8.self)
        if ascii { return text }
        // Decoding repairs a broken sequence with U+FFFD, so bytes that decode to themselves were valid.
        var copy = text
        return copy.withUTF8 { $0.elementsEqual(bytes) } ? text : nil
    }

    /// The string the bytes spell, or `nil` when they are not valid UTF-8.
    public static func string(_ bytes: UnsafeRawBufferPointer) -> String? {
        // The callers' buffers hold bytes: a `[UInt8]`, or a NIO `ByteBuffer`, whose storage is bound to `UInt8`.
        string(bytes.assumingMemoryBound(to: UInt8.self))
    }
}
