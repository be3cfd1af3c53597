extension Array where Element == UInt8 {
    /// Appends a short ASCII literal (`", "`, `": "`, `null`, an escape) byte by byte: for two to four bytes this is a
    /// fraction of what the generic `append(contentsOf:)` costs per call, and JSON writers make one such call per
    /// member and separator.
    @inlinable
    public mutating func appendLiteral(_ literal: StaticString) {
        literal.withUTF8Buffer { bytes in
            for byte in bytes { append(byte) }
        }
    }
}
