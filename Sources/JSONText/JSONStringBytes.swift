/// Finds, eight bytes at a time, the bytes that a JSON string cannot hold as they are: `"`, `\` and the control
/// characters below U+0020. Reading and writing JSON strings scans every byte of every string for them; most strings
/// have none, so whole words are passed over with a few arithmetic operations instead of three comparisons per byte.
enum JSONStringBytes {
    /// The index of the first such byte in `bytes` at or after `start`, or `bytes.count` when there is none.
    static func firstSpecial(in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        var index = start
        let count = bytes.count
        if let base = bytes.baseAddress {
            // Whole words first; the word that holds one is then read byte by byte below.
            while index + 8 <= count, !hasSpecial(UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self)) { index += 8 }
        }
        while index < count {
            if isSpecial(bytes[index]) { return index }
            index += 1
        }
        return count
    }

    /// Whether `bytes` are all ASCII and none is special: such text is valid UTF-8 and a JSON string as it is. One
    /// pass, eight bytes at a time (most keys and short values of the span path are such text).
    static func isPlainASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        let count = bytes.count
        if let base = bytes.baseAddress {
            while index + 8 <= count {
                let word = UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self)
                if word & 0x8080_8080_8080_8080 != 0 || hasSpecial(word) { return false }
                index += 8
            }
        }
        while index < count {
            let byte = bytes[index]
            if byte >= 0x80 || isSpecial(byte) { return false }
            index += 1
        }
        return true
    }

    /// Whether one byte is `"`, `\` or below 0x20.
    @inline(__always) static func isSpecial(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }

    /// Whether any of a word's eight bytes is special: "has a byte less than n" and "has a zero byte" from Sean
    /// Anderson's *Bit Twiddling Hacks* (exact answers, not estimates: `x - 0x01…·n` borrows into a byte's high bit
    /// only from a byte below `n`, and `& ~x` drops the bytes whose own high bit was set).
    @inline(__always) static func hasSpecial(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        let quotes = word ^ (ones &* UInt64(UInt8(ascii: "\"")))
        let backslashes = word ^ (ones &* UInt64(UInt8(ascii: "\\")))
        let controls = (word &- ones &* 0x20) & ~word
        let quoteZeros = (quotes &- ones) & ~quotes
        let backslashZeros = (backslashes &- ones) & ~backslashes
        return (controls | quoteZeros | backslashZeros) & highBits != 0
    }
}
