import AdminSite
import Delivery
import Foundation
import HTTPListener
import Intake
import Logging
import NIOCore
import NIOPosix
import OTLPExport
import Passthrough
import ProxySettings
import ServiceLifecycle
import SharedSettings

#if canImport(Glibc)
    import Glibc
#endif

/// `--watch-config`: reloads the configuration, as `SIGHUP` does, when the configuration file or a file it reads
/// (a `${file:…}` secret, a certificate or key) changes.
///
/// Kubernetes updates a mounted ConfigMap or Secret by swapping a `..data` symlink in its directory, so the
/// watcher watches the directories that hold the files (Linux `inotify`, read through NIO's event loop: no
/// polling), waits for a burst of changes to settle, and reloads only when a watched file's content changed.
/// After each reload it watches the files of the configuration now running.
public final class ConfigurationWatcher: Service, Sendable {
    private let reloader: ProxyReloader
    private let load: @Sendable () throws(ConfigurationError) -> ProxyConfiguration
    private let logger: Logger
    private let settle: Duration
    private let initialFiles: [String]

    /// A watcher of `files` (the running configuration's; see ``files(of:)``). - Parameter settle: how long a
    /// burst of changes may go on before the reload.
    public init(
        reloader: ProxyReloader, files: [String], settle: Duration = .milliseconds(300), logger: Logger,
        load: @escaping @Sendable () throws(ConfigurationError) -> ProxyConfiguration
    ) {
        self.reloader = reloader
        self.initialFiles = files
        self.settle = settle
        self.logger = logger
        self.load = load
    }

    /// The files a configuration was read from: the configuration file, every `${file:…}` it names, and the
    /// certificates and keys of the listeners and destinations.
    public static func files(of configuration: ProxyConfiguration) -> [String] {
        var files: [String] = []
        if let path = configuration.configFile {
            files.append(path)
            if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                let expression = try? NSRegularExpression(pattern: #"\$\{file:([^}]+)\}"#)
                for match in expression?.matches(in: text, range: NSRange(text.startIndex..., in: text)) ?? [] {
                    if let range = Range(match.range(at: 1), in: text) { files.append(String(text[range])) }
                }
            }
        }
        for listener in [configuration.tls, configuration.adminTLS].compactMap({ $0 }) { files += [listener.certFile, listener.keyFile] }
        for destination in configuration.destinations {
            files += [destination.tls.caFile, destination.tls.certFile, destination.tls.keyFile].compactMap { $0 }
        }
        return Array(Set(files.map { URL(fileURLWithPath: $0).standardizedFileURL.path })).sorted()
    }

    public func run() async throws {
        var files = initialFiles
        var snapshot = Self.contents(of: files)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let directories = Set(files.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path })
            let changes: AsyncStream<Void>
            let channel: any Channel
            do {
                (changes, channel) = try await Self.watch(directories)
            } catch {
                logger.error("cannot watch the configuration files; reload with SIGHUP", metadata: ["error": "\(error)"])
                return
            }
            logger.info("watching the configuration files for changes", metadata: ["files": "\(files.count)"])
            var reloaded = false
            for await _ in changes.cancelOnGracefulShutdown() {
                // A burst (a symlink swap is several events): wait for it to settle, then compare contents.
                try? await Task.sleep(for: settle)
                let current = Self.contents(of: files)
                guard current != snapshot else { continue }
                snapshot = current
                logger.info("a configuration file changed: reloading the configuration")
                do {
                    let configuration = try load()
                    try await reloader.reload(to: configuration)
                    let newFiles = Self.files(of: configuration)
                    if newFiles != files {
                        files = newFiles
                        snapshot = Self.contents(of: files)
                        reloaded = true
                        break  // watch the new set of directories
                    }
                } catch {
                    for problem in error.problems {
                        logger.error(
                            "configuration reload rejected; the running configuration stays",
                            metadata: ["setting": "\(problem.setting)", "error": "\(problem.reason)"])
                    }
                }
            }
            try? await channel.close()
            if !reloaded { return }
        }
    }

    /// Each file's bytes (`nil` when unreadable), following symlinks as a reader does.
    static func contents(of files: [String]) -> [Data?] {
        files.map { FileManager.default.contents(atPath: $0) }
    }

    /// An inotify descriptor watching `directories`, read by NIO; each read yields one element.
    static func watch(_ directories: Set<String>) async throws -> (AsyncStream<Void>, any Channel) {
        let descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard descriptor >= 0 else { throw WatchError(reason: "inotify_init1: \(String(cString: strerror(errno)))") }
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB)
        for directory in directories where inotify_add_watch(descriptor, directory, mask) < 0 {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw WatchError(reason: "cannot watch \(directory): \(reason)")
        }
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let channel = try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EventHandler(continuation: continuation)) }
            }
            .takingOwnershipOfDescriptor(input: descriptor).get()
        return (stream, channel)
    }

    struct WatchError: Error, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    /// Turns the descriptor's reads into stream elements (the events themselves do not matter: contents are compared).
    final class EventHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let continuation: AsyncStream<Void>.Continuation
        init(continuation: AsyncStream<Void>.Continuation) { self.continuation = continuation }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { continuation.yield() }
        func channelInactive(context: ChannelHandlerContext) {
            continuation.finish()
            context.fireChannelInactive()
        }
    }
}
