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

/// Limits on what one client connection may cost; each is answered with a clear error when hit.
///
/// The defaults follow nginx's (`client_header_timeout`/`client_body_timeout` 60 s, `keepalive_timeout` 75 s)
/// with room for MLflow's large trace uploads.
public struct ConnectionLimits: Sendable, Equatable {
    /// The largest request head (request line and headers), in bytes; beyond it the answer is 431. Default 64 KiB.
    public var maxHeaderBytes = 64 * 1024
    /// How long a request may take to arrive: its head from its first byte, and its body between two reads.
    /// A head that misses it gets 408; a stalled body has its connection closed. Default 60 s.
    public var requestReadTimeout: Duration = .seconds(60)
    /// How long a whole request (head and body) may take to arrive, from the head's first byte; `nil`: no cap.
    /// A request that misses it has its connection closed (408 if the application has not answered). Default 1 h,
    /// room for multi-gigabyte artifact uploads passed through to the upstream.
    public var requestTimeout: Duration? = .seconds(3600)
    /// The slowest a request body may arrive, in bytes per second of time the proxy spent waiting for it (time the
    /// proxy itself held the body back, e.g. behind a slow upstream, does not count), judged once
    /// ``minBodyRateGracePeriod`` has passed; `nil`: no minimum. Default 1 KiB/s (Apache's `mod_reqtimeout` uses
    /// 500 B/s, Kestrel 240 B/s; 1 KiB/s still passes a 64 MiB upload in 18 hours).
    public var minBodyBytesPerSecond: Int? = 1024
    /// How long a body may arrive at any rate before ``minBodyBytesPerSecond`` is judged. Default 10 s.
    public var minBodyRateGracePeriod: Duration = .seconds(10)
    /// How long an answer may wait for the client to read it (the connection's send buffer full the whole time);
    /// the connection is then closed, which also frees the upstream connection of a passthrough answer; `nil`:
    /// forever. Default 60 s (nginx's `send_timeout`).
    public var responseWriteTimeout: Duration? = .seconds(60)
    /// How long a keep-alive connection may wait for its next request; `nil`: forever. Default 75 s.
    public var idleTimeout: Duration? = .seconds(75)
    /// Connections served at once. A connection over the limit closes the oldest connection that is idle, still
    /// sending its head, or sending its body below ``minBodyBytesPerSecond`` (as nginx reuses idle
    /// connections); when every connection is busy it gets 503 with `Retry-After` and is closed. Default 1024.
    public var maxConnections = 1024
    /// Request bodies held in memory at once, over all connections (trace uploads are read whole before they are
    /// decoded); a request that would go over gets 503 with `Retry-After`. Default 256 MiB.
    public var maxBodyBytesInMemory = 256 * 1024 * 1024
    /// The largest body of a request passed through to the upstream (artifact uploads included); `nil`: no
    /// cap, the body streams. Beyond it the answer is 413.
    public var maxPassthroughBodyBytes: Int?
    /// Creates the defaults.
    public init() {}
}

/// A certificate chain and private key (PEM files) a listener presents.
public struct ListenerTLS: Sendable, Equatable {
    /// The certificate chain, leaf first.
    public var certFile: String
    /// The private key.
    public var keyFile: String
    /// Creates settings.
    public init(certFile: String, keyFile: String) {
        self.certFile = certFile
        self.keyFile = keyFile
    }
}

/// How trace uploads are handled; the names follow MLflow's "OpenTelemetry Export" page.
public enum ExportMode: String, Sendable, Equatable {
    /// No OTLP endpoint: trace calls pass through to the upstream untouched.
    case mlflowOnly = "mlflow-only"
    /// An OTLP endpoint: trace uploads are answered by the proxy and exported; they never reach the upstream.
    case openTelemetryOnly = "opentelemetry-only"
    /// An endpoint and the dual-export switch: uploads go upstream unchanged and a copy is exported.
    case dual
    /// No upstream and no endpoint: the proxy answers the trace API and writes traces to a local file.
    case standalone

    /// Whether the proxy answers trace uploads itself instead of forwarding them.
    public var answersTraceCallsLocally: Bool { self == .openTelemetryOnly || self == .standalone }
    /// Whether trace uploads are decoded and exported at all.
    public var exportsTraces: Bool { self != .mlflowOnly }
}

/// What the proxy does with a client's own `Authorization` header when the configuration injects one upstream.
public enum ClientAuthorizationPolicy: String, Sendable, Equatable {
    /// The client's header wins; the configured one is added only when the client sent none.
    case keep
    /// The configured header always replaces the client's.
    case replace
}

/// A `host:port` pair the proxy listens on.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// MLflow's own default, so a client's default tracking URI works unchanged.
    public static let `default` = ListenAddress(host: "127.0.0.1", port: 5000)
    /// Host name or IP address.
    public var host: String
    /// TCP port (0 picks a free one).
    public var port: Int
    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    /// `host:port`, with IPv6 hosts in brackets.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Whether only this machine can connect (`127.0.0.0/8`, `::1`, `localhost`).
    public var isLoopback: Bool {
        let lower = host.lowercased()
        return lower == "localhost" || lower == "::1" || (AddressRange("127.0.0.0/8")?.contains(lower) ?? false)
    }

    /// Parses `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces).
    public static func parse(_ text: String) -> ListenAddress? {
        var hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        if hostPart.isEmpty { hostPart = "0.0.0.0" }
        guard let port = Int(portPart), (0...65535).contains(port) else { return nil }
        return ListenAddress(host: String(hostPart), port: port)
    }
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

/// An ordered string key/value pair (headers, resource attributes).
public struct KeyValuePair: Sendable, Equatable {
    /// The key.
    public var key: String
    /// The value.
    public var value: String
    /// Creates a pair.
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// How every destination's spans are batched, queued and retried: one bounded queue per destination, batches
/// by span count, bytes and time, retries by the OTLP rules within a time budget, optionally a disk spool.
/// Batching is named after the OpenTelemetry batch span processor's variables, the queue and retries after the
/// OpenTelemetry Collector's `sending_queue` and `retry_on_failure`.
public struct DeliverySettings: Sendable, Equatable {
    /// `OTEL_BSP_SCHEDULE_DELAY` (ms): the longest a span waits for a batch to fill; default 1 s
    /// (shorter than the SDK's 5 s because the client's own batching already delayed it).
    public var scheduleDelay: Duration
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: spans per export request; default 512.
    public var maxExportBatchSize: Int
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: spans held in memory waiting for export (with the spool off); default 8192.
    public var maxQueueSize: Int
    /// `batch.max_export_batch_bytes`: serialized bytes per export request (a single larger trace still goes
    /// alone); default 4 MiB, the smallest common vendor limit.
    public var maxExportBatchBytes: Int = 4 * 1024 * 1024
    /// `sending_queue.max_bytes` (`MLFLOW_OTEL_PROXY_QUEUE_MAX_BYTES`): serialized bytes held in memory per
    /// destination; default 64 MiB.
    public var maxQueueBytes: Int = 64 * 1024 * 1024
    /// `sending_queue.full_policy` (`MLFLOW_OTEL_PROXY_QUEUE_FULL_POLICY`): what happens when a queue is full.
    public var fullPolicy: QueueFullPolicy = .dropOldest
    /// `sending_queue.spool` (`MLFLOW_OTEL_PROXY_SPOOL_DIR`, `…_SPOOL_MAX_BYTES`, `…_SPOOL_FSYNC`): batches kept
    /// on disk until delivered, so they survive a crash or restart; `nil`: memory only.
    public var spool: SpoolSettings?
    /// `retry_on_failure`: how failed exports are retried.
    public var retry = RetryPolicy()
    /// `on_auth_failure` (per destination): what a rejection of the destination's credentials does to the batch.
    public var onAuthFailure: AuthFailurePolicy = .hold
    /// `auth_retry_interval` (per destination): while credentials are rejected, how often the oldest batch is
    /// tried again; default 30 s.
    public var authRetryInterval: Duration = .seconds(30)
    /// Creates settings.
    public init(scheduleDelay: Duration = .seconds(1), maxExportBatchSize: Int = 512, maxQueueSize: Int = 8192) {
        self.scheduleDelay = scheduleDelay
        self.maxExportBatchSize = maxExportBatchSize
        self.maxQueueSize = maxQueueSize
    }
}

/// What a destination does when it rejects the proxy's credentials (HTTP `401`/`403`, gRPC `UNAUTHENTICATED`/
/// `PERMISSION_DENIED`). The OTLP specification calls these permanent and the OpenTelemetry Collector drops the
/// batch; a rotated or revoked key is an operator's problem that will be fixed, so the proxy holds by default.
public enum AuthFailurePolicy: String, Sendable, Equatable, CaseIterable {
    /// The destination enters the `credentials_rejected` state: its batches stay queued (under the queue's bounds
    /// and full policy), the oldest is tried again every `auth_retry_interval`, and a reload that changes the
    /// destination retries at once.
    case hold
    /// The batch is dropped and counted, as the Collector does.
    case drop
}

/// What a destination's full queue does with more spans.
public enum QueueFullPolicy: String, Sendable, Equatable, CaseIterable {
    /// The oldest queued batches make room (the default, as Fluent Bit and the Collector's persistent queue do);
    /// each dropped span is counted with reason `queue_full`.
    case dropOldest = "drop_oldest"
    /// Uploads the proxy answers itself get `503` with `Retry-After` until the queue has room, so the
    /// client's own retries hold the data; nothing queued is dropped.
    case refuse
}

/// The disk spool of every destination's queue: `<directory>/<destination>/`, one file per batch.
public struct SpoolSettings: Sendable, Equatable {
    /// The spool's root directory; created when missing.
    public var directory: String
    /// The most bytes spooled per destination; default 1 GiB.
    public var maxBytes: Int
    /// Whether every batch file (and its directory entry) is fsynced before it counts as stored: survives power
    /// loss, not just a crash of the proxy, at the cost measured in BENCHMARKS.md. Default off.
    public var fsync: Bool
    /// Creates settings.
    public init(directory: String, maxBytes: Int = 1024 * 1024 * 1024, fsync: Bool = false) {
        self.directory = directory
        self.maxBytes = maxBytes
        self.fsync = fsync
    }
}

/// Retries of failed exports, with the OpenTelemetry Collector's `retry_on_failure` keys and defaults:
/// exponential backoff with jitter from `initialInterval` up to `maxInterval`, a server's requested delay
/// (`Retry-After`, gRPC `RetryInfo`) honoured, and at most `maxElapsedTime` spent on one batch.
public struct RetryPolicy: Sendable, Equatable {
    /// Whether failed exports are retried at all.
    public var enabled = true
    /// The first backoff; default 5 s.
    public var initialInterval: Duration = .seconds(5)
    /// The largest backoff; default 30 s.
    public var maxInterval: Duration = .seconds(30)
    /// The most time spent on one batch, its attempts and waits together; default 300 s; `nil` (0 in the
    /// file): retry until delivered or shut down.
    public var maxElapsedTime: Duration? = .seconds(300)
    /// The backoff's growth per attempt; default 1.5.
    public var multiplier = 1.5
    /// The jitter: each wait is drawn from ±this fraction of the backoff; default 0.5.
    public var randomizationFactor = 0.5
    /// Creates a policy.
    public init(
        enabled: Bool = true, initialInterval: Duration = .seconds(5), maxInterval: Duration = .seconds(30),
        maxElapsedTime: Duration? = .seconds(300),
        multiplier: Double = 1.5, randomizationFactor: Double = 0.5
    ) {
        self.enabled = enabled
        self.initialInterval = initialInterval
        self.maxInterval = maxInterval
        self.maxElapsedTime = maxElapsedTime
        self.multiplier = multiplier
        self.randomizationFactor = randomizationFactor
    }
}
