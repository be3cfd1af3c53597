#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One destination's spool on disk: a directory holding one file per batch, each file the batch's
/// `ExportTraceServiceRequest` protobuf bytes, nothing else.
///
/// A file is written under a temporary name and renamed into place, so a crash leaves either the whole batch
/// or nothing (leftover temporary files are removed when the spool opens). Names sort in arrival order:
/// `<sequence, 20 digits>-<span count>.otlp`. With `fsync` on, the file and then the directory entry are
/// synced before ``write(sequence:spans:bytes:)`` returns, so a stored batch survives power loss too.
///
/// The directory is locked (`flock` on `.lock`) while a pipeline uses it: a second proxy process pointed at
/// the same directory is refused instead of delivering the same batches twice.
public final class SpoolDirectory: Sendable {
    /// A batch file found on disk.
    public struct StoredBatch: Sendable, Equatable {
        /// Its place in arrival order.
        public let sequence: UInt64
        /// Spans in it (from its name).
        public let spans: Int
        /// Its size.
        public let bytes: Int
    }

    /// What went wrong with the spool, in words that name the path and the system's reason.
    public struct SpoolError: Error, CustomStringConvertible, Sendable {
        /// Whether the directory is locked by another user (another process, or a unit not yet retired).
        public let locked: Bool
        /// The explanation.
        public let description: String
    }

    /// The directory.
    public let path: String
    /// The file names' ending (`.otlp` for batches).
    private let suffix: String
    private let fsyncEachWrite: Bool
    /// The open `.lock` file that holds the lock; closed (which releases it) on deinit.
    private let lockDescriptor: Int32

    /// Opens (creating when missing) and locks the directory.
    /// - Throws: ``SpoolError`` when the directory cannot be created or written, or another user holds its lock
    ///   (`locked` is then true).
    public init(path: String, fsync: Bool, suffix: String = ".otlp") throws(SpoolError) {
        self.path = path
        self.suffix = suffix
        self.fsyncEachWrite = fsync
        try Self.makeDirectories(path)
        let descriptor = systemOpen(path + "/.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw Self.error("cannot create \(path)/.lock") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(descriptor)
            if code == EWOULDBLOCK {
                throw SpoolError(locked: true, description: "the spool directory \(path) is in use (locked by another process or pipeline)")
            }
            throw Self.error("cannot lock \(path)/.lock", code: code)
        }
        lockDescriptor = descriptor
    }

    deinit {
        close(lockDescriptor)
    }

    /// The batches stored, oldest first; removes temporary files a crash left behind.
    public func storedBatches() throws(SpoolError) -> [StoredBatch] {
        guard let directory = opendir(path) else { throw Self.error("cannot list \(path)") }
        defer { closedir(directory) }
        var found: [StoredBatch] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix(".incoming-") {
                unlink(path + "/" + name)
                continue
            }
            guard name.hasSuffix(suffix) else { continue }
            let parts = name.dropLast(suffix.count).split(separator: "-")
            guard parts.count == 2, let sequence = UInt64(parts[0]), let spans = Int(parts[1]) else { continue }
            var info = stat()
            guard stat(path + "/" + name, &info) == 0 else { continue }
            found.append(StoredBatch(sequence: sequence, spans: spans, bytes: Int(info.st_size)))
        }
        return found.sorted { $0.sequence < $1.sequence }
    }

    /// Stores a batch: written to a temporary file, synced when configured, renamed into place.
    public func write(sequence: UInt64, spans: Int, bytes: [UInt8]) throws(SpoolError) {
        let name = fileName(sequence: sequence, spans: spans)
        let temporary = path + "/.incoming-" + name
        let descriptor = systemOpen(temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw Self.error("cannot create \(temporary)") }
        var written = 0
        let failure: Int32? = bytes.withUnsafeBytes { raw -> Int32? in
            while written < raw.count {
                // `baseAddress` is non-nil here: the buffer is not empty while written < count.
                let result = systemWrite(descriptor, raw.baseAddress! + written, raw.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                written += result
            }
            return nil
        }
        if let failure {
            close(descriptor)
            unlink(temporary)
            throw Self.error("cannot write \(temporary)", code: failure)
        }
        if fsyncEachWrite, systemFsync(descriptor) != 0 {
            let code = errno
            close(descriptor)
            unlink(temporary)
            throw Self.error("cannot sync \(temporary)", code: code)
        }
        close(descriptor)
        guard rename(temporary, path + "/" + name) == 0 else {
            let code = errno
            unlink(temporary)
            throw Self.error("cannot rename \(temporary)", code: code)
        }
        if fsyncEachWrite { try syncDirectory() }
    }

    /// The bytes of a stored batch.
    public func read(_ batch: StoredBatch) throws(SpoolError) -> [UInt8] {
        let file = path + "/" + fileName(sequence: batch.sequence, spans: batch.spans)
        let descriptor = systemOpen(file, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw Self.error("cannot open \(file)") }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw Self.error("cannot stat \(file)") }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var done = 0
        let failure: Int32? = bytes.withUnsafeMutableBytes { raw -> Int32? in
            while done < raw.count {
                // `baseAddress` is non-nil here: the buffer is not empty while done < count.
                let result = systemRead(descriptor, raw.baseAddress! + done, raw.count - done)
                if result < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                if result == 0 { return EIO }  // shorter than stat said: someone truncated it
                done += result
            }
            return nil
        }
        if let failure { throw Self.error("cannot read \(file)", code: failure) }
        return bytes
    }

    /// Deletes a stored batch (delivered, or given up on).
    public func remove(_ batch: StoredBatch) {
        unlink(path + "/" + fileName(sequence: batch.sequence, spans: batch.spans))
    }

    func fileName(sequence: UInt64, spans: Int) -> String {
        let digits = String(sequence)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + "-\(spans)" + suffix
    }

    private func syncDirectory() throws(SpoolError) {
        let descriptor = systemOpen(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw Self.error("cannot open \(path) to sync it") }
        defer { close(descriptor) }
        guard systemFsync(descriptor) == 0 else { throw Self.error("cannot sync \(path)") }
    }

    private static func makeDirectories(_ path: String) throws(SpoolError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o700) != 0, errno != EEXIST { throw error("cannot create the directory \(prefix)") }
        }
        guard access(path, W_OK) == 0 else { throw error("cannot write to \(path)") }
    }

    private static func error(_ what: String, code: Int32 = errno) -> SpoolError {
        SpoolError(locked: false, description: "\(what): \(String(cString: strerror(code)))")
    }
}

// The C calls under names the type's own methods (`read`, `write`) cannot shadow.
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 { open(path, flags, mode) }
private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(descriptor, buffer, count) }
private func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int { read(descriptor, buffer, count) }
private func systemFsync(_ descriptor: Int32) -> Int32 { fsync(descriptor) }
