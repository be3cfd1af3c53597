import Delivery
import Foundation
import HTTPListener
import OTLPExport
import ProxySettings
import SharedSettings
import SpanShaping

/// Values given on the command line; each overrides its environment variable.
public struct CommandLineSettings: Sendable, Equatable {
    /// `--listen HOST:PORT`.
    public var listen: String?
    /// `--upstream URL`.
    public var upstream: String?
    /// `--traces-file PATH`.
    public var tracesFile: String?
    /// `--trace-info-wait SECONDS`.
    public var traceInfoWaitSeconds: Double?
    /// `--upstream-timeout SECONDS`.
    public var upstreamTimeoutSeconds: Double?
    /// `--attachments-dir PATH`.
    public var attachmentsDirectory: String?
    /// `--config FILE` (else `MLFLOW_OTEL_PROXY_CONFIG`).
    public var configFile: String?
    /// `--admin-listen HOST:PORT|off`.
    public var adminListen: String?
    /// `--shutdown-timeout SECONDS`.
    public var shutdownTimeoutSeconds: Double?
    /// Creates settings.
    public init(
        listen: String? = nil, upstream: String? = nil, tracesFile: String? = nil,
        traceInfoWaitSeconds: Double? = nil, upstreamTimeoutSeconds: Double? = nil, attachmentsDirectory: String? = nil,
        shutdownTimeoutSeconds: Double? = nil, configFile: String? = nil
    ) {
        self.listen = listen
        self.upstream = upstream
        self.tracesFile = tracesFile
        self.traceInfoWaitSeconds = traceInfoWaitSeconds
        self.upstreamTimeoutSeconds = upstreamTimeoutSeconds
        self.attachmentsDirectory = attachmentsDirectory
        self.shutdownTimeoutSeconds = shutdownTimeoutSeconds
        self.configFile = configFile
    }

    /// The same settings with the admin listener address.
    public func with(adminListen: String?) -> CommandLineSettings {
        var copy = self
        copy.adminListen = adminListen
        return copy
    }
}

extension ProxyConfiguration {
    /// Builds the configuration: defaults, then the environment (the same variables an MLflow application
    /// reads), then the configuration file, then command-line flags; each layer wins over the ones before.
    /// Destinations are the file's plus the one named `otlp` that the `OTEL_EXPORTER_OTLP_*` variables define
    /// (a file destination named `otlp` replaces it).
    ///
    /// - Parameters:
    ///   - environment: the process environment; empty values count as unset (OpenTelemetry rule).
    ///   - flags: command-line values.
    ///   - fileText: the configuration file's contents, when one is given (`--config`, `MLFLOW_OTEL_PROXY_CONFIG`).
    /// - Throws: ``ConfigurationError`` listing every bad variable, key or flag.
    public static func load(
        environment: [String: String], flags: CommandLineSettings = CommandLineSettings(), fileText: String? = nil
    ) throws(ConfigurationError) -> ProxyConfiguration {
        let env = EnvironmentReader(environment)
        var config = ProxyConfiguration()
        var dualExport = env.isTrue("MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT") || env.isTrue("MLFLOW_ENABLE_DUAL_EXPORT")
        var explicitMode: ExportMode?

        // Environment layer.
        if let text = env["MLFLOW_OTEL_PROXY_LISTEN"] { config.listen = try listenAddress(text, setting: "MLFLOW_OTEL_PROXY_LISTEN") }
        if let text = env["MLFLOW_OTEL_PROXY_ADMIN_LISTEN"] { config.adminListen = try adminAddress(text, setting: "MLFLOW_OTEL_PROXY_ADMIN_LISTEN") }
        config.upstreamHeaders = try upstreamCredentials(env)
        if let text = env["MLFLOW_TRACKING_URI"] { try setUpstream(&config, text, setting: "MLFLOW_TRACKING_URI", environment: environment) }
        config.upstreamTLS = try upstreamTLS(env)
        if let text = env["MLFLOW_OTEL_PROXY_TRUSTED_PROXIES"] {
            config.trustedProxies = try text.split(separator: ",").map { item throws(ConfigurationError) in
                guard let range = AddressRange(String(item)) else {
                    throw ConfigurationError(
                        setting: "MLFLOW_OTEL_PROXY_TRUSTED_PROXIES", reason: "\"\(item)\" is not an IP address or a CIDR range such as 10.0.0.0/8")
                }
                return range
            }
        }
        if let text = env["MLFLOW_OTEL_PROXY_ALLOW_UNAUTHENTICATED"] {
            guard ["true", "false"].contains(text.lowercased()) else {
                throw ConfigurationError(setting: "MLFLOW_OTEL_PROXY_ALLOW_UNAUTHENTICATED", reason: "expected true or false, got \"\(text)\"")
            }
            config.allowUnauthenticated = text.lowercased() == "true"
        }
        if let text = env["MLFLOW_OTEL_PROXY_ADMIN_TOKENS"] {
            config.adminTokens = text.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        }
        if let text = env["MLFLOW_OTEL_PROXY_INBOUND_TOKENS"] {
            config.inboundTokens = text.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        }
        if let seconds = try env.seconds(flag: nil, variable: "MLFLOW_OTEL_PROXY_TRACE_INFO_WAIT", flagName: "") { config.traceInfoWait = seconds }
        if let seconds = try env.seconds(flag: nil, variable: "MLFLOW_OTEL_PROXY_UPSTREAM_TIMEOUT", flagName: "") { config.upstreamTimeout = seconds }
        if let seconds = try env.seconds(flag: nil, variable: "MLFLOW_OTEL_PROXY_SHUTDOWN_TIMEOUT", flagName: "") { config.shutdownTimeout = seconds }
        if let size = try env.positiveInt("MLFLOW_OTEL_PROXY_MAX_TRACES_IN_FLIGHT") { config.assemblyLimits.maxTracesInFlight = size }
        if let size = try env.positiveInt("MLFLOW_OTEL_PROXY_MAX_SPANS_PER_TRACE") { config.assemblyLimits.maxSpansPerTrace = size }
        if let size = try env.positiveInt("MLFLOW_OTEL_PROXY_MAX_BYTES_HELD") { config.assemblyLimits.maxBytesHeld = size }
        config.attachmentsDirectory = env["MLFLOW_OTEL_PROXY_ATTACHMENTS_DIR"]
        if let size = try env.positiveInt("MLFLOW_OTEL_PROXY_ATTACHMENTS_MAX_BYTES") { config.attachmentsMaxBytes = size }
        config.localTracesFile = env["MLFLOW_OTEL_PROXY_TRACES_FILE"] ?? defaultLocalTracesFile
        if let size = try env.positiveInt("MLFLOW_OTEL_PROXY_MAX_CONNECTIONS") { config.limits.maxConnections = size }
        switch (env["MLFLOW_OTEL_PROXY_TLS_CERT_FILE"], env["MLFLOW_OTEL_PROXY_TLS_KEY_FILE"]) {
        case (let cert?, let key?): config.tls = ListenerTLS(certFile: cert, keyFile: key)
        case (nil, nil): break
        default:
            throw ConfigurationError(
                setting: "MLFLOW_OTEL_PROXY_TLS_CERT_FILE", reason: "TLS on the listener needs both MLFLOW_OTEL_PROXY_TLS_CERT_FILE and _KEY_FILE")
        }
        config.resource = try loadResource(env)
        config.delivery = try loadDelivery(env)
        if let destination = try loadTraceDestination(env) { config.destinations = [destination] }
        if let metrics = try loadMetrics(env) { config.metricsExports = [metrics] }

        // File layer.
        if let fileText {
            let file = try ConfigurationFile.parse(fileText, environment: environment)
            file.apply(to: &config)
            if let mode = file.mode { explicitMode = mode }
            if file.mode == .dual { dualExport = true }
            config.configFile = flags.configFile
        }

        // Flag layer.
        if let text = flags.listen { config.listen = try listenAddress(text, setting: "--listen") }
        if let text = flags.upstream { try setUpstream(&config, text, setting: "--upstream", environment: environment) }
        if let text = flags.adminListen { config.adminListen = try adminAddress(text, setting: "--admin-listen") }
        if let path = flags.tracesFile { config.localTracesFile = path }
        if let path = flags.attachmentsDirectory { config.attachmentsDirectory = path }
        if let seconds = try env.seconds(flag: flags.traceInfoWaitSeconds, variable: "", flagName: "--trace-info-wait") {
            config.traceInfoWait = seconds
        }
        if let seconds = try env.seconds(flag: flags.upstreamTimeoutSeconds, variable: "", flagName: "--upstream-timeout") {
            config.upstreamTimeout = seconds
        }
        if let seconds = try env.seconds(flag: flags.shutdownTimeoutSeconds, variable: "", flagName: "--shutdown-timeout") {
            config.shutdownTimeout = seconds
        }

        try decideMode(&config, explicit: explicitMode, dualExport: dualExport)
        if let upstream = config.upstream, pointsAtOwnListener(upstream, listen: config.listen) {
            throw ConfigurationError(
                setting: "upstream",
                reason: "the upstream \(upstream) is this proxy's own listener (\(config.listen)): every request would come back to the proxy. "
                    + "MLFLOW_TRACKING_URI is probably still exported in the shell that starts the proxy (applications point it at the "
                    + "proxy); set --upstream, MLFLOW_TRACKING_URI or upstream.url to the MLflow server's URL, or unset it to run standalone"
            )
        }
        for header in config.upstreamHeaders {
            // Sent as they are on every passed-through request: a broken one must stop start-up, not corrupt requests.
            if let problem = HeaderText.problem(name: header.key, value: header.value) {
                throw ConfigurationError(setting: "upstream.headers", reason: problem)
            }
        }
        if !config.allowUnauthenticated, config.inboundTokens.isEmpty, !config.listen.isLoopback,
            config.upstreamOAuth != nil || config.upstreamHeaders.contains(where: { $0.key.lowercased() == "authorization" })
        {
            throw ConfigurationError(
                setting: "inbound_auth",
                reason: "the proxy holds upstream credentials and listens on \(config.listen) without inbound authentication: anyone who "
                    + "reaches it would act on MLflow with those credentials. Set tokens (MLFLOW_OTEL_PROXY_INBOUND_TOKENS or "
                    + "inbound_auth.tokens), listen on loopback, or accept it with MLFLOW_OTEL_PROXY_ALLOW_UNAUTHENTICATED=true "
                    + "(inbound_auth.allow_unauthenticated: true)")
        }
        config.warnings +=
            portMismatchWarnings(config.destinations, signal: "traces")
            + portMismatchWarnings(config.metricsExports.map(\.destination), signal: "metrics")
        return config
    }

    /// Whether `upstream` names the proxy's own listener: the same port, on a loopback or wildcard address, the
    /// listener's own host, or (listening on all interfaces) this machine's host name. Port 0 never matches.
    static func pointsAtOwnListener(_ upstream: UpstreamURL, listen: ListenAddress) -> Bool {
        let upstreamPort = upstream.port ?? (upstream.scheme == "https" ? 443 : 80)
        guard listen.port != 0, upstreamPort == listen.port else { return false }
        let host = upstream.host.lowercased()
        let local =
            host == "localhost" || host.hasSuffix(".localhost") || host.hasPrefix("127.") || host == "::1" || host == "0.0.0.0" || host == "::"
        let wildcard = ["0.0.0.0", "::", ""].contains(listen.host)
        return local || host == listen.host.lowercased() || (wildcard && host == ProcessInfo.processInfo.hostName.lowercased())
    }

    /// A warning for each destination whose port is the other OTLP transport's well-known one (4317 is OTLP/gRPC,
    /// 4318 OTLP/HTTP): the most common reason why nothing arrives, since the proxy defaults to gRPC as MLflow does.
    static func portMismatchWarnings(_ destinations: [OTLPDestination], signal: String) -> [String] {
        destinations.compactMap { destination in
            let port = destination.endpoint.port
            let name = destination.name
            switch (destination.transportProtocol, port) {
            case (.grpc, 4318):
                return "\(signal) destination \(name) sends OTLP/gRPC to port 4318, the OTLP/HTTP port: nothing may arrive. "
                    + "Set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf (or protocol: http/protobuf in the file), or use port 4317"
            case (.httpProtobuf, 4317), (.httpJSON, 4317):
                return "\(signal) destination \(name) sends OTLP/HTTP to port 4317, the OTLP/gRPC port: nothing may arrive. "
                    + "Leave the protocol unset (MLflow's default is grpc), or use port 4318"
            default:
                return nil
            }
        }
    }

    /// The mode as MLflow decides it from what is configured, or as the file's `mode` says.
    private static func decideMode(_ config: inout ProxyConfiguration, explicit: ExportMode?, dualExport: Bool) throws(ConfigurationError) {
        let exporting = !config.destinations.isEmpty
        if explicit == .dual {
            // Asked for in the file: both sides must exist (the environment switch stays lenient, as in MLflow).
            var problems: [ConfigurationError.Problem] = []
            if config.upstream == nil { problems.append(.init(setting: "mode", reason: "dual needs an upstream")) }
            if !exporting { problems.append(.init(setting: "mode", reason: "dual needs at least one destination")) }
            if !problems.isEmpty { throw ConfigurationError(problems: problems) }
        }
        if let explicit, explicit != .dual {
            switch explicit {
            case .mlflowOnly:
                guard config.upstream != nil else { throw ConfigurationError(setting: "mode", reason: "mlflow-only needs an upstream") }
                if exporting { config.warnings.append("mode is mlflow-only: the configured destinations receive nothing") }
                config.destinations = []
            case .openTelemetryOnly:
                guard exporting else { throw ConfigurationError(setting: "mode", reason: "opentelemetry-only needs at least one destination") }
            default:
                break
            }
            config.mode = explicit
            config.localTracesFile = nil
            return
        }
        switch (exporting, config.upstream) {
        case (false, nil):
            config.mode = .standalone
            if dualExport { config.warnings.append("dual export is switched on but there is no upstream and no destination") }
            return
        case (false, .some):
            config.mode = .mlflowOnly
            if dualExport { config.warnings.append("dual export is switched on but no destination is configured; traces go to MLflow only") }
        case (true, nil):
            config.mode = .openTelemetryOnly
            if dualExport {
                config.warnings.append("dual export is switched on but no upstream is configured; the proxy answers the trace API itself")
            }
        case (true, .some):
            config.mode = dualExport ? .dual : .openTelemetryOnly
        }
        config.localTracesFile = nil
    }

    /// A gRPC endpoint: a URL (its scheme decides TLS, any path ignored) or `host:port` (plaintext only when
    /// `insecure`), as the OpenTelemetry specification describes.
    static func grpcEndpoint(_ text: String, insecure: Bool) -> UpstreamURL? {
        let lower = text.lowercased()
        let url =
            lower.hasPrefix("http://") || lower.hasPrefix("https://") ? UpstreamURL(text) : UpstreamURL((insecure ? "http://" : "https://") + text)
        return url.map { $0.with(path: "") }
    }

    /// An admin address, or `nil` for `off`.
    static func adminAddress(_ text: String, setting: String) throws(ConfigurationError) -> ListenAddress? {
        if ["off", "none", "false"].contains(text.lowercased()) { return nil }
        return try listenAddress(text, setting: setting)
    }

    static func listenAddress(_ text: String, setting: String) throws(ConfigurationError) -> ListenAddress {
        guard let address = ListenAddress.parse(text) else {
            throw ConfigurationError(setting: setting, reason: "expected HOST:PORT, got \"\(text)\"")
        }
        return address
    }

    /// Sets the upstream from a tracking URI: an http(s) URL, or `databricks` / `databricks://PROFILE`, resolved as
    /// MLflow's client resolves it (the workspace becomes the upstream, its credentials the upstream's).
    static func setUpstream(
        _ config: inout ProxyConfiguration, _ text: String, setting: String, environment: [String: String]
    ) throws(ConfigurationError) {
        guard let profile = DatabricksUpstream.profile(inTrackingURI: text) else {
            config.upstream = try upstreamURL(text, setting: setting)
            config.upstreamOAuth = nil
            return
        }
        apply(try DatabricksUpstream.resolve(profile: profile, environment: environment, setting: setting), to: &config)
    }

    /// A resolved Databricks workspace as the upstream: its token replaces any other upstream `Authorization`.
    static func apply(_ workspace: DatabricksUpstream.Resolved, to config: inout ProxyConfiguration) {
        config.upstream = workspace.host
        config.upstreamOAuth = workspace.oauth
        config.upstreamHeaders.removeAll { $0.key.lowercased() == "authorization" }
        config.upstreamHeaders += workspace.headers
    }

    static func upstreamURL(_ text: String, setting: String) throws(ConfigurationError) -> UpstreamURL {
        guard let url = UpstreamURL(text) else {
            throw ConfigurationError(
                setting: setting, reason: "the upstream must be an http:// or https:// URL of an MLflow server without credentials, query or fragment"
            )
        }
        return url
    }

    /// The MLflow client's TLS variables, meaning on the proxy what they mean in an application: a CA bundle to
    /// verify the server with, a client certificate (a PEM file holding the certificate and its key, as `requests`
    /// takes it), or no verification at all (which MLflow does not allow together with a CA bundle).
    private static func upstreamTLS(_ env: EnvironmentReader) throws(ConfigurationError) -> TLSSettings {
        var tls = TLSSettings()
        if let text = env["MLFLOW_TRACKING_INSECURE_TLS"] {
            guard ["true", "false"].contains(text.lowercased()) else {
                throw ConfigurationError(setting: "MLFLOW_TRACKING_INSECURE_TLS", reason: "expected true or false, got \"\(text)\"")
            }
            tls.insecureSkipVerify = text.lowercased() == "true"
        }
        tls.caFile = try env.readableFile(("MLFLOW_TRACKING_SERVER_CERT_PATH", env["MLFLOW_TRACKING_SERVER_CERT_PATH"]))
        if let clientCert = try env.readableFile(("MLFLOW_TRACKING_CLIENT_CERT_PATH", env["MLFLOW_TRACKING_CLIENT_CERT_PATH"])) {
            (tls.certFile, tls.keyFile) = (clientCert, clientCert)
        }
        if tls.insecureSkipVerify && tls.caFile != nil {
            throw ConfigurationError(
                setting: "MLFLOW_TRACKING_INSECURE_TLS",
                reason: "cannot be true together with MLFLOW_TRACKING_SERVER_CERT_PATH (as in the MLflow client): "
                    + "verify with the CA bundle, or not at all")
        }
        return tls
    }

    /// `MLFLOW_TRACKING_TOKEN` (Bearer) or `MLFLOW_TRACKING_USERNAME` + `MLFLOW_TRACKING_PASSWORD` (Basic), as the
    /// MLflow client reads them: on the proxy they authenticate the proxy's upstream requests.
    private static func upstreamCredentials(_ env: EnvironmentReader) throws(ConfigurationError) -> [KeyValuePair] {
        if let token = env["MLFLOW_TRACKING_TOKEN"] { return [KeyValuePair("Authorization", "Bearer \(token)")] }
        switch (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) {
        case (let user?, let password?):
            return [KeyValuePair("Authorization", "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())]
        case (.some, nil):
            throw ConfigurationError(setting: "MLFLOW_TRACKING_PASSWORD", reason: "MLFLOW_TRACKING_USERNAME is set, so a password is needed too")
        default:
            return []
        }
    }

    private static func loadResource(_ env: EnvironmentReader) throws(ConfigurationError) -> ResourceSettings {
        var resource = ResourceSettings()
        resource.serviceName = env["OTEL_SERVICE_NAME"]
        if let text = env["OTEL_RESOURCE_ATTRIBUTES"] {
            resource.attributes = try KeyValueListParser.parse(text, setting: "OTEL_RESOURCE_ATTRIBUTES", showsValues: true)
        }
        return resource
    }

    private static func loadDelivery(_ env: EnvironmentReader) throws(ConfigurationError) -> DeliverySettings {
        var delivery = DeliverySettings()
        if let delay = try env.milliseconds("OTEL_BSP_SCHEDULE_DELAY") { delivery.scheduleDelay = delay ?? .zero }
        if let size = try env.positiveInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") { delivery.maxExportBatchSize = size }
        if let size = try env.positiveInt("OTEL_BSP_MAX_QUEUE_SIZE") { delivery.maxQueueSize = size }
        if let size = try env.positiveInt("MLFLOW_OTEL_PROXY_QUEUE_MAX_BYTES") { delivery.maxQueueBytes = size }
        if let text = env["MLFLOW_OTEL_PROXY_QUEUE_FULL_POLICY"] {
            guard let policy = QueueFullPolicy(rawValue: text) else {
                throw ConfigurationError(
                    setting: "MLFLOW_OTEL_PROXY_QUEUE_FULL_POLICY",
                    reason: "expected one of \(QueueFullPolicy.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\"")
            }
            delivery.fullPolicy = policy
        }
        if let directory = env["MLFLOW_OTEL_PROXY_SPOOL_DIR"] {
            var spool = SpoolSettings(directory: directory)
            if let size = try env.positiveInt("MLFLOW_OTEL_PROXY_SPOOL_MAX_BYTES") { spool.maxBytes = size }
            spool.fsync = env.isTrue("MLFLOW_OTEL_PROXY_SPOOL_FSYNC")
            delivery.spool = spool
        }
        let retryVariables: [(String, WritableKeyPath<RetryPolicy, Duration>)] = [
            ("MLFLOW_OTEL_PROXY_RETRY_INITIAL_INTERVAL", \.initialInterval), ("MLFLOW_OTEL_PROXY_RETRY_MAX_INTERVAL", \.maxInterval),
        ]
        for (variable, keyPath) in retryVariables {
            if let seconds = try env.seconds(flag: nil, variable: variable, flagName: "") { delivery.retry[keyPath: keyPath] = seconds }
        }
        if let seconds = try env.seconds(flag: nil, variable: "MLFLOW_OTEL_PROXY_RETRY_MAX_ELAPSED_TIME", flagName: "") {
            delivery.retry.maxElapsedTime = seconds == .zero ? nil : seconds
        }
        if delivery.maxExportBatchSize > delivery.maxQueueSize {
            throw ConfigurationError(
                setting: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", reason: "must not exceed OTEL_BSP_MAX_QUEUE_SIZE (\(delivery.maxQueueSize))")
        }
        return delivery
    }

    /// The one trace destination the standard `OTEL_EXPORTER_OTLP_*` variables define (named `otlp`), or `nil`
    /// when no endpoint is set or MLflow's `MLFLOW_ENABLE_OTLP_EXPORTER=false` says to ignore them.
    private static func loadTraceDestination(_ env: EnvironmentReader) throws(ConfigurationError) -> OTLPDestination? {
        if let flag = env["MLFLOW_ENABLE_OTLP_EXPORTER"], flag.lowercased() == "false" { return nil }
        // Read (and checked) whether or not an endpoint is set: a bad value is an error either way.
        let (disabled, ratio, limits) = (try sdkDisabled(env), try samplerRatio(env), try sdkSpanLimits(env))
        if disabled { return nil }
        guard var destination = try loadSignalDestination(env, signal: "TRACES", name: "otlp") else { return nil }
        destination.policy.routing.sampleRatio = ratio
        destination.policy.limits = limits
        // MLflow's own switch means what it means in an application: GenAI attributes instead of MLflow's.
        if env.isTrue("MLFLOW_ENABLE_OTEL_GENAI_SEMCONV") { destination.policy.conventions = [.genai] }
        if let text = env["MLFLOW_OTEL_PROXY_SEMCONV"] {
            var conventions: [SemanticConvention] = []
            for name in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
                guard let convention = SemanticConvention(rawValue: name) else {
                    throw ConfigurationError(
                        setting: "MLFLOW_OTEL_PROXY_SEMCONV",
                        reason: "unknown convention \"\(name)\", expected a comma-separated list of mlflow, genai, openinference")
                }
                if !conventions.contains(convention) { conventions.append(convention) }
            }
            if conventions.isEmpty {
                throw ConfigurationError(setting: "MLFLOW_OTEL_PROXY_SEMCONV", reason: "needs at least one of mlflow, genai, openinference")
            }
            destination.policy.conventions = conventions
        }
        return destination
    }

    /// `OTEL_SDK_DISABLED=true`: as in an application whose OpenTelemetry SDK is off, the `OTEL_EXPORTER_OTLP_*`
    /// variables export nothing (traces go to MLflow only; destinations from the file are not affected).
    static func sdkDisabled(_ env: EnvironmentReader) throws(ConfigurationError) -> Bool {
        guard let text = env["OTEL_SDK_DISABLED"] else { return false }
        guard ["true", "false"].contains(text.lowercased()) else {
            throw ConfigurationError(setting: "OTEL_SDK_DISABLED", reason: "expected true or false, got \"\(text)\"")
        }
        return text.lowercased() == "true"
    }

    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` as the share of traces the variables' destination gets,
    /// decided by trace id as `traceidratio` decides it. Every uploaded trace has its root span, so the
    /// `parentbased_*` samplers decide as their root sampler does.
    static func samplerRatio(_ env: EnvironmentReader) throws(ConfigurationError) -> Double {
        let sampler = env["OTEL_TRACES_SAMPLER"]?.lowercased() ?? "parentbased_always_on"
        func argument() throws(ConfigurationError) -> Double {
            guard let text = env["OTEL_TRACES_SAMPLER_ARG"] else { return 1 }
            guard let ratio = Double(text), ratio.isFinite, (0...1).contains(ratio) else {
                throw ConfigurationError(setting: "OTEL_TRACES_SAMPLER_ARG", reason: "expected a ratio from 0 to 1, got \"\(text)\"")
            }
            return ratio
        }
        switch sampler {
        case "always_on", "parentbased_always_on": return 1
        case "always_off", "parentbased_always_off": return 0
        case "traceidratio", "parentbased_traceidratio": return try argument()
        default:
            throw ConfigurationError(
                setting: "OTEL_TRACES_SAMPLER",
                reason: "unsupported sampler \"\(sampler)\", expected always_on, always_off, traceidratio, parentbased_always_on, "
                    + "parentbased_always_off or parentbased_traceidratio")
        }
    }

    /// The OpenTelemetry SDK's span limits as the variables' destination's size limits: value length
    /// (`OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, else `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`), attribute count
    /// (`OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, else `OTEL_ATTRIBUTE_COUNT_LIMIT`) and event count
    /// (`OTEL_SPAN_EVENT_COUNT_LIMIT`). Unset: no limit (the application's SDK applied its own already).
    static func sdkSpanLimits(_ env: EnvironmentReader) throws(ConfigurationError) -> SpanSizeLimits {
        var limits = SpanSizeLimits()
        for name in ["OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"] where limits.maxAttributeValueLength == nil {
            if let value = try env.positiveInt(name) {
                guard value >= 64 else {
                    throw ConfigurationError(setting: name, reason: "must be at least 64 (a shorter limit leaves no JSON readable), got \(value)")
                }
                limits.maxAttributeValueLength = value
            }
        }
        for name in ["OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"] where limits.maxAttributesPerSpan == nil {
            limits.maxAttributesPerSpan = try env.positiveInt(name)
        }
        limits.maxEventsPerSpan = try env.positiveInt("OTEL_SPAN_EVENT_COUNT_LIMIT")
        return limits
    }

    /// A destination from the `OTEL_EXPORTER_OTLP_<SIGNAL>_*` variables, each falling back to its generic
    /// `OTEL_EXPORTER_OTLP_*` form, as the OpenTelemetry specification says: the signal's endpoint is used as is,
    /// the generic one gets `v1/<signal>` appended; gRPC endpoints have no path (a URL, or `host:port` that is
    /// plaintext only when insecure). `nil` when neither endpoint is set.
    static func loadSignalDestination(_ env: EnvironmentReader, signal: String, name: String) throws(ConfigurationError) -> OTLPDestination? {
        func variable(_ suffix: String) -> (String, String?) { env.signalSpecific(suffix, signal: signal) }
        let (protocolSetting, protocolText) = variable("PROTOCOL")
        // MLflow's exporters default to gRPC (`_get_otlp_protocol(default_value="grpc")`), not the specification's
        // http/protobuf: a set-up moved from an application to the proxy must mean the same.
        var transport = OTLPProtocol.grpc
        if let protocolText {
            guard let value = OTLPProtocol(rawValue: protocolText) else {
                throw ConfigurationError(
                    setting: protocolSetting, reason: "unknown protocol \"\(protocolText)\", expected one of grpc, http/protobuf, http/json")
            }
            transport = value
        }
        let (insecureSetting, insecureText) = variable("INSECURE")
        var insecure = false
        if let insecureText {
            guard ["true", "false"].contains(insecureText.lowercased()) else {
                throw ConfigurationError(setting: insecureSetting, reason: "expected true or false, got \"\(insecureText)\"")
            }
            insecure = insecureText.lowercased() == "true"
        }

        let signalVariable = "OTEL_EXPORTER_OTLP_\(signal)_ENDPOINT"
        let (endpointSetting, endpointText): (String, String)
        if let text = env[signalVariable] {
            (endpointSetting, endpointText) = (signalVariable, text)
        } else if let text = env["OTEL_EXPORTER_OTLP_ENDPOINT"] {
            (endpointSetting, endpointText) = ("OTEL_EXPORTER_OTLP_ENDPOINT", text)
        } else {
            return nil
        }
        let endpoint: UpstreamURL
        if transport == .grpc {
            guard let url = grpcEndpoint(endpointText, insecure: insecure) else {
                throw ConfigurationError(
                    setting: endpointSetting,
                    reason: UpstreamURL.rejectionReason(endpointText, expected: "expected host:port or an http:// or https:// URL"))
            }
            endpoint = url
        } else {
            guard let url = UpstreamURL(endpointText) else {
                throw ConfigurationError(
                    setting: endpointSetting, reason: UpstreamURL.rejectionReason(endpointText, expected: "expected an http:// or https:// URL"))
            }
            if endpointSetting == signalVariable {
                endpoint = url.path.isEmpty ? url.with(path: "/") : url
            } else {
                endpoint = url.with(path: (url.path.hasSuffix("/") ? url.path : url.path + "/") + "v1/\(signal.lowercased())")
            }
        }

        var destination = OTLPDestination(name: name, endpoint: endpoint, transportProtocol: transport)
        destination.tls.insecure = insecure
        let (headersSetting, headersText) = variable("HEADERS")
        if let headersText {
            destination.headers = try KeyValueListParser.parse(headersText, setting: headersSetting, showsValues: false)
        }
        let (compressionSetting, compressionText) = variable("COMPRESSION")
        if let compressionText {
            guard let value = OTLPCompression(rawValue: compressionText.lowercased()) else {
                throw ConfigurationError(setting: compressionSetting, reason: "unknown compression \"\(compressionText)\", expected gzip or none")
            }
            destination.compression = value
        }
        let (timeoutSetting, timeoutText) = variable("TIMEOUT")
        if let timeoutText {
            guard let millis = Int(timeoutText), millis >= 0 else {
                throw ConfigurationError(setting: timeoutSetting, reason: "expected a whole number of milliseconds, got \"\(timeoutText)\"")
            }
            destination.timeout = millis == 0 ? nil : .milliseconds(millis)
        }
        destination.tls.caFile = try env.readableFile(variable("CERTIFICATE"))
        destination.tls.certFile = try env.readableFile(variable("CLIENT_CERTIFICATE"))
        destination.tls.keyFile = try env.readableFile(variable("CLIENT_KEY"))
        if (destination.tls.certFile == nil) != (destination.tls.keyFile == nil) {
            throw ConfigurationError(
                setting: "OTEL_EXPORTER_OTLP_\(signal)_CLIENT_CERTIFICATE", reason: "mutual TLS needs both a client certificate and a client key"
            )
        }
        return destination
    }
}

/// Reads the environment with the OpenTelemetry rule that an empty value is unset.
struct EnvironmentReader {
    let values: [String: String]
    init(_ values: [String: String]) { self.values = values }

    subscript(name: String) -> String? {
        guard let value = values[name]?.trimmingWhitespace(), !value.isEmpty else { return nil }
        return value
    }

    /// `true` only for a case-insensitive "true" (OpenTelemetry's boolean rule).
    func isTrue(_ name: String) -> Bool { self[name]?.lowercased() == "true" }

    /// The signal-specific variable if set, else the generic one, with the name of the one used.
    func signalSpecific(_ suffix: String, signal: String = "TRACES") -> (String, String?) {
        let specific = "OTEL_EXPORTER_OTLP_\(signal)_\(suffix)"
        if let value = self[specific] { return (specific, value) }
        let generic = "OTEL_EXPORTER_OTLP_\(suffix)"
        return (generic, self[generic])
    }

    /// A millisecond variable: `nil` when unset, `.some(nil)` for 0.
    func milliseconds(_ name: String) throws(ConfigurationError) -> Duration?? {
        guard let text = self[name] else { return nil }
        guard let millis = Int(text), millis >= 0 else {
            throw ConfigurationError(setting: name, reason: "expected a whole number of milliseconds, got \"\(text)\"")
        }
        return .some(millis == 0 ? nil : .milliseconds(millis))
    }

    /// A file path variable that must name a readable file.
    func readableFile(_ entry: (String, String?)) throws(ConfigurationError) -> String? {
        guard let path = entry.1 else { return nil }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw ConfigurationError(setting: entry.0, reason: "cannot read the file \(path)")
        }
        return path
    }

    func positiveInt(_ name: String) throws(ConfigurationError) -> Int? {
        guard let text = self[name] else { return nil }
        guard let value = Int(text), value > 0 else {
            throw ConfigurationError(setting: name, reason: "expected a positive whole number, got \"\(text)\"")
        }
        return value
    }

    func seconds(flag: Double?, variable: String, flagName: String) throws(ConfigurationError) -> Duration? {
        if let flag {
            guard let duration = Duration.checkedSeconds(flag) else {
                throw ConfigurationError(setting: flagName, reason: "expected a number of seconds from 0 to \(Int(Duration.maximumSeconds))")
            }
            return duration
        }
        guard !variable.isEmpty, let text = self[variable] else { return nil }
        guard let value = Double(text), let duration = Duration.checkedSeconds(value) else {
            throw ConfigurationError(
                setting: variable, reason: "expected a number of seconds from 0 to \(Int(Duration.maximumSeconds)), got \"\(text)\"")
        }
        return duration
    }
}

/// Parses the W3C-Baggage-like `key1=value1,key2=value2` lists of `OTEL_EXPORTER_OTLP_HEADERS` and
/// `OTEL_RESOURCE_ATTRIBUTES`, percent-decoding keys and values.
public enum KeyValueListParser {
    /// Parses `text`.
    /// - Parameters:
    ///   - setting: the variable name, for errors.
    ///   - showsValues: `false` for secrets: errors then name the entry's position, never its text.
    public static func parse(_ text: String, setting: String, showsValues: Bool) throws(ConfigurationError) -> [KeyValuePair] {
        var pairs: [KeyValuePair] = []
        for (index, rawEntry) in text.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let entry = rawEntry.trimmingWhitespace()
            if entry.isEmpty { continue }
            let shown = showsValues ? " (\"\(entry)\")" : ""
            guard let equals = entry.firstIndex(of: "=") else {
                throw ConfigurationError(setting: setting, reason: "entry \(index + 1)\(shown) is not of the form key=value")
            }
            guard let key = PercentDecoding.decode(entry[..<equals].trimmingWhitespace()),
                let value = PercentDecoding.decode(entry[entry.index(after: equals)...].trimmingWhitespace())
            else {
                throw ConfigurationError(setting: setting, reason: "entry \(index + 1)\(shown) has an invalid percent-encoding")
            }
            guard !key.isEmpty else {
                throw ConfigurationError(setting: setting, reason: "entry \(index + 1)\(shown) has an empty key")
            }
            pairs.append(KeyValuePair(key, value))
        }
        return pairs
    }
}

/// RFC 3986 percent-decoding into UTF-8 text.
enum PercentDecoding {
    static func decode(_ text: some StringProtocol) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and newlines.
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
