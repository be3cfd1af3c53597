import CSQLite
import Foundation
import NIOConcurrencyHelpers

/// Trace uploads the proxy acknowledged itself (OpenTelemetry-only and standalone modes, spool on), kept on
/// disk from before the client's answer until what they carried has been sealed into every destination's
/// spool. After a crash, the entries still here are replayed through intake, so spans that were only being
/// assembled (waiting for their trace's other parts) are not lost: at-least-once.
///
/// The journal is a SQLite database in WAL mode (`<directory>/journal.sqlite`, one row per upload: the route,
/// the few headers and path parameters decoding needs, and the body): an insert appends to the WAL, so the
/// journal costs microseconds per upload where a file per upload would cost a file creation. With `fsync` the
/// database runs `synchronous=FULL` (every commit synced), otherwise `NORMAL` (survives a crash of the proxy,
/// not power loss). The directory is locked (`flock` on `.lock`) while the journal is open.
///
/// An entry is settled once the assembler holds nothing of what it added (or it was ingested longer ago than
/// the assembler can hold anything) and every pipeline has sealed what it was given since;
/// ``unsettled(excluding:)``, ``settled(before:)`` and ``remove(_:)`` do that bookkeeping for the checkpoint.
public final class IntakeJournal: Sendable {
    /// One acknowledged upload.
    public struct Entry: Codable, Sendable, Equatable {
        /// Which upload: `otlp`, `start_trace_v3`, `traces_artifact`, `start_trace_v2`, `end_trace_v2`.
        public var route: String
        /// The request headers decoding reads (content type and encoding, experiment id, user agent).
        public var headers: [String: String]
        /// Path parameters and ids the proxy assigned (trace id, request id, experiment id).
        public var parameters: [String: String]
        /// The request body as received.
        public var body: Data

        /// Creates an entry.
        public init(route: String, headers: [String: String], parameters: [String: String], body: Data) {
            self.route = route
            self.headers = headers
            self.parameters = parameters
            self.body = body
        }
    }

    /// The route, headers and parameters of an entry, stored as one JSON text column.
    private struct Metadata: Codable {
        var route: String
        var headers: [String: String]
        var parameters: [String: String]
    }

    private struct State {
        /// Entries in the database and when their upload was ingested.
        var ingestedAt: [UInt64: ContinuousClock.Instant] = [:]
        /// What each entry added to the assembler (trace and request ids), when known.
        var keys: [UInt64: Set<String>] = [:]
    }

    private let database: JournalDatabase
    private let state = NIOLockedValueBox(State())
    /// Told when entries may have become settled: an entry was recorded, or the assembler released traces.
    public let changes: JournalChanges
    /// Creates the directory and holds its lock while the journal is open.
    private let directory: SpoolDirectory

    /// Opens (creating) and locks the journal in `path`.
    /// - Throws: ``SpoolDirectory/SpoolError`` when the directory cannot be created or locked, or the database
    ///   cannot be opened.
    /// - Parameter changes: the signal the checkpoint waits on (shared with the assembler's output, which tells it
    ///   when traces leave); a new one by default.
    public init(path: String, fsync: Bool, changes: JournalChanges = JournalChanges()) throws(SpoolDirectory.SpoolError) {
        self.changes = changes
        directory = try SpoolDirectory(path: path, fsync: false, suffix: ".none")
        database = try JournalDatabase(path: path + "/journal.sqlite", synchronousFull: fsync)
    }

    /// The entries a previous run left, oldest first, for replay; each is then tracked as ingested now.
    /// Unreadable ones are removed and returned as problems.
    public func recover() throws(SpoolDirectory.SpoolError) -> (entries: [(sequence: UInt64, entry: Entry)], problems: [String]) {
        let rows = try database.all()
        var entries: [(UInt64, Entry)] = []
        var problems: [String] = []
        var unreadable: [UInt64] = []
        let now = ContinuousClock.now
        for row in rows {
            guard let metadata = try? JSONDecoder().decode(Metadata.self, from: row.metadata) else {
                problems.append("journal entry \(row.sequence): its metadata is not valid JSON")
                unreadable.append(row.sequence)
                continue
            }
            entries.append((row.sequence, Entry(route: metadata.route, headers: metadata.headers, parameters: metadata.parameters, body: row.body)))
            state.withLockedValue { $0.ingestedAt[row.sequence] = now }
        }
        try database.delete(unreadable)
        return (entries, problems)
    }

    /// Stores an entry (committed, and synced when configured) and tracks it as ingested now.
    /// - Parameter keys: what the upload added to the assembler (`t:<trace id hex>`, `r:<request id>`): the
    ///   entry is settled as soon as the assembler holds none of them (see ``unsettled(excluding:)``).
    public func record(_ entry: Entry, keys: Set<String>) throws(SpoolDirectory.SpoolError) {
        let metadata: Data
        do {
            metadata = try JSONEncoder().encode(Metadata(route: entry.route, headers: entry.headers, parameters: entry.parameters))
        } catch {
            throw SpoolDirectory.SpoolError(locked: false, description: "cannot encode a journal entry: \(error)")
        }
        let sequence = try database.insert(metadata: metadata, body: entry.body)
        state.withLockedValue { state in
            state.ingestedAt[sequence] = .now
            state.keys[sequence] = keys
        }
        changes.notify()
    }

    /// When the oldest entry held was ingested, or `nil` when none is.
    public var oldestIngestion: ContinuousClock.Instant? { state.withLockedValue { $0.ingestedAt.values.min() } }

    /// Records what a replayed entry added to the assembler.
    public func track(_ sequence: UInt64, keys: Set<String>) {
        state.withLockedValue { state in
            if state.ingestedAt[sequence] != nil { state.keys[sequence] = keys }
        }
    }

    /// Entries not in `settled` whose keys are known, with their keys.
    public func unsettled(excluding settled: Set<UInt64>) -> [(sequence: UInt64, keys: Set<String>)] {
        state.withLockedValue { state in
            state.keys.filter { !settled.contains($0.key) && state.ingestedAt[$0.key] != nil }.map { ($0.key, $0.value) }
        }
    }

    /// Entries ingested at or before `cutoff`.
    public func settled(before cutoff: ContinuousClock.Instant) -> [UInt64] {
        state.withLockedValue { state in state.ingestedAt.filter { $0.value <= cutoff }.map(\.key).sorted() }
    }

    /// Entries held.
    public var count: Int { state.withLockedValue { $0.ingestedAt.count } }

    /// Deletes settled entries.
    public func remove(_ sequences: [UInt64]) throws(SpoolDirectory.SpoolError) {
        try database.delete(sequences)
        state.withLockedValue { state in
            for sequence in sequences {
                state.ingestedAt.removeValue(forKey: sequence)
                state.keys.removeValue(forKey: sequence)
            }
        }
    }

    /// Moves the write-ahead log into the database file and truncates it. Blocking disk I/O (a sync): call it
    /// off the request path, on a thread that may block.
    public func checkpointWAL() throws(SpoolDirectory.SpoolError) {
        try database.checkpointWAL()
    }

    /// Deletes every entry (once everything is sealed into the spools).
    public func removeAll() throws(SpoolDirectory.SpoolError) {
        try remove(state.withLockedValue { Array($0.ingestedAt.keys) })
    }
}

/// The journal's SQLite connections. A SQLite connection must not be used from two threads at once: every use
/// of `handle` goes through `lock` and every use of `checkpointHandle` through `checkpointLock`, which is why
/// this class can be `@unchecked Sendable`.
private final class JournalDatabase: @unchecked Sendable {
    struct Row {
        var sequence: UInt64
        var metadata: Data
        var body: Data
    }

    private let lock = NIOLock()
    private let handle: OpaquePointer
    /// A second connection for WAL checkpoints, so they never hold up inserts (SQLite lets a checkpointer
    /// and a writer work on a WAL database at once); used under `checkpointLock`.
    private let checkpointHandle: OpaquePointer
    private let checkpointLock = NIOLock()
    private let path: String

    init(path: String, synchronousFull: Bool) throws(SpoolDirectory.SpoolError) {
        self.path = path
        func open(_ flags: Int32) throws(SpoolDirectory.SpoolError) -> OpaquePointer {
            var opened: OpaquePointer?
            guard sqlite3_open_v2(path, &opened, flags | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK, let opened else {
                let message = opened.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
                sqlite3_close(opened)
                throw SpoolDirectory.SpoolError(locked: false, description: "cannot open \(path): \(message)")
            }
            return opened
        }
        handle = try open(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        do {
            checkpointHandle = try open(SQLITE_OPEN_READWRITE)
        } catch {
            sqlite3_close(handle)
            throw error
        }
        // On failure below, deinit closes both connections.
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=\(synchronousFull ? "FULL" : "NORMAL")")
        // No checkpoint inside an insert (it would sync the WAL on the upload's path): the journal's checkpoint
        // service runs them (``checkpointWAL()``).
        try execute("PRAGMA wal_autocheckpoint=0")
        // An insert waits (on its blocking-I/O thread) while a checkpoint restarts the WAL, instead of failing.
        sqlite3_busy_timeout(handle, 10_000)
        sqlite3_busy_timeout(checkpointHandle, 10_000)
        try execute("CREATE TABLE IF NOT EXISTS uploads (sequence INTEGER PRIMARY KEY AUTOINCREMENT, metadata BLOB NOT NULL, body BLOB NOT NULL)")
    }

    deinit {
        sqlite3_close(checkpointHandle)
        sqlite3_close(handle)
    }

    func insert(metadata: Data, body: Data) throws(SpoolDirectory.SpoolError) -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        do {
            let statement = try prepare("INSERT INTO uploads (metadata, body) VALUES (?, ?)")
            defer { sqlite3_finalize(statement) }
            bind(metadata, to: statement, at: 1)
            bind(body, to: statement, at: 2)
            try step(statement, expecting: SQLITE_DONE)
            return UInt64(sqlite3_last_insert_rowid(handle))
        }
    }

    func all() throws(SpoolDirectory.SpoolError) -> [Row] {
        lock.lock()
        defer { lock.unlock() }
        do {
            let statement = try prepare("SELECT sequence, metadata, body FROM uploads ORDER BY sequence")
            defer { sqlite3_finalize(statement) }
            var rows: [Row] = []
            while true {
                let status = sqlite3_step(statement)
                if status == SQLITE_DONE { return rows }
                guard status == SQLITE_ROW else { throw failure("cannot read") }
                rows.append(Row(sequence: UInt64(sqlite3_column_int64(statement, 0)), metadata: column(statement, 1), body: column(statement, 2)))
            }
        }
    }

    func delete(_ sequences: [UInt64]) throws(SpoolDirectory.SpoolError) {
        guard !sequences.isEmpty else { return }
        lock.lock()
        defer { lock.unlock() }
        do {
            try execute("BEGIN")
            do {
                let statement = try prepare("DELETE FROM uploads WHERE sequence = ?")
                defer { sqlite3_finalize(statement) }
                for sequence in sequences {
                    sqlite3_reset(statement)
                    sqlite3_bind_int64(statement, 1, Int64(sequence))
                    try step(statement, expecting: SQLITE_DONE)
                }
                try execute("COMMIT")
            } catch {
                try? execute("ROLLBACK")
                throw error
            }
        }
    }

    /// Copies what the WAL holds into the database, syncing as configured, and makes the next insert start the
    /// WAL over (a restart checkpoint: inserts wait for it, briefly), so the WAL holds about one checkpoint
    /// interval of uploads.
    func checkpointWAL() throws(SpoolDirectory.SpoolError) {
        checkpointLock.lock()
        defer { checkpointLock.unlock() }
        // The PRAGMA, not sqlite3_wal_checkpoint_v2: a connection that has not read the database yet does not
        // know it is in WAL mode, and the C call is then a silent no-op.
        let status = sqlite3_exec(checkpointHandle, "PRAGMA wal_checkpoint(RESTART)", nil, nil, nil)
        guard status == SQLITE_OK || status == SQLITE_BUSY else {
            throw SpoolDirectory.SpoolError(
                locked: false, description: "cannot checkpoint the intake journal \(path): \(String(cString: sqlite3_errmsg(checkpointHandle)))")
        }
    }

    private func execute(_ sql: String) throws(SpoolDirectory.SpoolError) {
        guard sqlite3_exec(handle, sql, nil, nil, nil) == SQLITE_OK else { throw failure("cannot run \(sql.prefix(40))") }
    }

    private func prepare(_ sql: String) throws(SpoolDirectory.SpoolError) -> OpaquePointer {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK, let statement else { throw failure("cannot prepare") }
        return statement
    }

    private func step(_ statement: OpaquePointer, expecting expected: Int32) throws(SpoolDirectory.SpoolError) {
        guard sqlite3_step(statement) == expected else { throw failure("cannot write") }
    }

    private func bind(_ data: Data, to statement: OpaquePointer, at index: Int32) {
        // SQLITE_TRANSIENT: SQLite copies the bytes before the call returns, so the buffer may go afterwards.
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        data.withUnsafeBytes { raw in
            _ = sqlite3_bind_blob(statement, index, raw.baseAddress, Int32(raw.count), transient)
        }
    }

    private func column(_ statement: OpaquePointer, _ index: Int32) -> Data {
        let count = Int(sqlite3_column_bytes(statement, index))
        guard count > 0, let bytes = sqlite3_column_blob(statement, index) else { return Data() }
        return Data(bytes: bytes, count: count)
    }

    private func failure(_ what: String) -> SpoolDirectory.SpoolError {
        SpoolDirectory.SpoolError(locked: false, description: "\(what) the intake journal \(path): \(String(cString: sqlite3_errmsg(handle)))")
    }
}

/// A wake-up signal for the journal's checkpoint: any number of notifications between two waits are one wake-up.
public final class JournalChanges: Sendable {
    /// The wake-ups, for one consumer.
    public let wakes: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    /// Creates a signal with no wake-up pending.
    public init() {
        (wakes, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Says that entries may have become settled.
    public func notify() { continuation.yield() }
}
