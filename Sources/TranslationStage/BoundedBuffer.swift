import DequeModule
import NIOConcurrencyHelpers
import Synchronization

/// A first-in first-out buffer between two tasks that holds at most `capacity` elements: ``send(_:)`` suspends while
/// it is full, ``next()`` while it is empty. One consumer. Once ``finish()`` is called the consumer gets what is
/// buffered, then `nil`; a send after the consumer has seen the end is refused (the caller handles the element).
public final class BoundedBuffer<Element: Sendable>: Sendable {
    private struct State {
        var elements: Deque<Element> = []
        /// Senders waiting for room, with what they send.
        var senders: Deque<(element: Element, continuation: CheckedContinuation<Bool, Never>)> = []
        var consumer: CheckedContinuation<Element?, Never>?
        var finished = false
        var ended = false
    }
    private let state = NIOLockedValueBox(State())  // NIO's lock: TSan sees it
    private let capacity: Int

    /// A buffer of at most `capacity` elements (at least one).
    public init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Hands `element` to the consumer, waiting while the buffer is full.
    /// - Returns: false when the consumer has ended (the element was not taken).
    public func send(_ element: Element) async -> Bool {
        // Decided and registered under one lock: no consumer can take room or wait between the look and the wait.
        await withCheckedContinuation { (sender: CheckedContinuation<Bool, Never>) in
            let resume: (() -> Void)? = state.withLockedValue { state in
                if state.ended { return { sender.resume(returning: false) } }
                if let consumer = state.consumer {
                    state.consumer = nil
                    return {
                        consumer.resume(returning: element)
                        sender.resume(returning: true)
                    }
                }
                if state.elements.count < capacity && state.senders.isEmpty {
                    state.elements.append(element)
                    return { sender.resume(returning: true) }
                }
                state.senders.append((element, sender))
                return nil
            }
            resume?()
        }
    }

    /// Hands an element to the consumer if there is room now, without waiting: `make` builds it (under the buffer's
    /// lock, so whatever it counts is counted only for an element taken). Waking the consumer is left to the caller:
    /// when the consumer was waiting, the element is handed to it at once (nothing offered later overtakes it) and
    /// `wake` resumes it, so a caller with an answer to write first (an event loop) writes it before it pays for
    /// waking another thread. A `wake` dropped uncalled resumes the consumer as it goes, so a consumer is never left
    /// waiting for an element it was given.
    /// - Returns: whether it was taken (`false`: the buffer is full, or the consumer has ended), and the consumer's
    ///   wake (`nil`: no consumer was waiting).
    public func offer(_ make: () -> Element) -> (taken: Bool, wake: (@Sendable () -> Void)?) {
        var handed: HandedElement?
        let taken = state.withLockedValue { state -> Bool in
            if state.ended { return false }
            if let consumer = state.consumer {
                state.consumer = nil
                handed = HandedElement(consumer: consumer, element: make())
                return true
            }
            guard state.elements.count < capacity && state.senders.isEmpty else { return false }
            state.elements.append(make())
            return true
        }
        guard let handed else { return (taken, nil) }
        return (taken, { handed.resume() })
    }

    /// An element handed to the waiting consumer, which is resumed with it once: when ``resume()`` is called, or
    /// when the last reference goes (a wake dropped uncalled).
    private final class HandedElement: Sendable {
        private let consumer: CheckedContinuation<Element?, Never>
        private let element: Element
        private let resumed = Atomic<Bool>(false)

        init(consumer: CheckedContinuation<Element?, Never>, element: Element) {
            self.consumer = consumer
            self.element = element
        }

        func resume() {
            guard !resumed.exchange(true, ordering: .acquiringAndReleasing) else { return }
            consumer.resume(returning: element)
        }

        deinit { resume() }
    }

    /// The next element, waiting while there is none; `nil` once finished and empty, or when the task is cancelled.
    public func next() async -> Element? {
        await withTaskCancellationHandler {
            // As in `send`: decided and registered under one lock, so an element sent meanwhile is never left behind.
            await withCheckedContinuation { (consumer: CheckedContinuation<Element?, Never>) in
                let resume: (() -> Void)? = state.withLockedValue { state in
                    if let first = state.elements.popFirst() {
                        // Room now: the oldest waiting sender's element moves in.
                        guard let sender = state.senders.popFirst() else { return { consumer.resume(returning: first) } }
                        state.elements.append(sender.element)
                        return {
                            sender.continuation.resume(returning: true)
                            consumer.resume(returning: first)
                        }
                    }
                    if let sender = state.senders.popFirst() {
                        return {
                            sender.continuation.resume(returning: true)
                            consumer.resume(returning: sender.element)
                        }
                    }
                    if state.finished || state.ended || Task.isCancelled {
                        state.ended = true
                        return { consumer.resume(returning: nil) }
                    }
                    state.consumer = consumer
                    return nil
                }
                resume?()
            }
        } onCancel: {
            let (consumer, senders) = state.withLockedValue { state in
                state.ended = true
                defer {
                    state.consumer = nil
                    state.senders = []
                }
                return (state.consumer, state.senders.map(\.continuation))
            }
            consumer?.resume(returning: nil)
            for sender in senders { sender.resume(returning: false) }
        }
    }

    /// Ends the stream: the consumer gets what is buffered, then `nil`.
    public func finish() {
        let consumer = state.withLockedValue { state -> CheckedContinuation<Element?, Never>? in
            state.finished = true
            guard let consumer = state.consumer else { return nil }
            state.consumer = nil
            state.ended = true
            return consumer
        }
        consumer?.resume(returning: nil)
    }
}
