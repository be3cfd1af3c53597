import NIOCore
import NIOPosix
import Testing

@testable import Passthrough

/// A loop's pool outlives the connection pool it belongs to (a listener connection still holds it at shutdown).
@Suite(.timeLimit(.minutes(1))) struct UpstreamConnectionPoolTests {
    @Test func aLoopPoolWhosePoolIsGoneRefusesNewConnectionsInsteadOfCrashing() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        var pool: UpstreamConnectionPool? = UpstreamConnectionPool(host: "127.0.0.1", port: 9, tls: nil)
        let loopPool = try await loop.submit { [pool] in pool.map { NIOLoopBound($0.pool(on: loop), eventLoop: loop) } }.get()
        pool = nil  // the only strong reference: the loop pool must not read its owner any more
        #expect(pool == nil && loopPool != nil)
        let refused = try await loop.submit { loopPool?.value.connect().map { _ in () } }.get()
        await #expect(throws: ChannelError.self) { try await refused?.get() }
        #expect(try await loop.submit { loopPool?.value.take() == nil }.get())
    }
}
