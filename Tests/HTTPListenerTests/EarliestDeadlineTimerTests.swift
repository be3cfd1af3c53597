import NIOCore
import NIOEmbedded
import Testing

@testable import HTTPListener

/// The one timer of a handler's deadlines, on NIO's embedded event loop (its clock moves only when the test moves it).
@Suite struct EarliestDeadlineTimerTests {
    @Test func aLaterDeadlineKeepsTheEarlierTimerAndAnEarlierOneReplacesIt() {
        let loop = EmbeddedEventLoop()
        var timer = EarliestDeadlineTimer()
        var fired: [Int64] = []
        let start = loop.now
        func arm(_ milliseconds: Int64) {
            timer.arm(for: start + .milliseconds(milliseconds), on: loop) {
                timer.fired()
                fired.append((loop.now - start).nanoseconds / 1_000_000)
            }
        }
        #expect(!timer.covers(start))
        arm(100)
        #expect(timer.covers(start + .milliseconds(100)) && timer.covers(start + .milliseconds(300)) && !timer.covers(start))
        arm(300)  // later: the timer stays armed for 100
        loop.advanceTime(by: .milliseconds(150))
        #expect(fired == [100])
        arm(400)
        arm(200)  // earlier: replaces the one for 400
        loop.advanceTime(by: .milliseconds(500))
        #expect(fired == [100, 200])
        arm(900)
        timer.cancel()
        loop.advanceTime(by: .seconds(1))
        #expect(fired == [100, 200])
        arm(2_000)  // after a cancel it schedules again
        loop.advanceTime(by: .seconds(1))
        #expect(fired == [100, 200, 2_000])
    }
}
