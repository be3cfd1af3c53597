/// A small fixed set of keys (attribute names, JSON member names) and the position of each, for code that reads a
/// few known keys among many: a key is matched by its UTF-8 length before its text, so most keys it is asked about
/// are passed over without comparing text (a scan per key read cost more, and a hash table more still, for tables
/// of a dozen keys).
public struct KeyTable: Sendable {
    /// The keys, in their positions.
    public let keys: [String]
    private let lengths: [Int]

    /// A table of `keys` (each once).
    public init(_ keys: [String]) {
        self.keys = keys
        lengths = keys.map(\.utf8.count)
    }

    /// The position of `key` in ``keys``, or `nil`.
    public func index(of key: String) -> Int? {
        let length = key.utf8.count
        for index in lengths.indices where lengths[index] == length && keys[index] == key { return index }
        return nil
    }
}
