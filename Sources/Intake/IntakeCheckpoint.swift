import ExportQueue
import HTTPListener
import Logging
import NIOPosix
import ProxyObservability
import ServiceLifecycle
import TraceAssembly

/// Keeps the ``IntakeJournal`` honest: replays what a previous run left (a crash), then, whenever the journal's
/// ``JournalChanges`` says entries may have settled (an entry was recorded, the assembler released traces, or the
/// oldest entry reached the longest time the assembler can hold it), deletes the entries whose traces the
/// assembler no longer holds once every destination's pipeline has sealed what it was given into its spool; at
/// most four times a second, wake-ups in between taken together. At shutdown, once the assembler released
/// everything and every pipeline sealed its last batch into its spool, the journal is emptied.
public struct IntakeCheckpoint: Service {
    let journal: IntakeJournal
    let intake: TraceIntake
    let delivery: any SpooledDelivery
    let assembler: TraceAssembler
    /// How long an upload's traces can stay in the assembler: twice its longest wait (a trace info can
    /// restart its wait once), plus the expiry tick and a margin.
    let hold: Duration
    let counters: ProxyCounters
    let logger: Logger

    /// Creates the checkpoint of `journal`; `intake` replays what a previous run left.
    public init(
        journal: IntakeJournal, intake: TraceIntake, delivery: any SpooledDelivery, assembler: TraceAssembler, hold: Duration,
        counters: ProxyCounters, logger: Logger
    ) {
        self.journal = journal
        self.intake = intake
        self.delivery = delivery
        self.assembler = assembler
        self.hold = hold
        self.counters = counters
        self.logger = logger
    }

    /// Replays what a previous run left, keeps the journal settled until shutdown, then empties it if it can.
    public func run() async throws {
        await replay()
        journal.changes.notify()  // a first look: replayed entries may be settled already
        await cancelWhenGracefulShutdown {
            var wakes = journal.changes.wakes.makeAsyncIterator()
            var holdTimer: Task<Void, Never>?
            while await wakes.next() != nil {
                holdTimer?.cancel()
                await checkpoint()
                if let oldest = journal.oldestIngestion {
                    // Entries remain: the oldest is settled by the bound at the latest when the assembler can no
                    // longer hold its traces (a v2 record whose spans never came leaves no release event).
                    let changes = journal.changes
                    let due = oldest + hold + .milliseconds(10)
                    holdTimer = Task {
                        try? await Task.sleep(until: due, clock: .continuous)
                        if !Task.isCancelled { changes.notify() }
                    }
                }
                // A pause before the next checkpoint, so that a busy proxy deletes entries in batches (wake-ups
                // meanwhile are kept as one), not one transaction per upload.
                try? await Task.sleep(for: .milliseconds(250))
            }
            holdTimer?.cancel()
        }
        // This service stops after the fan-out (or is cancelled at the shutdown deadline). Once every pipeline
        // sealed its last batch into its spool (after the assembler released everything), the journal is not
        // needed: empty it so the next start replays nothing twice. Otherwise it stays for replay.
        if delivery.hasSpooledEverything {
            do {
                try journal.removeAll()
            } catch {
                logger.error("could not empty the intake journal; its uploads are replayed at the next start", metadata: ["error": "\(error)"])
            }
        } else if journal.count > 0 {
            logger.info("the intake journal keeps uploads for replay at the next start", metadata: ["uploads": "\(journal.count)"])
        }
    }

    private func replay() async {
        let recovered: (entries: [(sequence: UInt64, entry: IntakeJournal.Entry)], problems: [String])
        do {
            recovered = try journal.recover()
        } catch {
            logger.error(
                "the intake journal cannot be read; uploads acknowledged before the last stop may be missing", metadata: ["error": "\(error)"])
            counters.increment(.spoolErrors, "intake")
            return
        }
        for problem in recovered.problems {
            logger.error("an intake journal entry was unreadable and removed", metadata: ["error": "\(problem)"])
            counters.increment(.spoolErrors, "intake")
        }
        guard !recovered.entries.isEmpty else { return }
        var replayed = 0
        for (sequence, entry) in recovered.entries {
            guard let keys = await intake.replay(entry) else { continue }
            journal.track(sequence, keys: Set(keys.map(\.journalText)))
            replayed += 1
        }
        logger.info(
            "uploads acknowledged before the last stop replayed from the intake journal",
            metadata: ["uploads": "\(replayed)", "unreplayable": "\(recovered.entries.count - replayed)"])
    }

    private func checkpoint() async {
        // Settled: what the assembler no longer holds anything of, and (the bound) what is older than it can hold.
        var settled = Set(journal.settled(before: .now - hold))
        let open = journal.unsettled(excluding: settled)
        if !open.isEmpty {
            // The journal keeps keys as text; one that names no key (a newer proxy's) holds nothing here.
            let keys = open.reduce(into: Set<AssemblyKey>()) { keys, entry in keys.formUnion(entry.keys.compactMap(AssemblyKey.init(journalText:))) }
            let held = Set(assembler.holding(keys).map(\.journalText))
            for entry in open where entry.keys.isDisjoint(with: held) { settled.insert(entry.sequence) }
        }
        guard !settled.isEmpty else { return }
        await delivery.sealSubmitted()
        do {
            let journal = self.journal
            let sequences = settled.sorted()
            // Deleting and the WAL checkpoint are blocking disk I/O: on NIO's blocking-I/O pool, not the
            // concurrency pool that serves requests.
            try await NIOThreadPool.singleton.runIfActive {
                try journal.remove(sequences)
                try journal.checkpointWAL()
            }
        } catch {
            counters.increment(.spoolErrors, "intake")
            logger.error("could not delete settled intake journal entries", metadata: ["error": "\(error)"])
        }
    }
}

/// What the checkpoint needs from delivery (the stage after translation): the event that what it was given is
/// sealed into the spools, and whether everything is.
public protocol SpooledDelivery: Sendable {
    /// Returns once every destination sealed into its spool what it was given before the call.
    func sealSubmitted() async
    /// Whether every destination sealed everything it was given into its spool and stopped taking more (at shutdown);
    /// false when there is no destination.
    var hasSpooledEverything: Bool { get }
}
