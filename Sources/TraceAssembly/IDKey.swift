import Foundation

/// A trace id as a key of the assembler's dictionaries. An id of up to 16 bytes (every valid OpenTelemetry trace id)
/// is held in two integers, so hashing and comparing it is a few word operations instead of a Foundation `Data`
/// walked byte by byte (and no heap object per key: a 16-byte `Data` has one); a longer one (a malformed upload) is
/// kept whole, so keys stay exact. Span ids stay `Data`: 8 bytes fit inside a `Data`, which is then smaller than
/// this key, and up to a million of them are remembered.
struct IDKey: Hashable, Sendable {
    private let words: (UInt64, UInt64)
    private let count: Int
    private let long: Data?

    init(_ data: Data) {
        self = data.withUnsafeBytes { IDKey(bytes: $0) }
    }

    init(_ bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { IDKey(bytes: $0) }
    }

    private init(bytes: UnsafeRawBufferPointer) {
        count = bytes.count
        guard bytes.count <= 16 else {
            words = (0, 0)
            long = Data(bytes)
            return
        }
        var words: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: bytes) }
        self.words = words
        long = nil
    }

    /// The id's bytes.
    var data: Data {
        if let long { return long }
        return withUnsafeBytes(of: words) { Data($0.prefix(count)) }
    }

    static func == (lhs: IDKey, rhs: IDKey) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.count == rhs.count && lhs.long == rhs.long
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(count)
        if let long { hasher.combine(long) }
    }
}
