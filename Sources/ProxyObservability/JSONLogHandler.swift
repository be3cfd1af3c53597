import Foundation
import JSONText
import Logging

/// Writes one JSON object per log line to standard error (`--log-format json`): `timestamp`, `level`,
/// `label`, `message`, `source` and the metadata as string fields.
public struct JSONLogHandler: LogHandler {
    /// Metadata added to every line of this logger.
    public var metadata: Logger.Metadata = [:]
    /// The lowest level written.
    public var logLevel: Logger.Level
    private let label: String

    /// Creates a handler.
    public init(label: String, level: Logger.Level) {
        self.label = label
        logLevel = level
    }

    /// Metadata by key.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one line.
    public func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String, function: String, line: UInt
    ) {
        var object: [String: String] = [:]
        for (key, value) in metadata.merging(explicit ?? [:], uniquingKeysWith: { $1 }) { object[key] = "\(value)" }
        object["timestamp"] = ISO8601DateFormatter().string(from: Date())
        object["level"] = level.rawValue
        object["label"] = label
        object["message"] = message.description
        object["source"] = source
        let line = JSONValue.object(object.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }).text + "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
