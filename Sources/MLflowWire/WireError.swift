/// Bad client input found while decoding an upload; carries what the HTTP answer needs.
///
/// Every case is a client error (4xx): the same bytes would fail again, so clients must not retry.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The reason class, used for the error code, the HTTP status and the counter label.
    public enum Kind: String, Sendable, Equatable {
        /// The body is not of a content type this route accepts (415).
        case unsupportedContentType = "unsupported_content_type"
        /// A `Content-Encoding` the proxy cannot undo, or a body that fails to decompress (400 / 415).
        case badEncoding = "bad_encoding"
        /// The body does not decode as the expected message (400).
        case malformedBody = "malformed_body"
        /// A header the route requires is absent (400).
        case missingHeader = "missing_header"
        /// An id that is not of the expected shape (400).
        case invalidID = "invalid_id"
        /// The body exceeds the configured limit (413).
        case bodyTooLarge = "body_too_large"
        /// A trace id the proxy has no record of (404).
        case unknownTrace = "unknown_trace"
    }

    /// The reason class.
    public var kind: Kind
    /// A sentence for the client saying what was wrong.
    public var message: String

    /// Creates an error.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The HTTP status that tells the client not to retry.
    public var httpStatus: Int {
        switch kind {
        case .unsupportedContentType: 415
        case .badEncoding, .malformedBody, .missingHeader, .invalidID: 400
        case .bodyTooLarge: 413
        case .unknownTrace: 404
        }
    }

    /// MLflow's `error_code` for the JSON error body.
    public var mlflowErrorCode: String {
        switch kind {
        case .unknownTrace: "RESOURCE_DOES_NOT_EXIST"
        case .bodyTooLarge: "MAX_READ_SIZE_EXCEEDED"
        default: "INVALID_PARAMETER_VALUE"
        }
    }

    /// `kind: message`.
    public var description: String { "\(kind.rawValue): \(message)" }
}
