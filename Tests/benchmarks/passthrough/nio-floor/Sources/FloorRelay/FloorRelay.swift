// The floor of a passthrough on Swift NIO, for the passthrough benchmark (not part of the product).
//
//   nio-floor-bytes|nio-floor-http --upstream http://HOST:PORT --listen HOST:PORT --admin-listen HOST:PORT
//
// Every client connection gets its own upstream connection on the same event loop (what nginx's kept-alive upstream
// connections amount to at a fixed number of clients), opened before the client is read:
// - `bytes`: the bytes are copied both ways as they come (no HTTP at all; back-pressure by holding reads while the
//   other side is not writable): the least any passthrough on NIO pays per call.
// - `http`: NIO's HTTP/1 server codec on the client's side and its client codec on the upstream's, the parts passed
//   across unchanged: the least a passthrough that decodes and re-encodes both heads with NIO pays.
// The admin address answers every connection with `200 ok` (the benchmark waits for it).
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

struct Arguments {
    var upstream: (host: String, port: Int)?
    var listen: (host: String, port: Int)?
    var admin: (host: String, port: Int)?

    static func address(_ text: String) -> (host: String, port: Int)? {
        var rest = Substring(text)
        if rest.hasPrefix("http://") { rest = rest.dropFirst("http://".count) }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]) else { return nil }
        return (String(rest[..<colon]), port)
    }

    init(_ words: [String]) {
        var index = 0
        while index + 1 < words.count {
            let value = words[index + 1]
            switch words[index] {
            case "--upstream": upstream = Arguments.address(value)
            case "--listen": listen = Arguments.address(value)
            case "--admin-listen": admin = Arguments.address(value)
            default: break  // the proxy's other options (--log-level) mean nothing here
            }
            index += 2
        }
    }
}

/// What a relay needs of its partner: where to write, and a read to resume when it can write again.
protocol Partner: AnyObject {
    var context: ChannelHandlerContext? { get }
    func resumeRead()
}

/// One side of a pair of connections: what it reads (`In`) is converted and written to its partner's channel.
final class Relay<In, Out>: ChannelDuplexHandler, Partner {
    typealias InboundIn = In
    typealias OutboundIn = NIOAny

    let convert: (In) -> Out
    var partner: (any Partner)?
    var context: ChannelHandlerContext?
    var pendingRead = false

    init(convert: @escaping (In) -> Out) { self.convert = convert }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.context?.write(NIOAny(convert(unwrapInboundIn(data))), promise: nil)
    }
    func channelReadComplete(context: ChannelHandlerContext) { partner?.context?.flush() }
    func channelInactive(context: ChannelHandlerContext) { partner?.context?.close(promise: nil) }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.resumeRead() }
    }

    /// Reads are held while the partner cannot take more.
    func read(context: ChannelHandlerContext) {
        if let partnerContext = partner?.context, !partnerContext.channel.isWritable {
            pendingRead = true
        } else {
            context.read()
        }
    }
    func resumeRead() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }
}

/// Pairs a client's channel with a new upstream connection on its event loop, `bytes` or `http` (see the top).
func pair(client: any Channel, upstream: (host: String, port: Int), http: Bool) -> EventLoopFuture<Void> {
    ClientBootstrap(group: client.eventLoop)
        .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        .connect(host: upstream.host, port: upstream.port)
        .flatMapThrowing { server in
            let clientPipeline = client.pipeline.syncOperations
            let serverPipeline = server.pipeline.syncOperations
            if http {
                // Without the header validators, as the proxy's listener and upstream connections are set up.
                try clientPipeline.configureHTTPServerPipeline(
                    withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false)
                try serverPipeline.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                let fromClient = Relay<HTTPServerRequestPart, HTTPClientRequestPart> { part in
                    switch part {
                    case .head(let head): .head(head)
                    case .body(let buffer): .body(.byteBuffer(buffer))
                    case .end(let trailers): .end(trailers)
                    }
                }
                let fromServer = Relay<HTTPClientResponsePart, HTTPServerResponsePart> { part in
                    switch part {
                    case .head(let head): .head(head)
                    case .body(let buffer): .body(.byteBuffer(buffer))
                    case .end(let trailers): .end(trailers)
                    }
                }
                fromClient.partner = fromServer
                fromServer.partner = fromClient
                try clientPipeline.addHandler(fromClient)
                try serverPipeline.addHandler(fromServer)
            } else {
                let fromClient = Relay<ByteBuffer, ByteBuffer> { $0 }
                let fromServer = Relay<ByteBuffer, ByteBuffer> { $0 }
                fromClient.partner = fromServer
                fromServer.partner = fromClient
                try clientPipeline.addHandler(fromClient)
                try serverPipeline.addHandler(fromServer)
            }
        }
}

/// The admin address: `200 ok` to anything, then the connection closes.
final class Healthy: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let answer = context.channel.allocator.buffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(answer)).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// Which relay a floor binary runs.
public enum FloorMode: String, Sendable {
    case bytes, http
}

/// Runs the relay until the process ends, with the proxy's command-line options (the others ignored).
public func runFloor(_ mode: FloorMode) async throws {
    let arguments = Arguments(Array(CommandLine.arguments.dropFirst()))
    guard let upstream = arguments.upstream, let listen = arguments.listen else {
        print("usage: nio-floor-\(mode.rawValue) --upstream http://HOST:PORT --listen HOST:PORT [--admin-listen HOST:PORT]")
        exit(2)
    }
    let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
    let http = mode == .http
    let server = try await ServerBootstrap(group: group)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in pair(client: channel, upstream: upstream, http: http) }
        .bind(host: listen.host, port: listen.port).get()
    if let admin = arguments.admin {
        _ = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Healthy()) }
            }
            .bind(host: admin.host, port: admin.port).get()
    }
    // Written unbuffered: the benchmarks wait for this line in a log file.
    let line = "[nio-floor] listening on \(listen.host):\(listen.port), \(mode.rawValue)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
    try await server.closeFuture.get()
}
