import AsyncAlgorithms
import HTTPListener
import Hummingbird
import NIOCore
import Synchronization

/// Copies a request body into a back-pressured channel from a task the proxy owns.
///
/// Handing Hummingbird's `request.body` straight to AsyncHTTPClient crashes the process when the upstream
/// answers before reading the whole body (for example a 401 or 413): the client keeps iterating the body
/// while Hummingbird starts draining the same stream for the next request (docs/swift.md §1). With the
/// pump, only the pump's task iterates the request body, and ``stop()`` cancels and awaits it before the
/// response finishes. Cancelling closes that client connection, which is right when a body was not read.
final class RequestBodyPump: Sendable {
    /// What the upstream client reads.
    let channel = AsyncThrowingChannel<ByteBuffer, any Error>()
    private let task: Task<Void, Never>
    private let readWholeBody = Flag()
    /// Who came first: the upstream's answer (``markAnswered()``) or the body passing the limit. Once the upstream
    /// has answered, passing the limit stops the copy quietly instead of failing the request, so the answer
    /// already on its way to the client is not cut off.
    private let outcome = State()
    private static let running = 0
    private static let answered = 1
    private static let failed = 2

    /// The race's state, shared by the pump's task and the forwarder.
    final class State: Sendable {
        let value = Atomic<Int>(0)
    }

    /// A flag the pump's task sets and the forwarder reads.
    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    /// Whether the body went over the pump's limit before the upstream answered (and failed the request).
    var exceededLimit: Bool { outcome.value.load(ordering: .acquiring) == Self.failed }

    /// Whether the pump has read the request body to its end (and handed all of it to the channel).
    var hasReadWholeBody: Bool { readWholeBody.value.load(ordering: .acquiring) }

    /// The error the upstream client sees when the body goes over the limit.
    struct BodyTooLarge: Error {}

    /// - Parameter limit: the most bytes copied; past it the copy fails with ``BodyTooLarge``.
    init(body: RequestBody, limit: Int? = nil) {
        let channel = self.channel
        let readWholeBody = self.readWholeBody
        let outcome = self.outcome
        task = Task {
            do {
                var total = 0
                for try await chunk in body {
                    total += chunk.readableBytes
                    if let limit, total > limit {
                        // Fails the upstream request only if the upstream has not answered yet.
                        if outcome.value.compareExchange(
                            expected: RequestBodyPump.running, desired: RequestBodyPump.failed, ordering: .acquiringAndReleasing
                        ).exchanged {
                            throw BodyTooLarge()
                        }
                        return  // answered already: stop copying; `stop()` ends the channel after the answer
                    }
                    await channel.send(chunk)
                    if Task.isCancelled {
                        channel.finish()
                        return
                    }
                }
                readWholeBody.value.store(true, ordering: .releasing)
                channel.finish()
            } catch {
                channel.fail(error)
            }
        }
    }

    /// Records that the upstream's answer head has arrived.
    /// - Returns: `false` when the body had already passed the limit and failed the upstream request (its answer
    ///   can then not be read whole).
    func markAnswered() -> Bool {
        let (exchanged, original) = outcome.value.compareExchange(
            expected: RequestBodyPump.running, desired: RequestBodyPump.answered, ordering: .acquiringAndReleasing)
        return exchanged || original != RequestBodyPump.failed
    }

    /// Stops copying (if still running) and waits until the pump's task has ended.
    func stop() async {
        task.cancel()
        channel.finish()
        await task.value
    }
}
