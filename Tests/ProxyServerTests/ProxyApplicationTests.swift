import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ProxyConfig
import ProxyObservability
import ProxySettings
import ServiceLifecycle
import SharedSettings
import TestSupport
import Testing

@testable import ProxyServer

/// The wiring in-process: the services `ProxyApplication` builds from a configuration, started in their order, take a
/// captured MLflow 3.17.2 upload on a real socket and write the translated trace to the local traces file; a
/// graceful stop delivers what is held. The same paths against a real `mlflow server` and client run in Tests/e2e.
@Suite(.timeLimit(.minutes(1))) struct ProxyApplicationTests {
    @Test func standaloneTakesAnUploadAndWritesTheTraceOnShutdown() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("proxy-app-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let tracesFile = directory.appendingPathComponent("traces.jsonl").path
        var flags = CommandLineSettings(listen: "127.0.0.1:0", tracesFile: tracesFile)
        flags.adminListen = "127.0.0.1:0"
        let configuration = try ProxyConfiguration.load(environment: [:], flags: flags)
        let logger = Logger(label: "test")
        let (addresses, addressContinuation) = AsyncStream<Int>.makeStream()
        let runtime = try await ProxyApplication.makeServices(
            configuration: configuration, counters: ProxyCounters(), logger: logger,
            onServerRunning: { address in addressContinuation.yield(address?.port ?? 0) })
        let group = ServiceGroup(
            configuration: .init(
                services: runtime.services.map { .init(service: $0) }, gracefulShutdownSignals: [], cancellationSignals: [], logger: logger))
        let running = Task { try await group.run() }
        var portIterator = addresses.makeAsyncIterator()
        let port = try #require(await portIterator.next())

        let uploads = try CaptureReplay.exchanges("01_sync").filter {
            $0.method == "POST" && ($0.path == "/v1/traces" || $0.path == "/api/3.0/mlflow/traces")
        }
        try #require(!uploads.isEmpty)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        for upload in uploads {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(upload.path)")
            request.method = .POST
            for (name, value) in upload.headers where !["host", "content-length", "connection"].contains(name) {
                request.headers.add(name: name, value: value)
            }
            request.body = .bytes(ByteBuffer(bytes: upload.body))
            let response = try await client.execute(request, timeout: .seconds(10))
            #expect(response.status.code == 200, "\(upload.path)")
            _ = try await response.body.collect(upTo: 1024 * 1024)
        }
        try await client.shutdown()
        await group.triggerGracefulShutdown()
        try await running.value

        let lines = try String(contentsOfFile: tracesFile, encoding: .utf8).split(separator: "\n")
        try #require(!lines.isEmpty)
        let spanNames = lines.flatMap { line -> [String] in
            let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
            return ((object?["resourceSpans"] as? [[String: Any]]) ?? []).flatMap { ($0["scopeSpans"] as? [[String: Any]]) ?? [] }
                .flatMap { ($0["spans"] as? [[String: Any]]) ?? [] }.compactMap { $0["name"] as? String }
        }
        let sent = uploads.filter { $0.path == "/v1/traces" }.flatMap { upload -> [String] in
            let object = upload.decodedBody as? [String: Any]
            return ((object?["resourceSpans"] as? [[String: Any]]) ?? []).flatMap { ($0["scopeSpans"] as? [[String: Any]]) ?? [] }
                .flatMap { ($0["spans"] as? [[String: Any]]) ?? [] }.compactMap { $0["name"] as? String }
        }
        #expect(!sent.isEmpty && spanNames.sorted() == sent.sorted())
    }
}
