import Delivery
import HTTPListener
import OTLPExport
import SharedSettings
import UpstreamAccess

/// The proxy's complete, validated settings.
///
/// Built once at start-up by ``ProxyConfiguration/load(environment:flags:)`` from the proxy's own
/// environment (the same variables an MLflow application would set) and its command-line flags.
/// Flags win over environment variables.
public struct ProxyConfiguration: Sendable, Equatable {
    /// Where the proxy listens. Flag `--listen`, variable `MLFLOW_OTEL_PROXY_LISTEN`; default `127.0.0.1:5000`.
    public var listen: ListenAddress
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`, `/status`). Flag `--admin-listen`, variable
    /// `MLFLOW_OTEL_PROXY_ADMIN_LISTEN`, file `admin_listen`; default `127.0.0.1:9464`; `off` disables it.
    public var adminListen: ListenAddress? = ListenAddress(host: "127.0.0.1", port: 9464)
    /// The real MLflow server, or `nil` for standalone. Flag `--upstream`, else `MLFLOW_TRACKING_URI`.
    public var upstream: UpstreamURL?
    /// How trace uploads are handled, decided as MLflow decides it (wire doc §10).
    public var mode: ExportMode
    /// Where exported traces go: every destination gets every trace (fan-out).
    public var destinations: [OTLPDestination]
    /// OTLP metrics exports: the one the `OTEL_EXPORTER_OTLP_METRICS_*` variables describe (named `metrics`),
    /// and one for each file destination with `metrics: { enabled: true }`.
    public var metricsExports: [MetricsSettings] = []
    /// The env-described metrics export, if any.
    public var metrics: MetricsSettings? { metricsExports.first { $0.destination.name == "metrics" } }
    /// Standalone without destinations: the file traces are appended to as OTLP/JSON lines.
    public var localTracesFile: String?
    /// Headers added to every upstream request (for example `Authorization: Bearer …` for an MLflow server
    /// with authentication); never sent to a destination, never logged.
    public var upstreamHeaders: [KeyValuePair] = []
    /// TLS towards an `https` upstream, as the MLflow client reads it: `MLFLOW_TRACKING_SERVER_CERT_PATH` (CA bundle),
    /// `MLFLOW_TRACKING_CLIENT_CERT_PATH` (client certificate and key, PEM), `MLFLOW_TRACKING_INSECURE_TLS`, or the
    /// file's `upstream.tls` (`ca_file`, `cert_file`, `key_file`, `insecure_skip_verify`). Needs a restart to change.
    public var upstreamTLS = TLSSettings()
    /// OAuth machine-to-machine credentials the upstream's access tokens come from (a Databricks service
    /// principal); `nil` when the upstream takes fixed headers or none.
    public var upstreamOAuth: OAuthClientCredentials?
    /// Peers whose `X-Forwarded-For`, `-Proto` and `-Host` are passed on (extended); from anyone else they are
    /// replaced with what the proxy saw. Variable `MLFLOW_OTEL_PROXY_TRUSTED_PROXIES`, file `trusted_proxies`
    /// (addresses or CIDR ranges); default none.
    public var trustedProxies: [AddressRange] = []
    /// Tokens applications must present to use the proxy (`MLFLOW_OTEL_PROXY_INBOUND_TOKENS`, comma-separated,
    /// or the file's `inbound_auth.tokens`); empty: no inbound authentication. Never logged.
    public var inboundTokens: [String] = []
    /// Start even though upstream credentials are configured, inbound authentication is off and the listener is not
    /// on loopback (anyone who reaches the proxy then acts with those credentials). Variable
    /// `MLFLOW_OTEL_PROXY_ALLOW_UNAUTHENTICATED`, file `inbound_auth.allow_unauthenticated`; default `false`.
    public var allowUnauthenticated = false
    /// Tokens `/status` and `/metrics` on the admin listener require (`Authorization: Bearer`); `/healthz` and
    /// `/readyz` stay open for probes. Variable `MLFLOW_OTEL_PROXY_ADMIN_TOKENS`, file `admin.tokens`; none: open.
    /// Never logged.
    public var adminTokens: [String] = []
    /// What happens to a client's own `Authorization` header when `upstreamHeaders` sets one.
    public var clientAuthorization: ClientAuthorizationPolicy = .keep
    /// The configuration file the settings came from, if any.
    public var configFile: String?
    /// The OTel resource the proxy puts on exported spans (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`).
    public var resource: ResourceSettings
    /// Batching of exported spans (`OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_MAX_QUEUE_SIZE`).
    public var delivery: DeliverySettings
    /// Each destination's own `retry_on_failure` and `sending_queue` keys, by destination name (file destinations
    /// only); ``delivery(for:)`` gives the settings a destination runs with.
    public var destinationDelivery: [String: DeliveryOverrides] = [:]

    /// The delivery settings `destination` runs with: the proxy-wide ones with its own keys over them.
    public func delivery(for destination: OTLPDestination) -> DeliverySettings {
        (destinationDelivery[destination.name] ?? DeliveryOverrides()).applied(to: delivery)
    }
    /// How long a trace waits for its missing parts (spans or trace info) before it is exported anyway.
    /// Flag `--trace-info-wait` (seconds), variable `MLFLOW_OTEL_PROXY_TRACE_INFO_WAIT`; default 10 s.
    public var traceInfoWait: Duration
    /// Per-attempt timeout of upstream requests. Flag `--upstream-timeout` (seconds); default 120 s,
    /// the MLflow client's own request timeout.
    public var upstreamTimeout: Duration
    /// The largest trace-upload body the proxy buffers to read (OTLP's recommended 64 MiB).
    public var maxTraceBodyBytes: Int
    /// Bounds of trace assembly (`MLFLOW_OTEL_PROXY_MAX_TRACES_IN_FLIGHT`, `…_MAX_SPANS_PER_TRACE`, `…_MAX_BYTES_HELD`).
    public var assemblyLimits = AssemblyLimits()
    /// How long a graceful shutdown (SIGTERM/SIGINT) may take: stop accepting, release held traces, flush the
    /// export queue. Past it, exports still running are cancelled and their spans counted as dropped.
    /// Flag `--shutdown-timeout` (seconds), variable `MLFLOW_OTEL_PROXY_SHUTDOWN_TIMEOUT`; default 10 s.
    public var shutdownTimeout: Duration = .seconds(10)
    /// Where trace attachments are stored when the proxy answers uploads itself (`--attachments-dir`,
    /// `MLFLOW_OTEL_PROXY_ATTACHMENTS_DIR`); `nil` (the default): accepted and discarded, counted.
    public var attachmentsDirectory: String?
    /// The most bytes kept in `attachmentsDirectory` (`MLFLOW_OTEL_PROXY_ATTACHMENTS_MAX_BYTES`, default 1 GiB);
    /// attachments beyond it are discarded, counted and logged.
    public var attachmentsMaxBytes = 1024 * 1024 * 1024
    /// Limits every connection to the main listener obeys (the file's `limits` key, some variables).
    public var limits = ConnectionLimits()
    /// TLS on the main listener (`tls: { cert_file, key_file }`, `MLFLOW_OTEL_PROXY_TLS_CERT_FILE`/`_KEY_FILE`);
    /// `nil`: plain HTTP.
    public var tls: ListenerTLS?
    /// TLS on the admin listener (`admin_tls`), independent of the main listener's.
    public var adminTLS: ListenerTLS?
    /// Warnings found while loading (for example a dual-export switch without an upstream); logged at start-up.
    public var warnings: [String]

    /// A configuration with every default and no upstream or destination (the standalone demo).
    public init(
        listen: ListenAddress = .default,
        upstream: UpstreamURL? = nil,
        mode: ExportMode = .standalone,
        destinations: [OTLPDestination] = [],
        localTracesFile: String? = ProxyConfiguration.defaultLocalTracesFile,
        resource: ResourceSettings = ResourceSettings(),
        delivery: DeliverySettings = DeliverySettings(),
        traceInfoWait: Duration = .seconds(10),
        upstreamTimeout: Duration = .seconds(120),
        maxTraceBodyBytes: Int = 64 * 1024 * 1024,
        warnings: [String] = []
    ) {
        self.listen = listen
        self.upstream = upstream
        self.mode = mode
        self.destinations = destinations
        self.localTracesFile = localTracesFile
        self.resource = resource
        self.delivery = delivery
        self.traceInfoWait = traceInfoWait
        self.upstreamTimeout = upstreamTimeout
        self.maxTraceBodyBytes = maxTraceBodyBytes
        self.warnings = warnings
    }

    /// One line per setting for the start-up log; header values are never included.
    public var summary: String {
        var parts = ["mode=\(mode.rawValue)", "listen=\(listen)"]
        if let configFile { parts.append("config=\(configFile)") }
        parts.append("admin=\(adminListen?.description ?? "off")")
        parts.append("upstream=\(upstream?.description ?? "none (standalone)")")
        if !upstreamHeaders.isEmpty { parts.append("upstream-headers=\(upstreamHeaders.map { "\($0.key)=***" }.joined(separator: ","))") }
        if let upstreamOAuth { parts.append("upstream-auth=\(upstreamOAuth)") }
        for destination in destinations { parts.append("destination=\(destination.redactedDescription)") }
        if let metrics {
            parts.append("metrics=\(metrics.destination.redactedDescription) every \(metrics.interval) \(metrics.temporality.rawValue)")
        }
        if let localTracesFile { parts.append("traces-file=\(localTracesFile)") }
        if destinations.isEmpty && localTracesFile == nil { parts.append("destination=none (trace calls pass through)") }
        return parts.joined(separator: " ")
    }

    /// The default file of the standalone demo.
    public static let defaultLocalTracesFile = "./mlflow-otel-proxy-traces.jsonl"
}

/// Bounds of trace assembly; when one is hit the proxy exports what it has, counts it by reason and logs it.
public struct AssemblyLimits: Sendable, Equatable {
    /// Traces held at once (default 10,000).
    public var maxTracesInFlight = 10_000
    /// Spans one trace may hold before it is exported as it is (default 10,000).
    public var maxSpansPerTrace = 10_000
    /// Upload bytes held by waiting traces (default 256 MiB).
    public var maxBytesHeld = 256 * 1024 * 1024
    /// Creates the defaults.
    public init() {}
}

/// The resource settings from `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`.
public struct ResourceSettings: Sendable, Equatable {
    /// `OTEL_SERVICE_NAME`; wins over a `service.name` in the attributes.
    public var serviceName: String?
    /// `OTEL_RESOURCE_ATTRIBUTES`, percent-decoded, in their given order.
    public var attributes: [KeyValuePair]
    /// Creates settings.
    public init(serviceName: String? = nil, attributes: [KeyValuePair] = []) {
        self.serviceName = serviceName
        self.attributes = attributes
    }
}
