import HTTPTypes
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// A request head as the listener's checks read and edit it (``InboundAuthentication``, ``LoopGuard``, the proxy's
/// admission): HTTPTypes' `HTTPRequest` (the requests the application answers) or NIO's `HTTPRequestHead` as the
/// decoder made it (the ones the passthrough forwards or answers, never converted). Both answer alike: header names
/// compared without case, a repeated field's values joined with `", "` (as HTTPTypes' subscript joins every field
/// but `Cookie`, which the checks do not read).
public protocol ListenerRequestHead {
    /// The request target the checks route on: path and query (`HTTPRequest.path`, `""` when it has none; NIO's
    /// `uri`, in origin form when the passthrough reads it).
    var target: String { get set }
    /// The method's name.
    var methodName: String { get }
    /// The value of the field `name` (a repeated one's values joined with `", "`); `nil` when there is none.
    func value(of name: HTTPField.Name) -> String?
    /// The values of the fields named `name`, one per field line.
    func values(of name: HTTPField.Name) -> [String]
    /// Removes every field named `name`.
    mutating func removeFields(_ name: HTTPField.Name)
}

extension HTTPRequest: ListenerRequestHead {
    public var target: String {
        get { path ?? "" }
        set { path = newValue }
    }
    public var methodName: String { method.rawValue }
    public func value(of name: HTTPField.Name) -> String? { headerFields.value(of: name) }
    public func values(of name: HTTPField.Name) -> [String] { headerFields.values(of: name) }
    public mutating func removeFields(_ name: HTTPField.Name) { headerFields[name] = nil }
}

extension HTTPRequestHead: ListenerRequestHead {
    public var target: String {
        get { uri }
        set { uri = newValue }
    }
    public var methodName: String { method.rawValue }
    public func value(of name: HTTPField.Name) -> String? { headers.value(of: name) }
    public func values(of name: HTTPField.Name) -> [String] { headers.values(of: name) }
    public mutating func removeFields(_ name: HTTPField.Name) { headers.remove(name: name.rawName) }
}

extension HTTPRequestHead {
    /// This head with its target in origin form (`/path?query`): an absolute-form target (`http://host/path`) becomes
    /// its path as the application's conversion makes it (``ListenerRequestConverter``, NIOHTTPTypesHTTP1's; the
    /// authority stays the `Host` header's, as there), and other targets stay; `nil` when that conversion fails.
    public var inOriginForm: HTTPRequestHead? {
        guard uri.utf8.first != UInt8(ascii: "/") else { return self }
        guard let path = (try? HTTPRequest(self, secure: false, splitCookie: false))?.path else { return nil }
        var head = self
        head.uri = path
        return head
    }
}

extension HTTPHeaders {
    /// The value of the header `name` (compared without case), as `HTTPFields.value(of:)` gives a field's made of
    /// these headers: a repeated one's values joined with `", "`, each as ``fieldValue(_:)`` makes it; `nil` when
    /// there is none. One pass, no array made.
    public func value(of name: HTTPField.Name) -> String? {
        let lowercased = name.canonicalName.utf8
        var found: String?
        for header in self {
            // Lengths first: almost every name differs there.
            guard header.name.utf8.count == lowercased.count,
                header.name.utf8.elementsEqual(lowercased, by: { ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) == $1 })
            else { continue }
            let value = Self.fieldValue(header.value)
            found = found.map { $0 + ", " + value } ?? value
        }
        return found
    }

    /// The values of the headers named `name` (compared without case), one per header line, each as
    /// ``fieldValue(_:)`` makes it: what `HTTPFields`' `values(of:)` gives for the fields made of these headers.
    public func values(of name: HTTPField.Name) -> [String] { self[name.rawName].map(Self.fieldValue) }

    /// A header value as an HTTPTypes field holds it: HTTPTypes' own legalization (`HTTPField(name:value:)`), which
    /// for what NIO's decoder lets through only trims the spaces and tabs it leaves at a value's end. A valid value
    /// (almost every one) is checked and returned as it is.
    public static func fieldValue(_ value: String) -> String {
        HTTPField.isValidValue(value) ? value : HTTPField(name: .accept, value: value).value
    }
}
