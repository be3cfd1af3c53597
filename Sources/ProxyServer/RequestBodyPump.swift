import AsyncAlgorithms
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
    private let exceeded = Flag()
    private let readWholeBody = Flag()

    /// A flag the pump's task sets and the forwarder reads.
    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    /// Whether the body went over the pump's limit (and was cut off).
    var exceededLimit: Bool { exceeded.value.load(ordering: .relaxed) }

    /// Whether the pump has read the request body to its end (and handed all of it to the channel).
    var hasReadWholeBody: Bool { readWholeBody.value.load(ordering: .acquiring) }

    /// The error the upstream client sees when the body goes over the limit.
    struct BodyTooLarge: Error {}

    /// - Parameter limit: the most bytes copied; past it the copy fails with ``BodyTooLarge``.
    init(body: RequestBody, limit: Int? = nil) {
        let channel = self.channel
        let exceeded = self.exceeded
        let readWholeBody = self.readWholeBody
        task = Task {
            do {
                var total = 0
                for try await chunk in body {
                    total += chunk.readableBytes
                    if let limit, total > limit {
                        exceeded.value.store(true, ordering: .relaxed)
                        throw BodyTooLarge()
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

    /// Stops copying (if still running) and waits until the pump's task has ended.
    func stop() async {
        task.cancel()
        channel.finish()
        await task.value
    }
}
