import ArgumentParser
import AsyncHTTPClient
import Backfill
import Delivery
import Foundation
import Logging
import OTLPExport
import OTLPTranslation
import ProxyConfig
import ProxyObservability
import ProxySettings
import SharedSettings
import SpanShaping
import UnixSignals
import UpstreamAccess

#if canImport(Glibc)
    import Glibc
#endif

/// `backfill`: exports traces already stored in an MLflow server to the destinations, as live export would have.
struct BackfillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backfill",
        abstract: "Export traces already stored in MLflow to the destinations (once each, resumable).",
        discussion: """
            Reads the selected traces with MLflow's REST API (3.x and 2.x servers; the
            upstream's credentials and TLS settings as for serve) and sends them through
            the same translation, data policy and delivery as live traces. A checkpoint
            file records what each destination acknowledged: running it again after a
            crash or Ctrl-C sends nothing twice and goes on where it stopped. A
            destination that is down pauses the backfill (retried with its retry
            settings, without a time limit); one that refuses a request for good stops it.

            Exit status: 0 when every selected trace was delivered (now or by an earlier
            run), 1 when some were not (skipped, refused, or an MLflow error), 2 for a
            configuration problem, 130 when interrupted.
            """
    )

    @Option(help: "The MLflow server to read from (default: MLFLOW_TRACKING_URI).")
    var upstream: String?

    @Option(help: "A YAML configuration file, as for serve (default: MLFLOW_OTEL_PROXY_CONFIG).")
    var config: String?

    @Option(name: .customLong("experiment-id"), parsing: .upToNextOption, help: "Experiments to read, by id.")
    var experimentIDs: [String] = []

    @Option(name: .customLong("experiment-name"), parsing: .upToNextOption, help: "Experiments to read, by name.")
    var experimentNames: [String] = []

    @Option(help: "Traces started at or after: ISO-8601 (2026-11-30T12:00:00Z, 2026-11-30) or a time ago (30m, 24h, 7d).")
    var since: String?

    @Option(help: "Traces started before: same forms as --since (default: when the backfill starts).")
    var until: String?

    @Option(help: "An MLflow trace filter string, passed through (e.g. \"tags.team = 'search'\").")
    var filter: String?

    @Option(name: .customLong("destination"), parsing: .upToNextOption, help: "Destinations to send to, by name (default: all).")
    var destinationNames: [String] = []

    @Option(help: "The checkpoint file (default: mlflow-otel-proxy-backfill.checkpoint beside --config, else in the working directory).")
    var checkpoint: String?

    @Flag(help: "Count what would be sent; send nothing, write no checkpoint.")
    var dryRun = false

    @Option(help: "At most this many MLflow requests per second (default: no limit).")
    var rate: Double?

    @Option(help: "MLflow span requests in flight at once (default 4).")
    var concurrency = 4

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default info).")
    var logLevel: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var standardError = FileHandle.standardError
        let levelText = logLevel ?? environment["MLFLOW_OTEL_PROXY_LOG_LEVEL"].flatMap { $0.isEmpty ? nil : $0 } ?? "info"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else {
            throw ValidationError("--log-level: unknown level \"\(levelText)\"")
        }
        let logger = {
            var logger = Logger(label: "mlflow-otel-proxy-backfill") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = level
            return logger
        }()

        func fail(_ setting: String, _ reason: String) -> ExitCode {
            print("\(setting): \(reason)", to: &standardError)
            return ExitCode(2)
        }
        // The configuration, loaded as serve loads it.
        let configuration: ProxyConfiguration
        let path: String?
        do {
            let file = try ProxyOptions.configurationFile(flag: config, environment: environment)
            path = file.path
            configuration = try ProxyConfiguration.load(
                environment: environment, flags: CommandLineSettings(upstream: upstream, configFile: file.path), fileText: file.text)
        } catch {
            for problem in error.problems { print("\(problem.setting): \(problem.reason)", to: &standardError) }
            throw ExitCode(2)
        }
        guard let upstreamURL = configuration.upstream else {
            throw fail("--upstream", "the MLflow server to read from is needed (--upstream or MLFLOW_TRACKING_URI)")
        }
        guard !experimentIDs.isEmpty || !experimentNames.isEmpty else {
            throw fail("--experiment-id", "name at least one experiment (--experiment-id or --experiment-name)")
        }
        let known = configuration.destinations.map(\.name)
        if let unknown = destinationNames.first(where: { !known.contains($0) }) {
            throw fail("--destination", "no destination named \"\(unknown)\"; configured: \(known.isEmpty ? "none" : known.joined(separator: ", "))")
        }
        let selected = configuration.destinations.filter { destinationNames.isEmpty || destinationNames.contains($0.name) }
        guard !selected.isEmpty else {
            throw fail("destinations", "none is configured (OTEL_EXPORTER_OTLP_* variables or `destinations` in the file)")
        }
        let now = Date()
        var sinceDate: Date?
        if let since {
            guard let parsed = BackfillTime.parse(since, now: now) else {
                throw fail("--since", "expected ISO-8601 or a time ago like 24h, got \"\(since)\"")
            }
            sinceDate = parsed
        }
        var untilDate = now
        if let until {
            guard let parsed = BackfillTime.parse(until, now: now) else {
                throw fail("--until", "expected ISO-8601 or a time ago like 24h, got \"\(until)\"")
            }
            untilDate = parsed
        }
        if let rate, !(rate > 0) { throw fail("--rate", "must be above 0") }
        guard concurrency >= 1 else { throw fail("--concurrency", "must be at least 1") }
        let checkpointPath =
            checkpoint
            ?? (path.map { ($0 as NSString).deletingLastPathComponent }.flatMap { $0.isEmpty ? nil : $0 }.map { $0 + "/" } ?? "")
            + "mlflow-otel-proxy-backfill.checkpoint"
        let store: BackfillCheckpoint
        do {
            store = try BackfillCheckpoint(path: checkpointPath, readOnly: dryRun)
        } catch {
            throw fail("--checkpoint", error.description)
        }

        // Clients: one for MLflow (with the upstream's TLS settings), one for the destinations.
        var upstreamConfiguration = HTTPClient.Configuration()
        upstreamConfiguration.redirectConfiguration = .disallow
        do {
            upstreamConfiguration.tlsConfiguration = try OTLPHTTPExporter.tlsConfiguration(configuration.upstreamTLS)
        } catch {
            throw fail("upstream.tls", "cannot load the TLS files: \(error)")
        }
        let upstreamClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: upstreamConfiguration)
        var exportConfiguration = HTTPClient.Configuration()
        exportConfiguration.redirectConfiguration = .disallow
        let exportClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: exportConfiguration)
        func shutDownClients() async {
            try? await upstreamClient.shutdown()
            try? await exportClient.shutdown()
        }

        // Each destination with its exporter; retries without a time budget, so a down destination pauses the run.
        var destinations: [BackfillDestination] = []
        var grpcExporters: [OTLPGRPCExporter] = []
        let status = StatusBoard(destinations: selected.map { (name: $0.name, endpoint: $0.endpoint.description) })
        for destination in selected {
            var delivery = configuration.delivery(for: destination)
            delivery.retry.enabled = true
            delivery.retry.maxElapsedTime = nil
            let exporter: any SpanExporter
            do {
                if destination.transportProtocol == .grpc {
                    let grpc = try OTLPGRPCExporter(destination: destination, retry: delivery.retry, logger: logger, status: status)
                    grpcExporters.append(grpc)
                    exporter = grpc
                } else {
                    exporter = try OTLPHTTPExporter(
                        destination: destination, client: exportClient, retry: delivery.retry, logger: logger, status: status)
                }
            } catch {
                await shutDownClients()
                throw fail("destinations.\(destination.name).tls", "cannot load the TLS files: \(error)")
            }
            let maxBytes = min(delivery.maxExportBatchBytes, destination.maxRequestBytes.map { max($0 - 16, 1024) } ?? Int.max)
            destinations.append(
                BackfillDestination(
                    name: destination.name, exporter: exporter, shaper: DestinationShaper(policy: destination.policy),
                    maxSpans: delivery.maxExportBatchSize, maxBytes: maxBytes))
        }
        let tokenSource = configuration.upstreamOAuth.map { UpstreamTokenSource(credentials: $0, client: upstreamClient) }
        let reader = MLflowTraceReader(
            upstream: upstreamURL, client: upstreamClient, headers: configuration.upstreamHeaders, tokenSource: tokenSource,
            timeout: configuration.upstreamTimeout, pacer: RequestPacer(rate: rate, clock: ContinuousClock()), logger: logger)
        let translation = TranslationSettings(
            serviceName: configuration.resource.serviceName,
            resourceAttributes: configuration.resource.attributes.map { (key: $0.key, value: $0.value) },
            scopeVersion: ProxyVersion.current
        )
        let progress = BackfillProgress()
        let backfill = BackfillRun(
            reader: reader, destinations: destinations, translation: translation, checkpoint: store, progress: progress, logger: logger,
            concurrency: concurrency)
        let selection = BackfillSelection(
            experimentIDs: experimentIDs.flatMap { $0.split(separator: ",").map(String.init) },
            experimentNames: experimentNames, since: sinceDate, until: untilDate, filter: filter)
        logger.info(
            "backfill starting",
            metadata: [
                "upstream": "\(upstreamURL)", "destinations": "\(selected.map(\.name).joined(separator: ","))", "checkpoint": "\(checkpointPath)",
                "dry_run": "\(dryRun)",
            ])

        let summary = await withTaskGroup(of: BackfillSummary?.self) { group in
            for grpc in grpcExporters {
                group.addTask {
                    try? await grpc.run(); return nil
                }
            }
            let interrupted = await UnixSignalsSequence(trapping: .sigint, .sigterm)
            let runTask = Task { await backfill.run(selection, dryRun: dryRun) }
            group.addTask {
                // The first Ctrl-C (or SIGTERM) stops the run cleanly (summary, checkpoint); a second one quits at once.
                var signals = 0
                for await _ in interrupted {
                    signals += 1
                    if signals == 1 { runTask.cancel() } else { Foundation.exit(130) }
                }
                return nil
            }
            group.addTask { await Self.showProgress(progress, logger: logger) }
            let summary = await runTask.value
            for grpc in grpcExporters { grpc.stop() }
            group.cancelAll()
            return summary
        }
        await shutDownClients()
        if isatty(STDERR_FILENO) != 0 { print("\r\u{1B}[K", terminator: "", to: &standardError) }
        print(Self.describe(summary))
        if summary.interrupted { throw ExitCode(130) }
        if !summary.complete { throw ExitCode(1) }
    }

    /// The progress line, rewritten in place twice a second on a terminal, else logged every 10 s.
    static func showProgress(_ progress: BackfillProgress, logger: Logger) async -> BackfillSummary? {
        let terminal = isatty(STDERR_FILENO) != 0
        var standardError = FileHandle.standardError
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: terminal ? .milliseconds(500) : .seconds(10))
            } catch {
                break
            }
            if terminal {
                print("\r\u{1B}[K" + progress.line(), terminator: "", to: &standardError)
            } else {
                logger.info("\(progress.line())")
            }
        }
        return nil
    }

    /// The summary printed at the end.
    static func describe(_ summary: BackfillSummary) -> String {
        let seconds = Double(summary.elapsed.components.seconds) + Double(summary.elapsed.components.attoseconds) / 1e18
        var lines = [summary.dryRun ? "backfill dry run (nothing sent):" : "backfill summary:"]
        lines.append("  selected traces:     \(summary.selected)")
        lines.append("  already delivered:   \(summary.alreadyDelivered) (checkpoint)")
        lines.append("  \(summary.dryRun ? "would be exported:" : "exported now:     ")   \(summary.exported) traces, \(summary.spansExported) spans")
        for (reason, count) in summary.skipped.sorted(by: { $0.key < $1.key }) { lines.append("  skipped (\(reason)): \(count)") }
        for (what, count) in summary.spansLeftOut.sorted(by: { $0.key < $1.key }) { lines.append("  spans left out at \(what): \(count)") }
        lines.append("  MLflow requests:     \(summary.mlflowRequests)")
        lines.append(String(format: "  time:                %.1f s", seconds))
        if summary.interrupted { lines.append("  interrupted: run it again to go on where it stopped") }
        if let reason = summary.stoppedBecause { lines.append("  stopped: \(reason)") }
        lines.append(summary.complete ? "  result: every selected trace is delivered" : "  result: not every selected trace was delivered")
        return lines.joined(separator: "\n")
    }
}
