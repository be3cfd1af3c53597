import NIOCore
import NIOPosix
import Testing

@testable import Passthrough

/// A loop's pool outlives the connection pool it belongs to (a listener connection still holds it at shutdown).
@Suite(.timeLimit(.minutes(1))) struct UpstreamConnectionPoolTests {
    @Test func aLoopPoolWhosePoolIsGoneRefusesNewConnectionsInsteadOfCrashing() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        var pool: UpstreamConnectionPool? = UpstreamConnectionPool(host: "127.0.0.1", port: 9, tls: nil)
        // Weak capture: nothing but `pool` may keep the connection pool alive, or the test would not test the case.
        let loopPool = try await loop.submit { [weak pool] in pool.map { NIOLoopBound($0.pool(on: loop), eventLoop: loop) } }.get()
        weak let released = pool
        pool = nil
        #expect(released == nil, "the loop pool must not keep its connection pool alive")
        #expect(loopPool != nil)
        let refused = try await loop.submit { loopPool?.value.connect().map { _ in () } }.get()
        await #expect(throws: ChannelError.self) { try await refused?.get() }
        #expect(try await loop.submit { loopPool?.value.take() == nil }.get())
    }
}
