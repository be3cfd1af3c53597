import NIOCore
import NIOEmbedded

/// Writes `parts` at the tail of an embedded channel's pipeline, flushes, and collects what reached its head: the bytes
/// written, and whether each write's promise succeeded. For the proxy's HTTP/1 encoders, tested against NIO's own.
/// - Throws: when a file region reaches the head (the encoders write buffers only), or the channel's errors.
public func bytesWritten<Part>(through channel: EmbeddedChannel, _ parts: [Part]) throws -> (bytes: [UInt8], succeeded: [Bool]) {
    var results: [EventLoopFuture<Void>] = []
    for part in parts {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.write(part, promise: promise)
        results.append(promise.futureResult)
    }
    channel.flush()
    var succeeded: [Bool] = []
    for result in results {
        do {
            try result.wait()
            succeeded.append(true)
        } catch {
            succeeded.append(false)
        }
    }
    return (try outboundBytes(of: channel), succeeded)
}

/// The bytes that reached the head of an embedded channel's pipeline and were not read yet.
/// - Throws: when a file region reached the head (the encoders write buffers only).
public func outboundBytes(of channel: EmbeddedChannel) throws -> [UInt8] {
    var bytes: [UInt8] = []
    while let written = try channel.readOutbound(as: IOData.self) {
        guard case .byteBuffer(let buffer) = written else { throw FileRegionWritten() }
        bytes += buffer.readableBytesView
    }
    return bytes
}

/// A file region reached the head of the pipeline where only buffers were expected.
public struct FileRegionWritten: Error {}
