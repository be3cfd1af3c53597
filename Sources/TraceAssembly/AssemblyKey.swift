import Foundation
import OTLPJSON

/// What the assembler holds data under: a trace, by its OpenTelemetry trace id, or a v2 record (`StartTrace`,
/// `EndTrace`) by its request id until its spans name the trace. The intake journal keeps these per upload and
/// asks the assembler which it still holds.
public enum AssemblyKey: Hashable, Sendable {
    /// A trace, by its 16-byte trace id.
    case trace(Data)
    /// A v2 record, by its request id.
    case request(String)

    /// As the intake journal stores it: `t:<32 hex digits>` or `r:<request id>`.
    public var journalText: String {
        switch self {
        case .trace(let id): "t:" + HexID.string(id)
        case .request(let id): "r:" + id
        }
    }

    /// The key a journal text names; `nil` for text that names none.
    public init?(journalText text: String) {
        if text.hasPrefix("t:") {
            guard let bytes = HexID.bytes(text.dropFirst(2)), bytes.count == 16 else { return nil }
            self = .trace(Data(bytes))
        } else if text.hasPrefix("r:"), text.count > 2 {
            self = .request(String(text.dropFirst(2)))
        } else {
            return nil
        }
    }
}
