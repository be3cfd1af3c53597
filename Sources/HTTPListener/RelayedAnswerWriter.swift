import HTTPTypes
import NIOCore

/// One header field of an answer relayed from an HTTP/1 upstream, as that upstream's parser gave it (a name that is a
/// valid token, a value already legal for HTTPTypes: ``RelayedAnswerWriter/field(name:value:)`` makes sure).
public struct RelayedField: Sendable, AnswerField {
    public let name: String
    public let value: String

    var nameText: String { name }
    var valueText: String { value }
    var isContentLength: Bool { Self.nameEquals(name, lowercased: "content-length") }
    var isTransferEncoding: Bool { Self.nameEquals(name, lowercased: "transfer-encoding") }

    init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// Whether `name` is `lowercased` in any ASCII case (both are checked for their length first: almost every name
    /// differs there).
    static func nameEquals(_ name: String, lowercased: StaticString) -> Bool {
        guard name.utf8.count == lowercased.utf8CodeUnitCount else { return false }
        var expected = lowercased.utf8Start
        for byte in name.utf8 {
            let folded = (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) ? byte | 0x20 : byte
            guard folded == expected.pointee else { return false }
            expected += 1
        }
        return true
    }
}

/// Writes answers that the handlers after the guard relay from an HTTP/1 upstream (the passthrough's) straight to the
/// client as HTTP/1 bytes, from the listener codec's place in the pipeline, and tells the guard what the answer's
/// head and end would have told it on their way.
///
/// The bytes are the ones the codec writes for an `HTTPResponse` with the same status and fields (framing corrected
/// the same way, no body for `HEAD` or `CONNECT`); the answer just does not pass each handler between as three
/// HTTPTypes parts. Everything else the listener writes (Hummingbird's answers, the proxy's own) still goes through
/// the pipeline. One per connection, used on its event loop only, and only while no other answer is being written
/// on the connection (the passthrough answers one request at a time).
public final class RelayedAnswerWriter {
    private let codec: ListenerHTTPTypesCodec
    private let guardHandler: ConnectionGuardHandler

    init(codec: ListenerHTTPTypesCodec, guardHandler: ConnectionGuardHandler) {
        self.codec = codec
        self.guardHandler = guardHandler
    }

    /// A field of a relayed answer, or `nil` for a name HTTPTypes would refuse (the field is dropped, as the
    /// conversion to HTTPTypes drops it). A value HTTPTypes would change is changed the same way.
    public static func field(name: String, value: String) -> RelayedField? {
        guard isToken(name) else { return nil }
        if HTTPField.isValidValue(value) { return RelayedField(name: name, value: value) }
        // Not reached for values an HTTP/1 parser accepted; kept identical to the HTTPTypes path anyway.
        guard let fieldName = HTTPField.Name(name) else { return nil }
        return RelayedField(name: name, value: HTTPField(name: fieldName, value: value).value)
    }

    /// A header name as RFC 9110 has a token (HTTPTypes' check for a field name): one or more of
    /// ``tokenBytesBelow64`` and ``tokenBytesFrom64``.
    static func isToken(_ name: String) -> Bool {
        func check(_ bytes: some Sequence<UInt8>) -> Bool {
            var any = false
            for byte in bytes {
                let allowed =
                    byte < 64 ? tokenBytesBelow64 & (1 << UInt64(byte)) != 0 : byte < 128 && tokenBytesFrom64 & (1 << UInt64(byte - 64)) != 0
                guard allowed else { return false }
                any = true
            }
            return any
        }
        return name.utf8.withContiguousStorageIfAvailable { check($0) } ?? check(name.utf8)
    }

    /// The token bytes 0–63 as bits: `!#$%&'*+-.` and the digits.
    static let tokenBytesBelow64: UInt64 = 0x03ff_6cfa_0000_0000
    /// The token bytes 64–127 as bits (from 64): the letters and `^_`|~`.
    static let tokenBytesFrom64: UInt64 = 0x57ff_ffff_c7ff_fffe

    /// Writes the answer's head (not flushed). `closes`: it carries `Connection: close`, so the connection closes
    /// after this answer.
    public func writeHead(status: HTTPResponse.Status, fields: [RelayedField], closes: Bool) {
        guardHandler.answerHeadPassing(closes: closes)
        codec.writeRelayedHead(status: status, fields: fields)
    }

    /// Writes the answer's head and its whole body (not flushed): the same bytes as ``writeHead(status:fields:closes:)``
    /// then ``writeBody(_:)``, in one buffer when the body follows the head unchanged.
    public func writeHead(status: HTTPResponse.Status, fields: [RelayedField], closes: Bool, wholeBody: ByteBuffer) {
        guardHandler.answerHeadPassing(closes: closes)
        codec.writeRelayedHead(status: status, fields: fields, wholeBody: wholeBody)
    }

    /// Writes a part of the answer's body (not flushed).
    public func writeBody(_ body: ByteBuffer) {
        codec.writeRelayedBody(body)
    }

    /// Writes the answer's end and flushes; the guard closes the connection after it when the answer or a graceful
    /// shutdown says so.
    public func writeEnd() {
        guardHandler.answerEndPassing { promise in
            self.codec.writeRelayedEnd(promise: promise)
            self.codec.flushRelayed()
        }
    }

    /// Flushes what was written.
    public func flush() { codec.flushRelayed() }
}

extension RelayedField {
    /// `Connection: close`, as HTTPTypes names it.
    public static let connectionClose = RelayedField(name: "Connection", value: "close")
}
