import Foundation

/// Makes a request target safe to route and to forward: the path the upstream sees is exactly the one the
/// request names, with no way to step outside it.
///
/// - Dot segments (`.`, `..`, also percent-encoded as `%2e`) are resolved as RFC 3986 §5.2.4 says, the way
///   nginx does before `proxy_pass`; a `..` that would climb above `/` is rejected.
/// - An encoded NUL (`%00`), a raw control character or a backslash in the path is rejected: no MLflow route
///   has one, and servers disagree on what they mean.
/// - A target that is not origin-form (`/path?query`) is rejected; absolute-form targets
///   (`http://host/path`) already arrive as their path (the HTTP/1 codec drops the authority), so no request
///   can choose a host.
/// The query is kept byte for byte.
public enum RequestPathNormalizer {
    /// The outcome for one target.
    public enum Outcome: Equatable, Sendable {
        /// Safe as it is.
        case unchanged
        /// Safe once rewritten to this target.
        case normalized(String)
        /// Not forwardable; the reason is for the client's error message.
        case rejected(String)
    }

    /// Whether the path part of `target` has nothing any rule looks at (a `%`, a backslash, a control character, or a
    /// `.` that begins a segment): then it is safe as it is. Most MLflow API paths are, and this reads each byte once.
    static func isPlainPath(_ target: String) -> Bool {
        target.utf8.withContiguousStorageIfAvailable { bytes in
            var previous: UInt8 = 0
            for byte in bytes {
                if byte == UInt8(ascii: "?") { return true }
                if byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "%") || byte == UInt8(ascii: "\\") { return false }
                if byte == UInt8(ascii: ".") && previous == UInt8(ascii: "/") { return false }  // `.`, `..` or `.name`: the full walk decides
                previous = byte
            }
            return true
        } ?? false
    }

    /// The path of a request target: what comes before its query or fragment (`?` or `#`), found byte by byte.
    public static func pathPart(of target: String) -> Substring {
        let isMark = { (byte: UInt8) in byte == UInt8(ascii: "?") || byte == UInt8(ascii: "#") }
        // A native string's bytes are contiguous; a bridged one is copied.
        let offset = target.utf8.withContiguousStorageIfAvailable { $0.firstIndex(where: isMark) } ?? Array(target.utf8).firstIndex(where: isMark)
        guard let offset else { return target[...] }
        return target[..<target.utf8.index(target.utf8.startIndex, offsetBy: offset)]
    }

    /// Normalizes `target` (`/path?query`).
    public static func normalize(_ target: String) -> Outcome {
        guard target.hasPrefix("/") else { return .rejected("the request target must be a path starting with /") }
        if isPlainPath(target) { return .unchanged }
        let path: Substring
        let query: Substring?
        if let mark = target.firstIndex(of: "?") {
            path = target[..<mark]
            query = target[target.index(after: mark)...]
        } else {
            path = target[...]
            query = nil
        }
        for scalar in path.unicodeScalars where scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\\" {
            return .rejected("the path contains a control character or a backslash")
        }
        if path.range(of: "%00") != nil { return .rejected("the path contains an encoded NUL (%00)") }

        let segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        guard segments.contains(where: { dotSegmentKind($0) != nil }) else { return .unchanged }
        var output: [Substring] = []
        var endsInDirectory = false
        for segment in segments {
            endsInDirectory = false
            switch dotSegmentKind(segment) {
            case .current?:
                endsInDirectory = true
            case .parent?:
                guard !output.isEmpty else { return .rejected("the path climbs above the root with ..") }
                output.removeLast()
                endsInDirectory = true
            case nil:
                output.append(segment)
            }
        }
        var normalized = "/" + output.joined(separator: "/")
        if endsInDirectory && !normalized.hasSuffix("/") { normalized += "/" }
        if let query { normalized += "?" + query }
        return .normalized(normalized)
    }

    enum DotSegment { case current, parent }

    /// Whether a segment is `.` or `..`, in any mix of literal and percent-encoded dots.
    static func dotSegmentKind(_ segment: Substring) -> DotSegment? {
        guard segment.count <= 6, segment.first == "." || segment.first == "%" else { return nil }
        let decoded = segment.lowercased().replacingOccurrences(of: "%2e", with: ".")
        switch decoded {
        case ".": return .current
        case "..": return .parent
        default: return nil
        }
    }
}
