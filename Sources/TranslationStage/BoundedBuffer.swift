import DequeModule
import NIOConcurrencyHelpers

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

    private enum SendStep {
        case taken(CheckedContinuation<Element?, Never>?)
        case refused
        case wait
    }

    private enum NextStep {
        case element(Element, CheckedContinuation<Bool, Never>?)
        case end
        case wait
    }

    /// A buffer of at most `capacity` elements (at least one).
    public init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Hands `element` to the consumer, waiting while the buffer is full.
    /// - Returns: false when the consumer has ended (the element was not taken).
    public func send(_ element: Element) async -> Bool {
        let step: SendStep = state.withLockedValue { state in
            if state.ended { return .refused }
            if let consumer = state.consumer {
                state.consumer = nil
                return .taken(consumer)
            }
            if state.elements.count < capacity && state.senders.isEmpty {
                state.elements.append(element)
                return .taken(nil)
            }
            return .wait
        }
        switch step {
        case .refused: return false
        case .taken(let consumer):
            consumer?.resume(returning: element)
            return true
        case .wait:
            return await withCheckedContinuation { continuation in
                let refused = state.withLockedValue { state -> Bool in
                    if state.ended { return true }
                    state.senders.append((element, continuation))
                    return false
                }
                if refused { continuation.resume(returning: false) }
            }
        }
    }

    /// The next element, waiting while there is none; `nil` once finished and empty, or when the task is cancelled.
    public func next() async -> Element? {
        let step: NextStep = state.withLockedValue { state in
            if let first = state.elements.popFirst() {
                // Room now: the oldest waiting sender's element moves in.
                if let sender = state.senders.popFirst() {
                    state.elements.append(sender.element)
                    return .element(first, sender.continuation)
                }
                return .element(first, nil)
            }
            if let sender = state.senders.popFirst() { return .element(sender.element, sender.continuation) }
            if state.finished {
                state.ended = true
                return .end
            }
            return .wait
        }
        switch step {
        case .element(let element, let sender):
            sender?.resume(returning: true)
            return element
        case .end:
            return nil
        case .wait:
            return await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Element?, Never>) in
                    let resumeNil = state.withLockedValue { state -> Bool in
                        if state.finished || Task.isCancelled {
                            state.ended = true
                            return true
                        }
                        state.consumer = continuation
                        return false
                    }
                    if resumeNil { continuation.resume(returning: nil) }
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
