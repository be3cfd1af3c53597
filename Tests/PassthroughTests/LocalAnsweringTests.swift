import Foundation
import HTTPListener
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Passthrough
import ProxyObservability
import Testing

/// The listener's own answers (``PassthroughDecision/answer(_:route:_:)``) in-process, without an upstream (as in
/// standalone mode): a client → the guarded listener with ``ListenerPassthrough`` in its pipeline → the answer made
/// from the body read whole, in order with the application's answers, under the body memory budget. The real trace
/// routes through this path are in the e2e suite (MLflow's clients against the proxy without an upstream).
@Suite(.timeLimit(.minutes(1))) struct LocalAnsweringTests {
    /// `/answer…` is answered here: 200 with `{"bytes": N, "body": "…"}` after a short wait (the answer is made off
    /// the event loop); `/answer/busy` is answered 503 before its body is read. Everything else goes to the
    /// application, which answers 299.
    static func listener(budget: BodyMemoryBudget, maxBodyBytes: Int = 1024, counters: ProxyCounters, answered: NIOLockedValueBox<Int>)
        -> some ApplicationProtocol
    {
        let passthrough = ListenerPassthrough(forwarder: nil, pool: nil, counters: counters) { head in
            let path = head.uri
            guard path.hasPrefix("/answer") else { return .application }
            let answering = LocalAnswering(
                budget: budget, maxBodyBytes: maxBodyBytes,
                beforeBody: { _ in
                    path == "/answer/busy"
                        ? ErrorResponses.mlflowAnswer(status: .serviceUnavailable, code: "TEMPORARILY_UNAVAILABLE", message: "busy") : nil
                },
                refused: { refusal, _ in
                    ErrorResponses.mlflowAnswer(
                        status: refusal == .tooLarge ? .contentTooLarge : .serviceUnavailable, code: "RESOURCE_EXHAUSTED", message: "\(refusal)")
                },
                answerNow: { body, _ in
                    // `/answer/now…` is answered on the event loop; `/answer/now-after` writes its answer only after
                    // something it waits for.
                    guard path.hasPrefix("/answer/now") else { return nil }
                    answered.withLockedValue { $0 += 1 }
                    let answer = ListenerAnswer(status: .accepted, body: ByteBuffer(string: "now:\(String(buffer: body))"))
                    if path == "/answer/now-then" {
                        // Runs once the answer is written: +1000, and whether the answer was counted by then.
                        return LocalAnswering.Immediate(answer: answer, before: nil) {
                            let counted = counters.value(.requests, labels: ["answer", "2xx"])
                            answered.withLockedValue { $0 += 1000 + 10_000 * counted }
                        }
                    }
                    guard path == "/answer/now-after" else { return LocalAnswering.Immediate(answer: answer, before: nil) }
                    return LocalAnswering.Immediate(answer: answer) {
                        try? await Task.sleep(for: .milliseconds(200))
                        answered.withLockedValue { $0 += 100 }
                    }
                },
                answer: { body, _ in
                    try? await Task.sleep(for: .milliseconds(path == "/answer/slow" ? 300 : 20))
                    answered.withLockedValue { $0 += 1 }
                    let text = JSONSerialization.isValidJSONObject(["body": String(buffer: body)]) ? String(buffer: body) : ""
                    let json = try? JSONSerialization.data(withJSONObject: ["bytes": body.readableBytes, "body": text])
                    return ListenerAnswer(status: .ok, headers: [.contentType: "application/json"], body: ByteBuffer(bytes: Array(json ?? Data())))
                })
            return .answer(head, route: "answer", answering)
        }
        return Application(
            responder: PassthroughHandlerTests.ApplicationMarker(),
            server: .guarded(
                limits: ConnectionLimits(), tls: nil, connections: ConnectionGauge(listener: "test"), counters: counters,
                requestHandlers: { channel, logger, answers in try passthrough.addHandler(to: channel, logger: logger, answers: answers) }),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    /// Writes `raw` (requests back to back on one connection) to a listener made by ``listener(budget:maxBodyBytes:counters:answered:)``
    /// and returns what came back, and the status codes in order.
    static func exchange(_ raw: String, budget: BodyMemoryBudget, counters: ProxyCounters, answered: NIOLockedValueBox<Int>) async throws
        -> (text: String, statuses: [Substring])
    {
        let text = try await listener(budget: budget, counters: counters, answered: answered).test(.live) { client in
            try await RawClient.exchange(port: try #require(client.port), bytes: raw)
        }
        return (text, text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) })
    }

    @Test func answersAreWrittenInOrderWithTheApplicationsAndCounted() async throws {
        let budget = BodyMemoryBudget(capacity: 4096)
        let counters = ProxyCounters()
        let answered = NIOLockedValueBox(0)
        try await Self.listener(budget: budget, counters: counters, answered: answered).test(.live) { client in
            // The first answer takes longer than the application's; the client still gets them in its order.
            let raw =
                "POST /answer/slow HTTP/1.1\r\nHost: proxy\r\nContent-Length: 5\r\n\r\nhello"
                + "GET /local HTTP/1.1\r\nHost: proxy\r\n\r\n"
                + "POST /answer HTTP/1.1\r\nHost: proxy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                + "GET /local HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n"
            let answer = try await RawClient.exchange(port: try #require(client.port), bytes: raw)
            let order = answer.components(separatedBy: "HTTP/1.1 ").dropFirst().map { $0.prefix(3) }
            #expect(order == ["200", "299", "200", "299"])
            let hello = try #require(answer.range(of: "\"body\":\"hello\"")), abcde = try #require(answer.range(of: "\"body\":\"abcde\""))
            #expect(hello.lowerBound < abcde.lowerBound)
            #expect(answer.lowercased().contains("content-length: "))

            let response = try await client.execute(uri: "/answer", method: .post, body: ByteBuffer(string: "{}"))
            #expect(response.status == .ok && response.headers[.contentType] == "application/json")
        }
        #expect(answered.withLockedValue { $0 } == 3)
        #expect(counters.value(.requests, labels: ["answer", "2xx"]) == 3)
        #expect(budget.bytesHeld == 0)
    }

    @Test func anAnswerMadeAtOnceIsWrittenAfterWhatItWaitsFor() async throws {
        let budget = BodyMemoryBudget(capacity: 4096)
        let counters = ProxyCounters()
        let answered = NIOLockedValueBox(0)
        let raw =
            "POST /answer/now-after HTTP/1.1\r\nHost: proxy\r\nContent-Length: 3\r\n\r\none"
            + "POST /answer/now HTTP/1.1\r\nHost: proxy\r\nContent-Length: 3\r\n\r\ntwo"
            + "GET /local HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n"
        let answer = try await Self.exchange(raw, budget: budget, counters: counters, answered: answered)
        #expect(answer.statuses == ["202", "202", "299"])
        let one = try #require(answer.text.range(of: "now:one")), two = try #require(answer.text.range(of: "now:two"))
        #expect(one.lowerBound < two.lowerBound)
        // Both made at once; the first one's answer was written only after what it waits for (+100) had finished,
        // so it had by the time the last answer arrived.
        #expect(answered.withLockedValue { $0 } == 102)
        #expect(counters.value(.requests, labels: ["answer", "2xx"]) == 2)
        #expect(budget.bytesHeld == 0)
    }

    @Test func whatFollowsAnAnswerMadeAtOnceRunsOnceAfterItIsWrittenAndBeforeTheNextRequest() async throws {
        let budget = BodyMemoryBudget(capacity: 4096)
        let answered = NIOLockedValueBox(0)
        let raw =
            "POST /answer/now-then HTTP/1.1\r\nHost: proxy\r\nContent-Length: 3\r\n\r\none"
            + "GET /local HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n"
        let answer = try await Self.exchange(raw, budget: budget, counters: ProxyCounters(), answered: answered)
        #expect(answer.statuses == ["202", "299"])
        // Made once (1), followed once (1000) after its answer had been counted and written (10,000), and before the
        // next request on the connection was answered (whose answer came after it).
        #expect(answered.withLockedValue { $0 } == 11_001)
        #expect(budget.bytesHeld == 0)
    }

    @Test func bodiesOverTheLimitOrTheBudgetAreRefusedWithConnectionClose() async throws {
        let budget = BodyMemoryBudget(capacity: 100)
        let counters = ProxyCounters()
        let answered = NIOLockedValueBox(0)
        try await Self.listener(budget: budget, maxBodyBytes: 50, counters: counters, answered: answered).test(.live) { client in
            let port = try #require(client.port)
            // A declared length over the limit: the body is read and dropped, then 413 and the connection closes (the
            // request after it is not answered).
            let declared = try await RawClient.exchange(
                port: port,
                bytes: "POST /answer HTTP/1.1\r\nHost: proxy\r\nContent-Length: 60\r\n\r\n" + String(repeating: "x", count: 60)
                    + "GET /local HTTP/1.1\r\nHost: proxy\r\n\r\n")
            #expect(declared.hasPrefix("HTTP/1.1 413"))
            #expect(declared.lowercased().contains("connection: close"))
            #expect(!declared.contains("HTTP/1.1 299"))
            // A chunked body that passes the limit as it arrives is answered at once.
            let chunk = "14\r\n" + String(repeating: "y", count: 20) + "\r\n"
            let chunked = try await RawClient.exchange(
                port: port,
                bytes: "POST /answer HTTP/1.1\r\nHost: proxy\r\nTransfer-Encoding: chunked\r\n\r\n" + String(repeating: chunk, count: 3) + "0\r\n\r\n"
            )
            #expect(chunked.hasPrefix("HTTP/1.1 413"))
            // More than the budget holds: 503 (after the declared body was read), and the connection closes.
            let held = try BodyCollection(budget: budget, limit: 100, declaredLength: 80)
            let overBudget = try await RawClient.exchange(
                port: port, bytes: "POST /answer HTTP/1.1\r\nHost: proxy\r\nContent-Length: 30\r\n\r\n" + String(repeating: "z", count: 30))
            #expect(overBudget.hasPrefix("HTTP/1.1 503"))
            #expect(overBudget.lowercased().contains("connection: close"))
            held.abandon()
        }
        #expect(answered.withLockedValue { $0 } == 0)
        #expect(budget.bytesHeld == 0)
    }

    @Test func anAnswerBeforeTheBodyKeepsTheConnectionForTheNextRequest() async throws {
        let counters = ProxyCounters()
        let answered = NIOLockedValueBox(0)
        let raw =
            "POST /answer/busy HTTP/1.1\r\nHost: proxy\r\nContent-Length: 4\r\n\r\nbusy"
            + "GET /local HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n"
        let answer = try await Self.exchange(raw, budget: BodyMemoryBudget(capacity: 4096), counters: counters, answered: answered)
        #expect(answer.statuses == ["503", "299"])
        #expect(answered.withLockedValue { $0 } == 0)
        #expect(counters.value(.requests, labels: ["answer", "5xx"]) == 1)
    }

    @Test func aClientThatLeavesBeforeItsAnswerGivesTheBudgetBack() async throws {
        let budget = BodyMemoryBudget(capacity: 4096)
        let counters = ProxyCounters()
        let answered = NIOLockedValueBox(0)
        try await Self.listener(budget: budget, counters: counters, answered: answered).test(.live) { client in
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(
                host: "127.0.0.1", port: try #require(client.port)
            ).get()
            try await channel.writeAndFlush(ByteBuffer(string: "POST /answer/slow HTTP/1.1\r\nHost: proxy\r\nContent-Length: 5\r\n\r\nhello"))
            try await channel.close()
            // The answer is still made (the upload was read whole); nobody gets it, and its bytes come back.
            for _ in 0..<100 where answered.withLockedValue({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(20)) }
            #expect(answered.withLockedValue { $0 } == 1)
            for _ in 0..<100 where budget.bytesHeld != 0 { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(budget.bytesHeld == 0)
        #expect(counters.value(.requests, labels: ["answer", "2xx"]) == 0)
    }
}
