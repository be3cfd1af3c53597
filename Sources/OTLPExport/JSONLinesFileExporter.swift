import Foundation
import NIOConcurrencyHelpers
import OTLPJSON
import OTLPProto

/// Appends each export request as one line of OTLP/JSON (hex ids, integer enums) to a local file:
/// the standalone demo's sink. Any OTLP/JSON reader (or `jq`) can read the file.
public final class JSONLinesFileExporter: SpanExporter {
    /// `file:<path>`.
    public let name: String
    private let handle: NIOLockedValueBox<FileHandle>

    /// Opens (creating if needed) the file for appending.
    /// - Throws: ``ExportFailure`` when the file cannot be opened.
    public init(path: String) throws(ExportFailure) {
        name = "file:\(path)"
        let manager = FileManager.default
        if !manager.fileExists(atPath: path) {
            guard manager.createFile(atPath: path, contents: nil) else {
                throw ExportFailure(reason: .io, message: "cannot create \(path)")
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw ExportFailure(reason: .io, message: "cannot open \(path) for writing")
        }
        handle.seekToEndOfFile()
        self.handle = NIOLockedValueBox(handle)
    }

    /// Appends one line.
    public func export(_ batch: ExportBatch) async throws(ExportFailure) -> Int {
        let request = try batch.request()
        let line: Data
        do {
            line = try OTLPJSONCoding.encode(request) + Data("\n".utf8)
        } catch {
            throw ExportFailure(reason: .encoding, message: "could not encode OTLP/JSON: \(error)")
        }
        do {
            try handle.withLockedValue { handle in try handle.write(contentsOf: line) }
        } catch {
            throw ExportFailure(reason: .io, message: "could not write \(name): \(error)")
        }
        return 0
    }

    /// Closes the file.
    public func shutdown() async {
        handle.withLockedValue { try? $0.close() }
    }
}
