import Foundation
import HTTPListener
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ProxyObservability

/// Keeps trace attachments (`PUT …/traces/<id>/artifacts/attachments/<uuid>`) when the proxy answers trace
/// uploads itself, under `<directory>/<trace id>/<attachment id>`, within a byte budget (each file and directory
/// also costs `entryCost`, so many empty attachments cannot fill the disk's inodes for free).
///
/// Without a directory, or once the budget is used, attachments are read, discarded, counted
/// (`attachments_discarded{reason}`) and logged; the client still gets 200 (the trace itself is fine, and a
/// 5xx would make the client retry for minutes). Files are written to a temporary name and renamed, so a
/// reader never sees a partial attachment.
public final class AttachmentStore: Sendable {
    private let directory: URL?
    private let maxBytes: Int
    private let usedBytes: NIOLockedValueBox<Int>
    private let counters: ProxyCounters

    /// A store in `directory` (none: attachments are refused) holding at most `maxBytes`.
    public init(directory: String?, maxBytes: Int, counters: ProxyCounters) throws {
        self.maxBytes = maxBytes
        self.counters = counters
        guard let directory else {
            self.directory = nil
            usedBytes = NIOLockedValueBox(0)
            return
        }
        let url = URL(fileURLWithPath: directory, isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        self.directory = url
        usedBytes = NIOLockedValueBox(Self.sizeOfTree(url))
    }

    /// Reads the attachment body and stores or discards it.
    /// - Returns: whether it was stored.
    public func receive(_ body: RequestBody, traceID: String, attachmentID: String, declaredLength: Int?, logger: Logger) async throws -> Bool {
        guard let directory else {
            let bytes = try await drain(body)
            discard(reason: "storage_off", traceID: traceID, attachmentID: attachmentID, bytes: bytes, logger: logger, level: .debug)
            return false
        }
        guard Self.isSafeName(traceID), Self.isSafeName(attachmentID) else {
            let bytes = try await drain(body)
            discard(reason: "invalid_name", traceID: traceID, attachmentID: attachmentID, bytes: bytes, logger: logger, level: .warning)
            return false
        }
        // Reserve the declared size up front; bodies without a length reserve as they stream.
        var reserved = 0
        func reserve(_ amount: Int) -> Bool {
            usedBytes.withLockedValue { used in
                guard used + amount <= maxBytes else { return false }
                used += amount
                reserved += amount
                return true
            }
        }
        func release() { usedBytes.withLockedValue { $0 -= reserved } }
        let traceDirectory = directory.appendingPathComponent(traceID, isDirectory: true)
        // Every file, and every trace's directory, costs a block of the budget: zero-byte attachments are not free.
        let entries = FileManager.default.fileExists(atPath: traceDirectory.path) ? 1 : 2
        if !reserve(entries * Self.entryCost + (declaredLength ?? 0)) {
            let bytes = try await drain(body)
            discard(reason: "storage_full", traceID: traceID, attachmentID: attachmentID, bytes: bytes, logger: logger, level: .warning)
            return false
        }
        let final = traceDirectory.appendingPathComponent(attachmentID)
        let temporary = traceDirectory.appendingPathComponent(".\(attachmentID).\(UUID().uuidString).partial")
        do {
            try FileManager.default.createDirectory(at: traceDirectory, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: temporary.path, contents: nil), let handle = FileHandle(forWritingAtPath: temporary.path)
            else {
                throw CocoaError(.fileWriteUnknown)
            }
            var written = 0
            var overBudget = false
            do {
                defer { try? handle.close() }
                for try await chunk in body {
                    written += chunk.readableBytes
                    if declaredLength == nil || written > declaredLength ?? 0 {
                        if !reserve(chunk.readableBytes) { overBudget = true }
                    }
                    if overBudget { continue }  // keep reading so the connection stays usable
                    try handle.write(contentsOf: chunk.readableBytesView)
                }
            }
            if overBudget {
                try? FileManager.default.removeItem(at: temporary)
                release()
                discard(reason: "storage_full", traceID: traceID, attachmentID: attachmentID, bytes: written, logger: logger, level: .warning)
                return false
            }
            if FileManager.default.fileExists(atPath: final.path) {
                // A retried upload: the attachment is already there.
                try FileManager.default.removeItem(at: temporary)
                release()
            } else {
                try FileManager.default.moveItem(at: temporary, to: final)
            }
            counters.increment(.attachmentsStored)
            logger.debug("attachment stored", metadata: ["trace_id": "\(traceID)", "attachment": "\(attachmentID)", "bytes": "\(written)"])
            return true
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            release()
            discard(reason: "io_error", traceID: traceID, attachmentID: attachmentID, bytes: 0, logger: logger, level: .error)
            return false
        }
    }

    private func drain(_ body: RequestBody) async throws -> Int {
        var bytes = 0
        for try await chunk in body { bytes += chunk.readableBytes }
        return bytes
    }

    private func discard(reason: String, traceID: String, attachmentID: String, bytes: Int, logger: Logger, level: Logger.Level) {
        counters.increment(.attachmentsDiscarded, reason)
        logger.log(
            level: level, "attachment accepted and discarded",
            metadata: ["reason": "\(reason)", "trace_id": "\(traceID)", "attachment": "\(attachmentID)", "bytes": "\(bytes)"]
        )
    }

    /// Ids as MLflow makes them (`tr-<hex>`, request ids, UUIDs): letters, digits, `-` and `_` only.
    public static func isSafeName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 128
            && name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_") }
    }

    /// What one file or directory costs of the budget besides its bytes (a file-system block).
    public static let entryCost = 4096

    /// The budget the directory's contents already use: their bytes and an `entryCost` per file and directory.
    public static func sizeOfTree(_ url: URL) -> Int {
        guard let enumerator = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.fileSizeKey]) else { return 0 }
        var total = 0
        for case let file as URL in enumerator {
            total += entryCost + ((try? file.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0)
        }
        return total
    }
}
