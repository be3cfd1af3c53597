import ExportQueue
import Logging
import OTLPExport
import ProxyObservability
import ServiceLifecycle

/// Keeps the ``IntakeJournal`` honest: replays what a previous run left (a crash), then, every second, deletes
/// the entries whose traces can no longer be held by the assembler once every destination's pipeline has
/// sealed what it was given into its spool. On a clean shutdown, which reaches this service after the
/// assembler released everything and the pipelines sealed it, the journal is emptied.
struct IntakeCheckpoint: Service {
    let journal: IntakeJournal
    let intake: TraceIntake
    let fanOut: ExportFanOut
    /// How long an upload's traces can stay in the assembler: twice its longest wait (a trace info can
    /// restart its wait once), plus the expiry tick and a margin.
    let hold: Duration
    let counters: ProxyCounters
    let logger: Logger

    func run() async throws {
        await replay()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(1))
                    await checkpoint()
                }
            }
            do {
                try await gracefulShutdown()
            } catch {
                group.cancelAll()  // cancelled (shutdown deadline): the journal stays for the next start
                return
            }
            group.cancelAll()
            try? await group.waitForAll()
            // Only after the assembler drained and the pipelines sealed everything (they stopped before this).
            if !Task.isCancelled { journal.removeAll() }
        }
    }

    private func replay() async {
        let recovered: (entries: [IntakeJournal.Entry], problems: [String])
        do {
            recovered = try journal.recover()
        } catch {
            logger.error(
                "the intake journal cannot be read; uploads acknowledged before the last stop may be missing", metadata: ["error": "\(error)"])
            counters.increment("spool_errors", "intake")
            return
        }
        for problem in recovered.problems {
            logger.error("an intake journal entry was unreadable and removed", metadata: ["error": "\(problem)"])
            counters.increment("spool_errors", "intake")
        }
        guard !recovered.entries.isEmpty else { return }
        var replayed = 0
        for entry in recovered.entries where await intake.replay(entry) { replayed += 1 }
        logger.info(
            "uploads acknowledged before the last stop replayed from the intake journal",
            metadata: ["uploads": "\(replayed)", "unreplayable": "\(recovered.entries.count - replayed)"])
    }

    private func checkpoint() async {
        let settled = journal.settled(before: .now - hold)
        guard !settled.isEmpty else { return }
        for pipeline in fanOut.pipelines { await pipeline.sealSubmitted() }
        journal.remove(settled)
    }
}
