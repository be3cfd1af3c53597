import AsyncAlgorithms
import Hummingbird
import NIOCore

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

    init(body: RequestBody) {
        let channel = self.channel
        task = Task {
            do {
                for try await chunk in body {
                    await channel.send(chunk)
                    if Task.isCancelled { break }
                }
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
