import Foundation

/// What a backfill delivered, per destination, kept in a file so that a run after a crash, a `Ctrl-C` or a
/// `kill -9` sends nothing twice and goes on where the last one stopped.
///
/// The file is a header line and then one line per delivered trace, `<destination>\t<MLflow trace id>`,
/// appended (and `fsync`ed) right after the destination acknowledged the request that held the trace's last
/// span. A line cut short by a crash is ignored when the file is read (its trace is sent again: the window is
/// the time between the destination's answer and the write).
public final class BackfillCheckpoint {
    /// The first line of every checkpoint file.
    public static let header = "# mlflow-otel-proxy backfill checkpoint v1: <destination>\\t<trace id> per delivered trace"

    /// The file's path.
    public let path: String
    private var delivered: [String: Set<String>] = [:]
    private let handle: FileHandle?

    /// Opens (or creates) the checkpoint at `path`; `readOnly` (a dry run) reads it without creating or writing.
    /// - Throws: ``BackfillError`` when the file cannot be read, created or is not a checkpoint.
    public init(path: String, readOnly: Bool = false) throws(BackfillError) {
        self.path = path
        let manager = FileManager.default
        if manager.fileExists(atPath: path) {
            guard let data = manager.contents(atPath: path) else { throw BackfillError("cannot read the checkpoint \(path)") }
            let text = String(decoding: data, as: UTF8.self)
            guard text.isEmpty || text.hasPrefix("# mlflow-otel-proxy backfill checkpoint") else {
                throw BackfillError("\(path) is not a backfill checkpoint (its first line is not \"\(Self.header)\")")
            }
            // Only complete lines count: a crash may have cut the last one short.
            let complete = text.hasSuffix("\n") ? Substring(text) : text[..<(text.lastIndex(of: "\n") ?? text.startIndex)]
            if text.isEmpty && !readOnly {
                guard manager.createFile(atPath: path, contents: Data((Self.header + "\n").utf8)) else {
                    throw BackfillError("cannot write the checkpoint \(path)")
                }
            }
            for line in complete.split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: "\t", maxSplits: 1)
                guard parts.count == 2 else { continue }
                delivered[String(parts[0]), default: []].insert(String(parts[1]))
            }
        } else if !readOnly {
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty && !manager.fileExists(atPath: directory) {
                throw BackfillError("the checkpoint's directory \(directory) does not exist")
            }
            guard manager.createFile(atPath: path, contents: Data((Self.header + "\n").utf8)) else {
                throw BackfillError("cannot create the checkpoint \(path)")
            }
        }
        if readOnly {
            handle = nil
        } else {
            guard let opened = FileHandle(forWritingAtPath: path) else { throw BackfillError("cannot open the checkpoint \(path) for writing") }
            do {
                // A line a crash cut short is cut off, so that the next record starts on its own line.
                if let data = manager.contents(atPath: path), let last = data.last, last != UInt8(ascii: "\n") {
                    let keep = data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
                    try opened.truncate(atOffset: UInt64(keep))
                }
                try opened.seekToEnd()
            } catch {
                throw BackfillError("cannot write the checkpoint \(path): \(error)")
            }
            handle = opened
        }
    }

    deinit { try? handle?.close() }

    /// Whether `traceID` was delivered to `destination` by an earlier run (or this one).
    public func isDelivered(_ traceID: String, to destination: String) -> Bool {
        delivered[destination]?.contains(traceID) ?? false
    }

    /// The traces delivered to every one of `destinations`.
    public func deliveredEverywhere(_ destinations: [String]) -> Set<String> {
        guard let first = destinations.first else { return [] }
        return destinations.dropFirst().reduce(delivered[first] ?? []) { $0.intersection(delivered[$1] ?? []) }
    }

    /// How many traces were delivered to `destination`.
    public func count(for destination: String) -> Int { delivered[destination]?.count ?? 0 }

    /// Records traces as delivered to `destination`, on disk before it returns.
    /// - Throws: ``BackfillError`` when the file cannot be written (the backfill must stop: what it sends next
    ///   could not be recorded).
    public func record(_ traceIDs: [String], delivered destination: String) throws(BackfillError) {
        // An id or name holding a line break or a tab could not be read back as one record: it is not recorded
        // (the trace would be sent again by a later run).
        guard !destination.contains(where: { $0 == "\t" || $0.isNewline }) else { return }
        let new = traceIDs.filter { id in !isDelivered(id, to: destination) && !id.contains(where: { $0 == "\t" || $0.isNewline }) }
        guard !new.isEmpty else { return }
        guard let handle else { return }
        var text = ""
        for id in new { text += destination + "\t" + id + "\n" }
        do {
            try handle.write(contentsOf: Data(text.utf8))
            try handle.synchronize()
        } catch {
            throw BackfillError("cannot write the checkpoint \(path): \(error)")
        }
        delivered[destination, default: []].formUnion(new)
    }
}
