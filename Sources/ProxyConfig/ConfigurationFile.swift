import Delivery
import Foundation
import HTTPListener
import OTLPExport
import ProxySettings
import SharedSettings
import SpanShaping

/// The YAML configuration file (`--config FILE`, `MLFLOW_OTEL_PROXY_CONFIG`), shaped the way OpenTelemetry
/// Collector users expect: secrets as `${env:NAME}` or `${file:/path}` references, a map of named
/// destinations, each with an optional vendor `profile`.
///
/// ```yaml
/// listen: 127.0.0.1:5000
/// upstream:
///   url: http://mlflow:5000
///   headers: { Authorization: "Bearer ${env:MLFLOW_TOKEN}" }
///   client_authorization: keep          # or replace
/// mode: dual                             # auto (default), mlflow-only, opentelemetry-only, dual
/// destinations:
///   dd:     { profile: datadog, site: datadoghq.eu, api_key: "${env:DD_API_KEY}" }
///   tempo:  { endpoint: "https://tempo:4318", compression: gzip, tls: { ca_file: /etc/ca.pem } }
/// ```
struct ConfigurationFile {
    static let topLevelKeys = [
        "listen", "admin_listen", "upstream", "mode", "inbound_auth", "destinations", "traces_file", "trace_info_wait", "shutdown_timeout",
        "attachments", "assembly",
        "batch", "sending_queue", "retry_on_failure", "service", "metrics", "limits", "tls", "admin_tls", "trusted_proxies", "admin",
    ]
    static let limitKeys = [
        "max_trace_body_bytes", "max_passthrough_body_bytes", "max_header_bytes", "request_read_timeout", "idle_timeout", "max_connections",
        "request_timeout", "min_body_rate", "min_body_rate_grace_period", "response_write_timeout", "max_body_bytes_in_memory",
    ]
    static let destinationKeys = [
        "profile", "endpoint", "traces_endpoint", "protocol", "headers", "compression", "timeout", "tls", "max_request_bytes", "metrics",
        "retry_on_failure", "sending_queue", "on_auth_failure", "auth_retry_interval",
        "semconv", "redaction", "limits", "routing", "llm_observability",
    ]

    var listen: ListenAddress?
    var adminListen: ListenAddress??
    var upstream: UpstreamURL?
    var upstreamTimeout: Duration?
    var upstreamHeaders: [KeyValuePair] = []
    var upstreamTLS: TLSSettings?
    var trustedProxies: [AddressRange]?
    var allowUnauthenticated: Bool?
    var adminTokens: [String]?
    /// `upstream: databricks[://PROFILE]` or `upstream.databricks`, resolved while the file is read.
    var databricks: DatabricksUpstream.Resolved?
    var clientAuthorization: ClientAuthorizationPolicy?
    var mode: ExportMode?
    var destinations: [OTLPDestination] = []
    var destinationDelivery: [String: DeliveryOverrides] = [:]
    var metricsExports: [MetricsSettings] = []
    var inboundTokens: [String]?
    var tracesFile: String?
    var traceInfoWait: Duration?
    var shutdownTimeout: Duration?
    var attachmentsDirectory: String?
    var attachmentsMaxBytes: Int?
    var maxTracesInFlight: Int?
    var maxSpansPerTrace: Int?
    var maxBytesHeld: Int?
    var scheduleDelay: Duration?
    var maxExportBatchSize: Int?
    var maxQueueSize: Int?
    var maxExportBatchBytes: Int?
    var maxQueueBytes: Int?
    var fullPolicy: QueueFullPolicy?
    var spool: SpoolSettings?
    var retry = PartialRetryPolicy()
    var metricTraceTags: [String]?
    var metricTraceMetadata: [String]?
    var serviceName: String?
    var resourceAttributes: [KeyValuePair] = []
    var maxTraceBodyBytes: Int?
    var limits = PartialLimits()
    var tls: ListenerTLS?
    var adminTLS: ListenerTLS?

    /// The `limits` keys the file sets.
    struct PartialLimits {
        var maxPassthroughBodyBytes: Int?
        var maxHeaderBytes: Int?
        var requestReadTimeout: Duration?
        var idleTimeout: Duration??
        var maxConnections: Int?
        var requestTimeout: Duration??
        var minBodyBytesPerSecond: Int??
        var responseWriteTimeout: Duration??
        var minBodyRateGracePeriod: Duration?
        var maxBodyBytesInMemory: Int?
    }

    /// Parses and validates the file; every problem is reported, each by its key path.
    static func parse(_ text: String, environment: [String: String]) throws(ConfigurationError) -> ConfigurationFile {
        let root = try ConfigNode.parse(text)
        var problems = ConfigProblems()
        var file = ConfigurationFile()
        let env = environment.filter { !$0.value.isEmpty }
        let top = problems.entries(root, allowed: topLevelKeys)

        if let text = problems.string(top["listen"], env: env) {
            if let address = ListenAddress.parse(text) {
                file.listen = address
            } else {
                problems.add(path: "listen", "expected HOST:PORT, got \"\(text)\"")
            }
        }
        if let text = problems.string(top["admin_listen"], env: env) {
            if ["off", "none", "false"].contains(text.lowercased()) {
                file.adminListen = .some(nil)
            } else if let address = ListenAddress.parse(text) {
                file.adminListen = .some(address)
            } else {
                problems.add(path: "admin_listen", "expected HOST:PORT or off, got \"\(text)\"")
            }
        }
        if let node = top["upstream"] {
            if case .scalar = node {
                if let text = problems.string(node, env: env), let profile = DatabricksUpstream.profile(inTrackingURI: text) {
                    file.databricks = databricks(profile: profile, explicit: [:], environment: env, path: "upstream", problems: &problems)
                } else {
                    file.upstream = url(problems.string(node, env: env), path: "upstream", problems: &problems)
                }
            } else {
                let upstream = problems.entries(node, allowed: ["url", "timeout", "headers", "client_authorization", "tls", "databricks"])
                if let databricksNode = upstream["databricks"] {
                    if upstream["url"] != nil { problems.add(path: "upstream.databricks", "names the upstream: leave upstream.url out") }
                    let keys = problems.entries(databricksNode, allowed: ["profile", "host", "token", "client_id", "client_secret"])
                    var explicit: [String: String] = [:]
                    for key in ["host", "token", "client_id", "client_secret"] {
                        if let value = problems.string(keys[key], env: env, secret: key == "token" || key == "client_secret") {
                            explicit[key] = value
                        }
                    }
                    file.databricks = databricks(
                        profile: problems.string(keys["profile"], env: env), explicit: explicit, environment: env, path: "upstream.databricks",
                        problems: &problems)
                }
                file.upstream = url(problems.string(upstream["url"], env: env), path: "upstream.url", problems: &problems)
                file.upstreamTimeout = problems.duration(upstream["timeout"], env: env)
                file.upstreamHeaders = problems.stringMap(upstream["headers"], env: env)
                file.clientAuthorization = problems.choice(upstream["client_authorization"], env: env, options: ["keep", "replace"])
                    .flatMap(ClientAuthorizationPolicy.init(rawValue:))
                if let tlsNode = upstream["tls"] {
                    file.upstreamTLS = clientTLS(tlsNode, path: "upstream.tls", env: env, problems: &problems).settings
                }
            }
        }
        if let node = top["trusted_proxies"] {
            if let items = problems.stringList(node, env: env) {
                file.trustedProxies = items.compactMap { item in
                    guard let range = AddressRange(item) else {
                        problems.add(path: "trusted_proxies", "\"\(item)\" is not an IP address or a CIDR range such as 10.0.0.0/8")
                        return nil
                    }
                    return range
                }
            }
        }
        if let node = top["admin"] {
            let admin = problems.entries(node, allowed: ["tokens"])
            if case .list(let items, _, _)? = admin["tokens"] {
                file.adminTokens = items.compactMap { problems.string($0, env: env, secret: true) }
            } else if let tokens = admin["tokens"] {
                problems.add(tokens, "expected a list of tokens (use ${env:NAME} or ${file:/path})")
            }
        }
        if let node = top["inbound_auth"] {
            let auth = problems.entries(node, allowed: ["tokens", "allow_unauthenticated"])
            file.allowUnauthenticated = problems.bool(auth["allow_unauthenticated"], env: env)
            if case .list(let items, _, _)? = auth["tokens"] {
                file.inboundTokens = items.compactMap { problems.string($0, env: env, secret: true) }
            } else if let tokens = auth["tokens"] {
                problems.add(tokens, "expected a list of tokens (use ${env:NAME} or ${file:/path})")
            }
        }
        if let mode = problems.choice(top["mode"], env: env, options: ["auto", "mlflow-only", "opentelemetry-only", "dual"]), mode != "auto" {
            file.mode = ExportMode(rawValue: mode)
        }
        file.tracesFile = problems.string(top["traces_file"], env: env)
        file.traceInfoWait = problems.duration(top["trace_info_wait"], env: env)
        file.shutdownTimeout = problems.duration(top["shutdown_timeout"], env: env)
        if let node = top["attachments"] {
            let attachments = problems.entries(node, allowed: ["directory", "max_bytes"])
            file.attachmentsDirectory = problems.string(attachments["directory"], env: env)
            file.attachmentsMaxBytes = problems.positiveInt(attachments["max_bytes"], env: env)
        }
        if let node = top["assembly"] {
            let assembly = problems.entries(node, allowed: ["max_traces_in_flight", "max_spans_per_trace", "max_bytes_held"])
            file.maxTracesInFlight = problems.positiveInt(assembly["max_traces_in_flight"], env: env)
            file.maxSpansPerTrace = problems.positiveInt(assembly["max_spans_per_trace"], env: env)
            file.maxBytesHeld = problems.positiveInt(assembly["max_bytes_held"], env: env)
        }
        if let node = top["batch"] {
            let batch = problems.entries(node, allowed: ["schedule_delay", "max_export_batch_size", "max_export_batch_bytes", "max_queue_size"])
            file.scheduleDelay = problems.duration(batch["schedule_delay"], env: env)
            file.maxExportBatchSize = problems.positiveInt(batch["max_export_batch_size"], env: env)
            file.maxExportBatchBytes = problems.positiveInt(batch["max_export_batch_bytes"], env: env)
            file.maxQueueSize = problems.positiveInt(batch["max_queue_size"], env: env)
        }
        if let node = top["sending_queue"] {
            let queue = problems.entries(node, allowed: ["max_bytes", "full_policy", "spool"])
            file.maxQueueBytes = problems.positiveInt(queue["max_bytes"], env: env)
            file.fullPolicy = problems.choice(queue["full_policy"], env: env, options: QueueFullPolicy.allCases.map(\.rawValue))
                .flatMap(QueueFullPolicy.init(rawValue:))
            if let spoolNode = queue["spool"] {
                let spool = problems.entries(spoolNode, allowed: ["directory", "max_bytes", "fsync"])
                if let directory = problems.string(spool["directory"], env: env) {
                    var settings = SpoolSettings(directory: directory)
                    if let size = problems.positiveInt(spool["max_bytes"], env: env) { settings.maxBytes = size }
                    if let fsync = problems.bool(spool["fsync"], env: env) { settings.fsync = fsync }
                    file.spool = settings
                } else {
                    problems.add(path: "sending_queue.spool.directory", "is required to spool to disk")
                }
            }
        }
        if let node = top["retry_on_failure"] {
            file.retry = retryPolicy(node, path: "retry_on_failure", env: env, problems: &problems)
        }
        if let node = top["metrics"] {
            // The endpoint comes from the standard variables; the file chooses extra (high-cardinality) attributes.
            let metrics = problems.entries(node, allowed: ["include_trace_tags", "include_trace_metadata"])
            file.metricTraceTags = problems.stringList(metrics["include_trace_tags"], env: env)
            file.metricTraceMetadata = problems.stringList(metrics["include_trace_metadata"], env: env)
        }
        if let node = top["service"] {
            let service = problems.entries(node, allowed: ["name", "resource_attributes"])
            file.serviceName = problems.string(service["name"], env: env)
            file.resourceAttributes = problems.stringMap(service["resource_attributes"], env: env)
        }
        if let node = top["limits"] {
            let limits = problems.entries(node, allowed: limitKeys)
            file.maxTraceBodyBytes = problems.positiveInt(limits["max_trace_body_bytes"], env: env)
            file.limits.maxPassthroughBodyBytes = problems.positiveInt(limits["max_passthrough_body_bytes"], env: env)
            file.limits.maxHeaderBytes = problems.positiveInt(limits["max_header_bytes"], env: env)
            file.limits.maxConnections = problems.positiveInt(limits["max_connections"], env: env)
            if let timeout = problems.duration(limits["request_read_timeout"], env: env) {
                if timeout == .zero {
                    problems.add(path: "limits.request_read_timeout", "must be more than zero")
                } else {
                    file.limits.requestReadTimeout = timeout
                }
            }
            if let timeout = problems.duration(limits["idle_timeout"], env: env) { file.limits.idleTimeout = .some(timeout == .zero ? nil : timeout) }
            if let timeout = problems.duration(limits["request_timeout"], env: env) {
                file.limits.requestTimeout = .some(timeout == .zero ? nil : timeout)
            }
            if let timeout = problems.duration(limits["response_write_timeout"], env: env) {
                file.limits.responseWriteTimeout = .some(timeout == .zero ? nil : timeout)
            }
            if let rate = problems.nonNegativeInt(limits["min_body_rate"], env: env) {
                file.limits.minBodyBytesPerSecond = .some(rate == 0 ? nil : rate)
            }
            file.limits.minBodyRateGracePeriod = problems.duration(limits["min_body_rate_grace_period"], env: env)
            file.limits.maxBodyBytesInMemory = problems.positiveInt(limits["max_body_bytes_in_memory"], env: env)
        }
        file.tls = listenerTLS(top["tls"], path: "tls", env: env, problems: &problems)
        file.adminTLS = listenerTLS(top["admin_tls"], path: "admin_tls", env: env, problems: &problems)
        if let node = top["destinations"] {
            if case .map(let entries, _, _) = node {
                for entry in entries {
                    if let (destination, delivery) = destination(named: entry.key, node: entry.value, env: env, problems: &problems) {
                        file.destinations.append(destination)
                        file.destinationDelivery[destination.name] = delivery
                        if case .map(let keys, _, _) = entry.value, let metricsNode = keys.first(where: { $0.key == "metrics" })?.value,
                            let metrics = metricsExport(for: destination, node: metricsNode, env: env, problems: &problems)
                        {
                            file.metricsExports.append(metrics)
                        }
                    }
                }
            } else if case .null = node {
            } else {
                problems.add(node, "expected a mapping of destination names to their settings, found \(node.kindName)")
            }
        }
        guard problems.errors.isEmpty else { throw ConfigurationError(problems: problems.errors.flatMap(\.problems)) }
        return file
    }

    /// A listener's `{ cert_file, key_file }`: both required, both readable.
    static func listenerTLS(_ node: ConfigNode?, path: String, env: [String: String], problems: inout ConfigProblems) -> ListenerTLS? {
        guard let node else { return nil }
        let keys = problems.entries(node, allowed: ["cert_file", "key_file"])
        var files: [String: String] = [:]
        for key in ["cert_file", "key_file"] {
            guard let file = problems.string(keys[key], env: env) else {
                problems.add(path: "\(path).\(key)", "is required: a listener with TLS needs a certificate chain and its private key (PEM)")
                continue
            }
            if FileManager.default.isReadableFile(atPath: file) {
                files[key] = file
            } else {
                problems.add(path: "\(path).\(key)", "cannot read the file \(file)")
            }
        }
        guard let cert = files["cert_file"], let key = files["key_file"] else { return nil }
        return ListenerTLS(certFile: cert, keyFile: key)
    }

    /// `retry_on_failure` (the Collector's keys), at the top level or a destination's.
    static func retryPolicy(_ node: ConfigNode, path: String, env: [String: String], problems: inout ConfigProblems) -> PartialRetryPolicy {
        let retry = problems.entries(
            node, allowed: ["enabled", "initial_interval", "max_interval", "max_elapsed_time", "multiplier", "randomization_factor"])
        var policy = PartialRetryPolicy()
        policy.enabled = problems.bool(retry["enabled"], env: env)
        policy.initialInterval = problems.duration(retry["initial_interval"], env: env)
        policy.maxInterval = problems.duration(retry["max_interval"], env: env)
        policy.maxElapsedTime = problems.duration(retry["max_elapsed_time"], env: env)
        if let multiplier = problems.number(retry["multiplier"], env: env) {
            if multiplier >= 1 {
                policy.multiplier = multiplier
            } else {
                problems.add(path: "\(path).multiplier", "must be at least 1")
            }
        }
        if let factor = problems.number(retry["randomization_factor"], env: env) {
            if (0...1).contains(factor) {
                policy.randomizationFactor = factor
            } else {
                problems.add(path: "\(path).randomization_factor", "must be from 0 to 1")
            }
        }
        return policy
    }

    /// A destination's own `retry_on_failure` and `sending_queue` (`max_bytes`, `full_policy`), as in the Collector,
    /// over the top-level ones; the spool stays a top-level setting (one directory, a folder per destination).
    static func deliveryOverrides(_ keys: [String: ConfigNode], path: String, env: [String: String], problems: inout ConfigProblems)
        -> DeliveryOverrides
    {
        var overrides = DeliveryOverrides()
        if let node = keys["retry_on_failure"] {
            overrides.retry = retryPolicy(node, path: "\(path).retry_on_failure", env: env, problems: &problems)
        }
        if let node = keys["sending_queue"] {
            let queue = problems.entries(node, allowed: ["max_bytes", "full_policy", "spool"])
            overrides.maxQueueBytes = problems.positiveInt(queue["max_bytes"], env: env)
            overrides.fullPolicy = problems.choice(queue["full_policy"], env: env, options: QueueFullPolicy.allCases.map(\.rawValue))
                .flatMap(QueueFullPolicy.init(rawValue:))
            if queue["spool"] != nil {
                problems.add(
                    path: "\(path).sending_queue.spool", "is set at the top level (sending_queue.spool): each destination gets its own folder there")
            }
        }
        overrides.onAuthFailure = problems.choice(keys["on_auth_failure"], env: env, options: AuthFailurePolicy.allCases.map(\.rawValue))
            .flatMap(AuthFailurePolicy.init(rawValue:))
        if let interval = problems.duration(keys["auth_retry_interval"], env: env) {
            if interval < .seconds(1) {
                problems.add(path: "\(path).auth_retry_interval", "must be at least 1s (each retry is a request with rejected credentials)")
            } else {
                overrides.authRetryInterval = interval
            }
        }
        return overrides
    }

    /// A Databricks workspace from the file (its errors as problems at `path`).
    static func databricks(
        profile: String?, explicit: [String: String], environment: [String: String], path: String, problems: inout ConfigProblems
    ) -> DatabricksUpstream.Resolved? {
        do {
            return try DatabricksUpstream.resolve(profile: profile, explicit: explicit, environment: environment, setting: path)
        } catch {
            for problem in error.problems { problems.add(path: problem.setting, problem.reason) }
            return nil
        }
    }

    /// Client TLS keys at `path` (`ca_file`, `cert_file`, `key_file`, `insecure_skip_verify`, and any `extraKeys`
    /// the caller reads itself): the destinations' `tls` and `upstream.tls`.
    static func clientTLS(
        _ node: ConfigNode, path: String, extraKeys: [String] = [], env: [String: String], problems: inout ConfigProblems
    ) -> (settings: TLSSettings, values: [String: ConfigNode]) {
        let values = problems.entries(node, allowed: ["ca_file", "cert_file", "key_file", "insecure_skip_verify"] + extraKeys)
        var tls = TLSSettings()
        for (key, keyPath) in [("ca_file", \TLSSettings.caFile), ("cert_file", \.certFile), ("key_file", \.keyFile)] {
            if let file = problems.string(values[key], env: env) {
                if FileManager.default.isReadableFile(atPath: file) {
                    tls[keyPath: keyPath] = file
                } else {
                    problems.add(path: "\(path).\(key)", "cannot read the file \(file)")
                }
            }
        }
        tls.insecureSkipVerify = problems.bool(values["insecure_skip_verify"], env: env) ?? false
        if (values["cert_file"] == nil) != (values["key_file"] == nil) {
            problems.add(path: path, "mutual TLS needs both cert_file and key_file")
        }
        return (tls, values)
    }

    static func url(_ text: String?, path: String, problems: inout ConfigProblems) -> UpstreamURL? {
        guard let text else { return nil }
        guard let url = UpstreamURL(text) else {
            problems.add(path: path, UpstreamURL.rejectionReason(text, expected: "expected an http:// or https:// URL"))
            return nil
        }
        return url
    }

    /// One destination: profile defaults first, explicit keys over them; and its own delivery keys.
    static func destination(named name: String, node: ConfigNode, env: [String: String], problems: inout ConfigProblems) -> (
        OTLPDestination, DeliveryOverrides
    )? {
        let path = node.path
        let before = problems.errors.count
        // The profile decides which extra keys are allowed, so read it first.
        var profile = DestinationProfile.otlp
        if case .map(let entries, _, _) = node, let profileNode = entries.first(where: { $0.key == "profile" })?.value {
            if let text = problems.choice(profileNode, env: env, options: DestinationProfile.allCases.map(\.rawValue)) {
                profile = DestinationProfile(rawValue: text) ?? .otlp
            }
        }
        let keys = problems.entries(node, allowed: destinationKeys + profile.keys)
        var profileValues: [String: String] = [:]
        for key in profile.keys {
            if let value = problems.string(keys[key], env: env, secret: DestinationProfile.secretKeys.contains(key)) { profileValues[key] = value }
        }
        let defaults = profile.defaults(profileValues, present: Set(keys.keys), path: path, problems: &problems)

        let transport: OTLPProtocol
        if let text = problems.choice(keys["protocol"], env: env, options: OTLPProtocol.allCases.map(\.rawValue)) {
            transport = OTLPProtocol(rawValue: text) ?? .httpProtobuf
            if !defaults.protocolChoices.contains(transport) {
                problems.add(
                    path: "\(path).protocol",
                    "the \(profile.rawValue) profile supports \(defaults.protocolChoices.map(\.rawValue).joined(separator: ", ")), not \(text)"
                )
            }
        } else {
            // MLflow's default, gRPC, unless the profile's intake has no gRPC (Datadog, Grafana Cloud, Dynatrace) or
            // the destination names a `traces_endpoint` (the Collector's otlp_http key: a URL with a path).
            transport = defaults.protocolChoices.contains(.grpc) && keys["traces_endpoint"] == nil ? .grpc : .httpProtobuf
        }
        var tls = TLSSettings()
        if let node = keys["tls"] {
            let values: [String: ConfigNode]
            (tls, values) = clientTLS(node, path: "\(path).tls", extraKeys: ["insecure", "server_name"], env: env, problems: &problems)
            tls.insecure = problems.bool(values["insecure"], env: env) ?? false
            tls.serverName = problems.string(values["server_name"], env: env)
            if tls.serverName != nil && transport != .grpc {
                problems.add(
                    path: "\(path).tls.server_name", "is supported for grpc destinations only; for HTTP, use an endpoint with that host name")
            }
        }

        // HTTP: endpoint is a base URL (v1/traces is appended); traces_endpoint is used as is (Collector's
        // otlp_http). gRPC: endpoint is host:port or a URL (Collector's otlp_grpc); there is no path.
        var endpoint: UpstreamURL?
        if transport == .grpc {
            if keys["traces_endpoint"] != nil { problems.add(path: "\(path).traces_endpoint", "is for HTTP destinations; gRPC uses endpoint") }
            if let text = problems.string(keys["endpoint"], env: env) ?? defaults.grpcEndpoint {
                endpoint = ProxyConfiguration.grpcEndpoint(text, insecure: tls.insecure)
                if endpoint == nil {
                    problems.add(
                        path: "\(path).endpoint", UpstreamURL.rejectionReason(text, expected: "expected host:port or an http:// or https:// URL"))
                }
            }
        } else if let text = problems.string(keys["traces_endpoint"], env: env) {
            endpoint = url(text, path: "\(path).traces_endpoint", problems: &problems).map { $0.path.isEmpty ? $0.with(path: "/") : $0 }
        } else if let text = problems.string(keys["endpoint"], env: env) {
            if let base = url(text, path: "\(path).endpoint", problems: &problems) {
                endpoint = base.with(path: (base.path.hasSuffix("/") ? base.path : base.path + "/") + "v1/traces")
            }
        } else if let text = defaults.endpoint {
            endpoint = UpstreamURL(text)
        }
        if endpoint == nil && problems.errors.count == before {
            problems.add(path: "\(path).endpoint", "is required (or a profile that sets it)")
        }

        var headers = defaults.headers
        for header in problems.stringMap(keys["headers"], env: env) {
            if let index = headers.firstIndex(where: { $0.key.lowercased() == header.key.lowercased() }) {
                headers[index] = header
            } else {
                headers.append(header)
            }
        }
        let compression = problems.choice(keys["compression"], env: env, options: ["gzip", "none"]).flatMap(OTLPCompression.init(rawValue:)) ?? .none
        var timeout: Duration? = .seconds(10)
        if let value = problems.duration(keys["timeout"], env: env) { timeout = value == .zero ? nil : value }
        let maxRequestBytes = problems.positiveInt(keys["max_request_bytes"], env: env) ?? defaults.maxRequestBytes

        var policy = dataPolicy(keys, profile: profile, path: path, env: env, problems: &problems)
        if profile == .datadog, let enabled = problems.bool(keys["llm_observability"], env: env) {
            policy.datadogLLMObservability = enabled
            if enabled {
                // LLM Observability reads gen_ai.* only and drops everything else (otlp-and-vendors §5.5).
                headers.append(KeyValuePair("dd-otlp-source", "llmobs"))
                if keys["semconv"] == nil { policy.conventions = [.genai] }
            }
        } else if keys["llm_observability"] != nil {
            problems.add(path: "\(path).llm_observability", "is for the datadog profile")
        }

        guard problems.errors.count == before, let endpoint else { return nil }
        var destination = OTLPDestination(
            name: name, profile: profile, endpoint: endpoint, transportProtocol: transport, headers: headers, compression: compression,
            timeout: timeout, tls: tls, maxRequestBytes: maxRequestBytes, policy: policy
        )
        destination.metricsHeaders = defaults.metricsHeaders
        return (destination, deliveryOverrides(keys, path: path, env: env, problems: &problems))
    }

    /// A destination's data policy: `semconv`, `redaction`, `limits` and `routing`, over the profile's defaults.
    static func dataPolicy(
        _ keys: [String: ConfigNode], profile: DestinationProfile, path: String, env: [String: String], problems: inout ConfigProblems
    ) -> DataPolicy {
        var policy = DataPolicy()
        policy.limits = profile.defaultLimits
        if profile == .newrelic { policy.genAIResourceAttributes = [ResourceAttribute("aiEnabledApp", "true")] }
        if let node = keys["semconv"] {
            let names: [String]
            if case .scalar = node {
                names = problems.string(node, env: env).map { [$0] } ?? []
            } else {
                names = problems.stringList(node, env: env) ?? []
            }
            var conventions: [SemanticConvention] = []
            for name in names {
                if let convention = SemanticConvention(rawValue: name) {
                    if !conventions.contains(convention) { conventions.append(convention) }
                } else {
                    problems.add(
                        path: "\(path).semconv",
                        "unknown convention \"\(name)\", expected \(SemanticConvention.allCases.map(\.rawValue).joined(separator: ", "))")
                }
            }
            if names.isEmpty { problems.add(path: "\(path).semconv", "needs at least one of mlflow, genai, openinference") }
            if !conventions.isEmpty { policy.conventions = conventions }
        }
        if let node = keys["redaction"] {
            let values = problems.entries(node, allowed: ["drop_attributes", "mask_json_paths", "mask_patterns", "metadata_only"])
            policy.redaction.dropAttributes = problems.stringList(values["drop_attributes"], env: env) ?? []
            policy.redaction.maskJSONPaths = problems.stringList(values["mask_json_paths"], env: env) ?? []
            policy.redaction.maskPatterns = problems.stringList(values["mask_patterns"], env: env) ?? []
            policy.redaction.metadataOnly = problems.bool(values["metadata_only"], env: env) ?? false
            for (index, expression) in policy.redaction.maskJSONPaths.enumerated() where JSONPathSyntax.check(expression) != nil {
                problems.add(path: "\(path).redaction.mask_json_paths[\(index)]", JSONPathSyntax.check(expression) ?? "")
            }
            for (index, pattern) in policy.redaction.maskPatterns.enumerated() {
                if pattern.hasPrefix("preset:") {
                    if RedactionSettings.presets[String(pattern.dropFirst("preset:".count))] == nil {
                        problems.add(
                            path: "\(path).redaction.mask_patterns[\(index)]",
                            "unknown preset \"\(pattern)\", expected \(RedactionSettings.presets.keys.sorted().map { "preset:\($0)" }.joined(separator: ", "))"
                        )
                    }
                } else if let reason = RegexSyntax.check(pattern) {
                    problems.add(path: "\(path).redaction.mask_patterns[\(index)]", "is not a valid regular expression: \(reason)")
                }
            }
        }
        if let node = keys["limits"] {
            let values = problems.entries(node, allowed: ["max_attribute_value_length", "max_attributes_per_span", "max_events_per_span"])
            if let value = problems.positiveInt(values["max_attribute_value_length"], env: env) {
                if value < 64 {
                    problems.add(path: "\(path).limits.max_attribute_value_length", "must be at least 64 (a shorter limit leaves no JSON readable)")
                }
                policy.limits.maxAttributeValueLength = value
            }
            if let value = problems.positiveInt(values["max_attributes_per_span"], env: env) { policy.limits.maxAttributesPerSpan = value }
            if let value = problems.positiveInt(values["max_events_per_span"], env: env) { policy.limits.maxEventsPerSpan = value }
        }
        if let node = keys["routing"] {
            let values = problems.entries(node, allowed: ["include", "exclude", "sample_ratio"])
            for (key, isInclude) in [("include", true), ("exclude", false)] {
                guard let selector = values[key] else { continue }
                let fields = problems.entries(selector, allowed: ["experiment_ids", "tags", "span_types"])
                let experiments = problems.stringList(fields["experiment_ids"], env: env) ?? []
                let tags = problems.stringList(fields["tags"], env: env) ?? []
                let spanTypes = problems.stringList(fields["span_types"], env: env) ?? []
                if isInclude {
                    (policy.routing.includeExperimentIDs, policy.routing.includeTags, policy.routing.includeSpanTypes) = (
                        experiments, tags, spanTypes
                    )
                } else {
                    (policy.routing.excludeExperimentIDs, policy.routing.excludeTags, policy.routing.excludeSpanTypes) = (
                        experiments, tags, spanTypes
                    )
                }
            }
            if let ratio = problems.number(values["sample_ratio"], env: env) {
                if ratio < 0 || ratio > 1 { problems.add(path: "\(path).routing.sample_ratio", "must be between 0 and 1, got \(ratio)") }
                policy.routing.sampleRatio = min(max(ratio, 0), 1)
            }
        }
        return policy
    }

    /// A destination's metrics export (`metrics: { enabled, endpoint, temporality, interval }`): the same
    /// headers, TLS, compression and protocol as its traces; the endpoint derived from its profile or its
    /// traces endpoint unless given.
    static func metricsExport(for destination: OTLPDestination, node: ConfigNode, env: [String: String], problems: inout ConfigProblems)
        -> MetricsSettings?
    {
        let path = node.path
        let keys = problems.entries(node, allowed: ["enabled", "endpoint", "temporality", "interval"])
        guard problems.bool(keys["enabled"], env: env) ?? true else { return nil }
        var metricsDestination = destination
        if let text = problems.string(keys["endpoint"], env: env) {
            guard
                let url = destination.transportProtocol == .grpc
                    ? ProxyConfiguration.grpcEndpoint(text, insecure: destination.tls.insecure) : UpstreamURL(text)
            else {
                problems.add(path: "\(path).endpoint", UpstreamURL.rejectionReason(text, expected: "expected a URL"))
                return nil
            }
            metricsDestination.endpoint = url
        } else if destination.transportProtocol != .grpc {
            let traces = destination.endpoint
            switch destination.profile {
            case .datadog:
                // Datadog's metrics intake is otlp.<site> (a traces endpoint given as the older trace.agent.<site> maps there).
                let host = traces.host.hasPrefix("trace.agent.") ? "otlp." + traces.host.dropFirst("trace.agent.".count) : traces.host
                metricsDestination.endpoint = traces.with(path: "/v1/metrics")
                metricsDestination.endpoint.host = String(host)
            case .splunk:
                metricsDestination.endpoint = traces.with(path: "/v2/datapoint/otlp")
            case .lightstep:
                metricsDestination.endpoint = traces.with(path: "/metrics/otlp/v0.9")
            default:
                guard traces.path.hasSuffix("/v1/traces") else {
                    problems.add(path: "\(path).endpoint", "is required: the traces endpoint does not end in /v1/traces")
                    return nil
                }
                metricsDestination.endpoint = traces.with(path: String(traces.path.dropLast("/v1/traces".count)) + "/v1/metrics")
            }
        }
        metricsDestination.headers += destination.metricsHeaders
        var settings = MetricsSettings(destination: metricsDestination)
        // Datadog and Dynatrace accept delta only.
        settings.temporality = destination.profile == .datadog || destination.profile == .dynatrace ? .delta : .cumulative
        if let text = problems.choice(keys["temporality"], env: env, options: ["cumulative", "delta"]) {
            settings.temporality = MetricsTemporality(rawValue: text) ?? .cumulative
        }
        if let interval = problems.duration(keys["interval"], env: env) { settings.interval = interval }
        return settings
    }

    /// Lays the file's settings over `config` (which holds the defaults and the environment's).
    func apply(to config: inout ProxyConfiguration) {
        if let listen { config.listen = listen }
        if let adminListen { config.adminListen = adminListen }
        if let upstream {
            config.upstream = upstream
            config.upstreamOAuth = nil
        }
        if let databricks { ProxyConfiguration.apply(databricks, to: &config) }
        if let upstreamTimeout { config.upstreamTimeout = upstreamTimeout }
        for header in upstreamHeaders {
            config.upstreamHeaders.removeAll { $0.key.lowercased() == header.key.lowercased() }
            config.upstreamHeaders.append(header)
        }
        if let clientAuthorization { config.clientAuthorization = clientAuthorization }
        if let upstreamTLS { config.upstreamTLS = upstreamTLS }
        if let trustedProxies { config.trustedProxies = trustedProxies }
        if let allowUnauthenticated { config.allowUnauthenticated = allowUnauthenticated }
        if let adminTokens { config.adminTokens = adminTokens }
        if let inboundTokens { config.inboundTokens = inboundTokens }
        if let tracesFile { config.localTracesFile = tracesFile }
        if let traceInfoWait { config.traceInfoWait = traceInfoWait }
        if let shutdownTimeout { config.shutdownTimeout = shutdownTimeout }
        if let attachmentsDirectory { config.attachmentsDirectory = attachmentsDirectory }
        if let attachmentsMaxBytes { config.attachmentsMaxBytes = attachmentsMaxBytes }
        if let maxTracesInFlight { config.assemblyLimits.maxTracesInFlight = maxTracesInFlight }
        if let maxSpansPerTrace { config.assemblyLimits.maxSpansPerTrace = maxSpansPerTrace }
        if let maxBytesHeld { config.assemblyLimits.maxBytesHeld = maxBytesHeld }
        if let scheduleDelay { config.delivery.scheduleDelay = scheduleDelay }
        if let maxExportBatchSize { config.delivery.maxExportBatchSize = maxExportBatchSize }
        if let maxQueueSize { config.delivery.maxQueueSize = maxQueueSize }
        if let maxExportBatchBytes { config.delivery.maxExportBatchBytes = maxExportBatchBytes }
        if let maxQueueBytes { config.delivery.maxQueueBytes = maxQueueBytes }
        if let fullPolicy { config.delivery.fullPolicy = fullPolicy }
        if let spool { config.delivery.spool = spool }
        retry.apply(to: &config.delivery.retry)
        if let serviceName { config.resource.serviceName = serviceName }
        if let maxTraceBodyBytes { config.maxTraceBodyBytes = maxTraceBodyBytes }
        if let value = limits.maxPassthroughBodyBytes { config.limits.maxPassthroughBodyBytes = value }
        if let value = limits.maxHeaderBytes { config.limits.maxHeaderBytes = value }
        if let value = limits.requestReadTimeout { config.limits.requestReadTimeout = value }
        if let value = limits.idleTimeout { config.limits.idleTimeout = value }
        if let value = limits.maxConnections { config.limits.maxConnections = value }
        if let value = limits.requestTimeout { config.limits.requestTimeout = value }
        if let value = limits.minBodyBytesPerSecond { config.limits.minBodyBytesPerSecond = value }
        if let value = limits.responseWriteTimeout { config.limits.responseWriteTimeout = value }
        if let value = limits.minBodyRateGracePeriod { config.limits.minBodyRateGracePeriod = value }
        if let value = limits.maxBodyBytesInMemory { config.limits.maxBodyBytesInMemory = value }
        if let tls { config.tls = tls }
        if let adminTLS { config.adminTLS = adminTLS }
        config.metricsExports += metricsExports
        for index in config.metricsExports.indices {
            if let metricTraceTags { config.metricsExports[index].traceTagAttributes = metricTraceTags }
            if let metricTraceMetadata { config.metricsExports[index].traceMetadataAttributes = metricTraceMetadata }
        }
        for attribute in resourceAttributes {
            config.resource.attributes.removeAll { $0.key == attribute.key }
            config.resource.attributes.append(attribute)
        }
        let fileNames = Set(destinations.map(\.name))
        config.destinations = config.destinations.filter { !fileNames.contains($0.name) } + destinations
        config.destinationDelivery = config.destinationDelivery.filter { !fileNames.contains($0.key) }.merging(destinationDelivery) { $1 }
    }
}
