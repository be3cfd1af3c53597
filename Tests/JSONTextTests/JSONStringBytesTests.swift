import Testing

@testable import JSONText

/// The word-at-a-time scans of JSON strings against byte-by-byte references, on random bytes of lengths around the
/// eight-byte words (specials and high bytes at every position, scans starting at every offset).
@Suite struct JSONStringBytesTests {
    static func randomBytes(_ generator: inout SystemRandomNumberGenerator, maxCount: Int = 40) -> [UInt8] {
        let interesting: [UInt8] = [0x00, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x7F, 0x80, 0xA2, 0xDC, 0xFF, 0x1F &+ 0x80]
        return (0..<Int.random(in: 0...maxCount, using: &generator)).map { _ in
            switch Int.random(in: 0..<10, using: &generator) {
            case 0: interesting.randomElement(using: &generator)!  // a non-empty list
            case 1: UInt8.random(in: 0...0xFF, using: &generator)
            default: UInt8.random(in: 0x20...0x7E, using: &generator)
            }
        }
    }

    @Test func firstSpecialAgreesWithAByteScan() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let bytes = Self.randomBytes(&generator)
            let start = Int.random(in: 0...bytes.count, using: &generator)
            let expected = bytes[start...].firstIndex { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C } ?? bytes.count
            #expect(bytes.withUnsafeBufferPointer { JSONStringBytes.firstSpecial(in: $0, from: start) } == expected, "\(bytes) from \(start)")
        }
    }

    @Test func plainASCIIAndTheCheckedWriteAgreeWithAByteScan() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let bytes = Self.randomBytes(&generator)
            let plain = bytes.allSatisfy { $0 < 0x80 && !($0 < 0x20 || $0 == 0x22 || $0 == 0x5C) }
            #expect(bytes.withUnsafeBufferPointer { JSONStringBytes.isPlainASCII($0) } == plain, "\(bytes)")
            // The checked write: what the unchecked one writes for valid UTF-8, nothing (and false) otherwise.
            var expected: [UInt8] = [0x7B]
            let valid = String(validating: bytes, as: UTF8.self) != nil
            if valid { bytes.withUnsafeBufferPointer { JSONValue.writeString(utf8: $0, to: &expected) } }
            var written: [UInt8] = [0x7B]
            #expect(bytes.withUnsafeBufferPointer { JSONValue.writeString(checkingUTF8: $0, to: &written) } == valid, "\(bytes)")
            #expect(written == expected, "\(bytes)")
        }
    }

    @Test func everyWordWithOneSpecialByteIsSeen() {
        for position in 0..<8 {
            for byte in UInt8.min...UInt8.max {
                var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: 8)
                bytes[position] = byte
                let word = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                #expect(JSONStringBytes.hasSpecial(word) == JSONStringBytes.isSpecial(byte), "byte \(byte) at \(position)")
            }
        }
    }

    @Test func longerTextIsValidatedAsTheStandardLibraryDoes() {
        var generator = SystemRandomNumberGenerator()
        let pieces: [[UInt8]] = [
            Array("abcdefgh".utf8), Array("é".utf8), Array("😀".utf8), [0x80], [0xC3], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
        ]
        for _ in 0..<20_000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 0...8, using: &generator) {
                bytes += Bool.random(using: &generator) ? pieces[0] : pieces.randomElement(using: &generator)!  // a non-empty list
                bytes += (0..<Int.random(in: 0...9, using: &generator)).map { _ in UInt8.random(in: 0x20...0x7E, using: &generator) }
            }
            let expected = String(validating: bytes, as: UTF8.self) != nil
            #expect(bytes.withUnsafeBufferPointer { UTF8Validation.isValid($0) } == expected, "\(bytes)")
        }
    }

    @Test func literalsAreAppendedAsTheirBytes() {
        var out: [UInt8] = [0x7B]
        out.appendLiteral(", ")
        out.appendLiteral("")
        out.appendLiteral(#"\u00"#)
        out.appendLiteral("null")
        #expect(out == Array(#"{, \u00null"#.utf8))
    }

    /// Escaping as the loop over every byte did, and parsing back what was written.
    @Test func stringsAreWrittenAndReadAsByteByByte() {
        func reference(_ bytes: [UInt8]) -> [UInt8] {
            var out: [UInt8] = [0x22]
            for byte in bytes {
                switch byte {
                case 0x22: out += Array(#"\""#.utf8)
                case 0x5C: out += Array(#"\\"#.utf8)
                case 0x0A: out += Array(#"\n"#.utf8)
                case 0x0D: out += Array(#"\r"#.utf8)
                case 0x09: out += Array(#"\t"#.utf8)
                case 0x08: out += Array(#"\b"#.utf8)
                case 0x0C: out += Array(#"\f"#.utf8)
                case ..<0x20: out += Array(#"\u00"#.utf8) + [JSONValue.hexDigit(byte >> 4), JSONValue.hexDigit(byte & 0x0F)]
                default: out.append(byte)
                }
            }
            return out + [0x22]
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let text = String(decoding: Self.randomBytes(&generator), as: UTF8.self)  // invalid bytes repaired: valid UTF-8
            let bytes = Array(text.utf8)
            var written: [UInt8] = []
            bytes.withUnsafeBufferPointer { JSONValue.writeString(utf8: $0, to: &written) }
            #expect(written == reference(bytes), "\(bytes)")
            #expect(JSONValue(parsing: written)?.stringValue == text, "\(bytes)")
            // The same text raw between quotes is JSON only without specials, and then reads as itself.
            let raw = [0x22] + bytes + [0x22]
            let plain = !bytes.contains { JSONStringBytes.isSpecial($0) }
            #expect((JSONValue(parsing: raw)?.stringValue == text) == plain, "\(bytes)")
        }
    }
}
