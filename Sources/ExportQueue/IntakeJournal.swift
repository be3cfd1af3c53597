import Foundation
import NIOConcurrencyHelpers

/// Trace uploads the proxy acknowledged itself (OpenTelemetry-only and standalone modes, spool on), kept on
/// disk from before the client's answer until what they carried has been sealed into every destination's
/// spool. After a crash, the entries still here are replayed through intake, so spans that were only being
/// assembled (waiting for their trace's other parts) are not lost: at-least-once.
///
/// One file per upload in a ``SpoolDirectory`` (`<sequence>-0.json`): the route, the few headers and path
/// parameters decoding needs, and the body. An entry is settled once the assembler holds nothing of what it
/// added (or it was ingested longer ago than the assembler can hold anything) and every pipeline has sealed
/// what it was given since; ``unsettled(excluding:)``, ``settled(before:)`` and ``remove(_:)`` do that
/// bookkeeping for the checkpoint.
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

    private struct State {
        var nextSequence: UInt64 = 1
        /// Entries on disk and when their upload was ingested.
        var ingestedAt: [UInt64: ContinuousClock.Instant] = [:]
        /// What each entry added to the assembler (trace and request ids), when known.
        var keys: [UInt64: Set<String>] = [:]
    }

    private let directory: SpoolDirectory
    private let state: NIOLockedValueBox<State>

    /// Opens (creating and locking) the journal directory.
    public init(path: String, fsync: Bool) throws(SpoolDirectory.SpoolError) {
        directory = try SpoolDirectory(path: path, fsync: fsync, suffix: ".json")
        let next = (try directory.storedBatches().last?.sequence ?? 0) + 1
        state = NIOLockedValueBox(State(nextSequence: next))
    }

    /// The entries a previous run left, oldest first, for replay; each is then tracked as ingested now.
    /// Unreadable ones are removed and returned as problems.
    public func recover() throws(SpoolDirectory.SpoolError) -> (entries: [(sequence: UInt64, entry: Entry)], problems: [String]) {
        var entries: [(UInt64, Entry)] = []
        var problems: [String] = []
        let now = ContinuousClock.now
        for stored in try directory.storedBatches() {
            do {
                entries.append((stored.sequence, try JSONDecoder().decode(Entry.self, from: Data(try directory.read(stored)))))
                state.withLockedValue { $0.ingestedAt[stored.sequence] = now }
            } catch {
                problems.append("journal entry \(stored.sequence): \(error)")
                directory.remove(stored)
            }
        }
        return (entries, problems)
    }

    /// Writes an entry (synced when configured) and tracks it as ingested now.
    /// - Parameter keys: what the upload added to the assembler (`t:<trace id hex>`, `r:<request id>`): the
    ///   entry is settled as soon as the assembler holds none of them (see ``unsettled(excluding:)``).
    public func record(_ entry: Entry, keys: Set<String>) throws(SpoolDirectory.SpoolError) {
        let bytes: [UInt8]
        do {
            bytes = Array(try JSONEncoder().encode(entry))
        } catch {
            throw SpoolDirectory.SpoolError(locked: false, description: "cannot encode a journal entry: \(error)")
        }
        let sequence = state.withLockedValue { state in
            defer { state.nextSequence += 1 }
            return state.nextSequence
        }
        try directory.write(sequence: sequence, spans: 0, bytes: bytes)
        state.withLockedValue { state in
            state.ingestedAt[sequence] = .now
            state.keys[sequence] = keys
        }
    }

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

    /// Entries on disk.
    public var count: Int { state.withLockedValue { $0.ingestedAt.count } }

    /// Deletes settled entries.
    public func remove(_ sequences: [UInt64]) {
        for sequence in sequences {
            state.withLockedValue { state in
                state.ingestedAt.removeValue(forKey: sequence)
                state.keys.removeValue(forKey: sequence)
            }
            directory.remove(SpoolDirectory.StoredBatch(sequence: sequence, spans: 0, bytes: 0))
        }
    }

    /// Deletes every entry (after a clean shutdown sealed everything into the spools).
    public func removeAll() {
        remove(state.withLockedValue { Array($0.ingestedAt.keys) })
    }
}
