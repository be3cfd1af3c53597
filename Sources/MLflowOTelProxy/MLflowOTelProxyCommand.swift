import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import OTLPExport
import Prometheus
import ProxyConfig
import ProxyObservability
import ProxyServer
import ProxySettings
import ServiceLifecycle
import SharedSettings
import UnixSignals

/// `mlflow-otel-proxy`: the command-line entry point; `serve` is the default subcommand.
@main
struct MLflowOTelProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mlflow-otel-proxy",
        abstract: "A drop-in MLflow tracking URI that exports MLflow traces over OpenTelemetry (OTLP).",
        version: ProxyVersion.current,
        subcommands: [Serve.self, CheckConfig.self, TestDestination.self, HealthCheck.self, BackfillCommand.self],
        defaultSubcommand: Serve.self
    )
}

/// Runs the proxy.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the proxy (the default subcommand).",
        discussion: """
            Point an application's MLFLOW_TRACKING_URI at the proxy. Every MLflow call
            is forwarded to the upstream MLflow server; trace uploads are handled
            according to the export mode, decided from the environment as MLflow
            decides it:

              MLflow only         no OTLP endpoint set: everything passes through,
                                  trace calls included.
              OpenTelemetry only  an OTLP endpoint set: trace uploads are answered
                                  by the proxy and exported over OTLP; they never
                                  reach the upstream.
              Dual                an endpoint and MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT
                                  =true: uploads go to the upstream unchanged and a
                                  copy is exported.
              Standalone          no upstream: the proxy answers the trace API
                                  itself (GET /version and the experiment calls
                                  too); with no endpoint either, traces are written
                                  as OTLP/JSON lines to --traces-file.

            """ + "\n" + EnvironmentReference.helpText(width: 78)
    )

    @OptionGroup var options: ProxyOptions

    @Flag(help: "Reload when the configuration file or a file it reads changes (as on SIGHUP). Default: MLFLOW_OTEL_PROXY_WATCH_CONFIG.")
    var watchConfig = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let levelText = options.logLevel ?? environment["MLFLOW_OTEL_PROXY_LOG_LEVEL"].flatMap { $0.isEmpty ? nil : $0 } ?? "info"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else {
            throw ValidationError("--log-level: unknown level \"\(levelText)\"")
        }
        let format = options.logFormat ?? environment["MLFLOW_OTEL_PROXY_LOG_FORMAT"].flatMap { $0.isEmpty ? nil : $0 } ?? "text"
        switch format {
        case "json":
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
        case "text":
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        default:
            throw ValidationError("--log-format: expected text or json, got \"\(format)\"")
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "mlflow-otel-proxy")

        let configuration: ProxyConfiguration
        do {
            configuration = try options.loadConfiguration(environment: environment)
        } catch {
            for problem in error.problems {
                logger.critical("invalid configuration", metadata: ["setting": "\(problem.setting)", "error": "\(problem.reason)"])
            }
            throw ExitCode(2)
        }
        for warning in configuration.warnings { logger.warning("\(warning)") }
        logger.info("starting mlflow-otel-proxy \(ProxyVersion.current): \(configuration.summary)")

        let counters = ProxyCounters()
        let runtime = try await ProxyApplication.makeServices(
            configuration: configuration, counters: counters, logger: logger, metricsText: { registry.emitToString() },
            onServerRunning: { address in
                logger.info("listening", metadata: ["address": "\(address.map(String.init(describing:)) ?? configuration.listen.description)"])
            },
            onAdminRunning: { address in
                logger.info("admin listening", metadata: ["address": "\(address.map(String.init(describing:)) ?? "?")"])
            }
        )
        let options = self.options
        let reload = ReloadOnSignal(reloader: runtime.reloader, logger: logger) { () throws(ConfigurationError) in
            try options.loadConfiguration(environment: environment)
        }
        var services: [any Service] = runtime.services + [reload]
        let watchVariable = environment["MLFLOW_OTEL_PROXY_WATCH_CONFIG"].flatMap { $0.isEmpty ? nil : $0.lowercased() }
        guard watchVariable == nil || ["true", "false", "1", "0"].contains(watchVariable ?? "") else {
            logger.critical("invalid configuration", metadata: ["setting": "MLFLOW_OTEL_PROXY_WATCH_CONFIG", "error": "expected true or false"])
            throw ExitCode(2)
        }
        if watchConfig || watchVariable == "true" || watchVariable == "1" {
            let files = ConfigurationWatcher.files(of: configuration)
            if files.isEmpty {
                logger.warning("--watch-config: no configuration file or secret file to watch")
            } else {
                services.append(
                    ConfigurationWatcher(reloader: runtime.reloader, files: files, logger: logger) { () throws(ConfigurationError) in
                        try options.loadConfiguration(environment: environment)
                    })
            }
        }
        var groupConfiguration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        )
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownTimeout
        let group = ServiceGroup(configuration: groupConfiguration)
        try await group.run()
        let counts = counters.snapshot().map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        logger.info("stopped", metadata: ["counters": "\(counts)"])
    }
}

/// The flags `serve` and `check-config` share.
struct ProxyOptions: ParsableArguments {
    @Option(help: "Address to listen on, HOST:PORT (default 127.0.0.1:5000, MLflow's own default).")
    var listen: String?

    @Option(help: "The upstream MLflow server URL (default: MLFLOW_TRACKING_URI; none = standalone).")
    var upstream: String?

    @Option(
        help: "Standalone without an OTLP endpoint: the file traces are appended to as OTLP/JSON lines (default ./mlflow-otel-proxy-traces.jsonl).")
    var tracesFile: String?

    @Option(help: "Seconds a trace waits for its missing parts (trace info or spans) before it is exported anyway (default 10).")
    var traceInfoWait: Double?

    @Option(help: "Seconds an upstream request may take before the client gets a 504 (default 120).")
    var upstreamTimeout: Double?

    @Option(help: "Seconds a graceful shutdown may take to flush queued spans before remaining exports are cancelled (default 10).")
    var shutdownTimeout: Double?

    @Option(help: "Where trace attachments are kept when the proxy answers uploads itself (default: accepted and discarded).")
    var attachmentsDir: String?

    @Option(help: "A YAML configuration file (see README). Default: MLFLOW_OTEL_PROXY_CONFIG.")
    var config: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default info).")
    var logLevel: String?

    @Option(help: "Log format: text or json (one JSON object per line). Default: MLFLOW_OTEL_PROXY_LOG_FORMAT, else text.")
    var logFormat: String?

    @Option(help: "The admin listener for /healthz, /readyz, /metrics and /status, HOST:PORT or off (default 127.0.0.1:9464).")
    var adminListen: String?

    /// The configuration from the environment, the configuration file and these flags.
    func loadConfiguration(environment: [String: String]) throws(ConfigurationError) -> ProxyConfiguration {
        let (path, fileText) = try Self.configurationFile(flag: config, environment: environment)
        return try ProxyConfiguration.load(
            environment: environment,
            flags: CommandLineSettings(
                listen: listen, upstream: upstream, tracesFile: tracesFile, traceInfoWaitSeconds: traceInfoWait,
                upstreamTimeoutSeconds: upstreamTimeout, attachmentsDirectory: attachmentsDir, shutdownTimeoutSeconds: shutdownTimeout,
                configFile: path
            ).with(adminListen: adminListen),
            fileText: fileText
        )
    }
}

extension ProxyOptions {
    /// The configuration file `--config` (else `MLFLOW_OTEL_PROXY_CONFIG`) names, and its text; `(nil, nil)` without one.
    static func configurationFile(flag: String?, environment: [String: String]) throws(ConfigurationError) -> (path: String?, text: String?) {
        guard let path = flag ?? environment["MLFLOW_OTEL_PROXY_CONFIG"].flatMap({ $0.isEmpty ? nil : $0 }) else { return (nil, nil) }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(setting: flag != nil ? "--config" : "MLFLOW_OTEL_PROXY_CONFIG", reason: "cannot read \(path)")
        }
        return (path, text)
    }
}

/// `check-config`: prints the effective configuration with secrets redacted and exits 0, or names each bad
/// setting by its variable, flag or key path and exits 2.
struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the configuration (environment, --config file, flags) and print it with secrets redacted."
    )

    @OptionGroup var options: ProxyOptions

    func run() throws {
        do {
            let configuration = try options.loadConfiguration(environment: ProcessInfo.processInfo.environment)
            print(configuration.redactedYAML, terminator: "")
        } catch {
            var standardError = FileHandle.standardError
            for problem in error.problems { print("\(problem.setting): \(problem.reason)", to: &standardError) }
            throw ExitCode(2)
        }
    }
}

/// `test-destination`: one synthetic trace to each destination (or the named ones) with its real settings and
/// credentials; prints what each answered and a hint for a failure; exits 0 only if all accepted it.
struct TestDestination: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test-destination",
        abstract: "Send one small synthetic trace to each destination and report what it answered.",
        discussion: """
            The trace is one span named "\(DestinationCheck.spanName)", sent once (no retries) with the
            destination's real endpoint, protocol, headers and TLS settings. Secrets are never printed. Exit
            status: 0 when every destination accepted it, 1 when one did not, 2 for a configuration problem.
            """
    )

    @Argument(help: "Destinations to check, by name (default: all).")
    var names: [String] = []

    @OptionGroup var options: ProxyOptions

    func run() async throws {
        var standardError = FileHandle.standardError
        let configuration: ProxyConfiguration
        do {
            configuration = try options.loadConfiguration(environment: ProcessInfo.processInfo.environment)
        } catch {
            for problem in error.problems { print("\(problem.setting): \(problem.reason)", to: &standardError) }
            throw ExitCode(2)
        }
        let known = configuration.destinations.map(\.name)
        if let unknown = names.first(where: { !known.contains($0) }) {
            print("no destination named \"\(unknown)\"; configured: \(known.isEmpty ? "none" : known.joined(separator: ", "))", to: &standardError)
            throw ExitCode(2)
        }
        let selected = configuration.destinations.filter { names.isEmpty || names.contains($0.name) }
        guard !selected.isEmpty else {
            print("no destinations are configured (OTEL_EXPORTER_OTLP_* variables or `destinations` in the file)", to: &standardError)
            throw ExitCode(2)
        }
        var logger = Logger(label: "mlflow-otel-proxy") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .critical
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var resource = configuration.resource.attributes.filter { $0.key != "service.name" }
        resource.insert(KeyValuePair("service.name", configuration.resource.serviceName ?? "mlflow-otel-proxy"), at: 0)
        var failed = 0
        for destination in selected {
            let result = await DestinationCheck.run(destination, resourceAttributes: resource, client: client, logger: logger)
            let milliseconds = Double(result.latency.components.attoseconds) / 1e15 + Double(result.latency.components.seconds) * 1000
            print("\(result.succeeded ? "OK  " : "FAIL") \(result.destination)")
            print("     endpoint: \(result.endpoint) (\(result.transport))")
            // The answer's first lines, indented under the label.
            let lines = result.outcome.split(separator: "\n", omittingEmptySubsequences: true).prefix(6)
            print("     result:   " + lines.joined(separator: "\n               "))
            print("     latency:  \(Int(milliseconds.rounded())) ms")
            if let hint = result.hint { print("     hint:     \(hint)") }
            if !result.succeeded { failed += 1 }
        }
        try? await client.shutdown()
        print(failed == 0 ? "all \(selected.count) destination(s) accepted the trace" : "\(failed) of \(selected.count) destination(s) failed")
        if failed > 0 { throw ExitCode(1) }
    }
}

/// `healthcheck`: exit 0 when the admin listener's `/healthz` answers 200 (the container image's `HEALTHCHECK`,
/// so the image needs no curl).
struct HealthCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck",
        abstract: "Exit 0 when the proxy's /healthz answers (for a container HEALTHCHECK)."
    )

    @Option(help: "The admin listener's URL (default: http:// + MLFLOW_OTEL_PROXY_ADMIN_LISTEN, else http://127.0.0.1:9464).")
    var admin: String?

    @Option(help: "Seconds to wait for the answer (default 3).")
    var timeout: Int = 3

    func run() async throws {
        var standardError = FileHandle.standardError
        let listen = ProcessInfo.processInfo.environment["MLFLOW_OTEL_PROXY_ADMIN_LISTEN"].flatMap { $0.isEmpty || $0 == "off" ? nil : $0 }
        let base = admin ?? "http://" + (listen ?? "127.0.0.1:9464").replacingOccurrences(of: "0.0.0.0:", with: "127.0.0.1:")
        let url = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/healthz"
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var healthy = false
        do {
            let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(Int64(max(timeout, 1))))
            healthy = response.status == .ok
            if !healthy { print("\(url) answered \(response.status.code)", to: &standardError) }
        } catch {
            print("\(url) did not answer: \(error)", to: &standardError)
        }
        try? await client.shutdown()
        if !healthy { throw ExitCode(1) }
    }
}

extension FileHandle: @retroactive TextOutputStream {
    /// Lets `print(…, to:)` write to standard error.
    public func write(_ string: String) { write(Data(string.utf8)) }
}
