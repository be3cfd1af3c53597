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

/// The span ids of one trace, for deduplication and parent checks. An 8-byte id (every valid OpenTelemetry span id)
/// is kept as one integer: inserting and finding it hashes a word instead of walking a Foundation `Data` through
/// `Hasher.combine(bytes:)`, and it takes 8 bytes instead of `Data`'s 16 (up to a million ids are remembered for
/// exported traces). Ids of another length (malformed uploads) are kept whole, so the set stays exact.
struct SpanIDSet: Sendable {
    private var words: Set<UInt64> = []
    private var others: Set<Data> = []

    /// How many ids the set holds.
    var count: Int { words.count + others.count }

    /// Adds `id`; whether it was not there yet.
    mutating func insert(_ id: Data) -> Bool {
        if let word = Self.word(id) { return words.insert(word).inserted }
        return others.insert(id).inserted
    }

    /// Whether the set holds `id`.
    func contains(_ id: Data) -> Bool {
        if let word = Self.word(id) { return words.contains(word) }
        return others.contains(id)
    }

    /// The id as an integer when it is 8 bytes long.
    private static func word(_ id: Data) -> UInt64? {
        guard id.count == 8 else { return nil }
        return id.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }
}
