import Foundation

/// An IPv4 or IPv6 address range in CIDR form (`10.0.0.0/8`, `fd00::/8`), or one address (`127.0.0.1`): the peers
/// whose `X-Forwarded-*` headers the proxy trusts (`trusted_proxies`).
public struct AddressRange: Sendable, Equatable, CustomStringConvertible {
    /// The network's address bytes (4 or 16).
    let network: [UInt8]
    /// The prefix length in bits.
    let prefixLength: Int

    /// Parses `ADDRESS` or `ADDRESS/PREFIX`; `nil` when it is neither.
    public init?(_ text: String) {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let bytes = Self.bytes(of: first) else { return nil }
        let bits = bytes.count * 8
        var length = bits
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...bits).contains(value) else { return nil }
            length = value
        }
        network = bytes
        prefixLength = length
    }

    /// `ADDRESS/PREFIX`.
    public var description: String {
        let address =
            network.count == 4
            ? network.map(String.init).joined(separator: ".")
            : stride(from: 0, to: 16, by: 2).map { String(UInt16(network[$0]) << 8 | UInt16(network[$0 + 1]), radix: 16) }.joined(separator: ":")
        return "\(address)/\(prefixLength)"
    }

    /// Whether `address` (text, as a socket reports it) lies in the range. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.1.2.3`) match IPv4 ranges.
    public func contains(_ address: String) -> Bool {
        guard var bytes = Self.bytes(of: address) else { return false }
        if bytes.count == 16, network.count == 4, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            bytes = Array(bytes[12...])
        }
        guard bytes.count == network.count else { return false }
        var remaining = prefixLength
        for index in bytes.indices where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xff : ~(0xff >> UInt8(remaining))
            if bytes[index] & mask != network[index] & mask { return false }
            remaining -= 8
        }
        return true
    }

    /// The address's bytes: 4 for IPv4, 16 for IPv6 (brackets and a zone are ignored).
    static func bytes(of text: String) -> [UInt8]? {
        var address = text
        if address.hasPrefix("["), address.hasSuffix("]") { address = String(address.dropFirst().dropLast()) }
        if let zone = address.firstIndex(of: "%") { address = String(address[..<zone]) }
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, address, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}
