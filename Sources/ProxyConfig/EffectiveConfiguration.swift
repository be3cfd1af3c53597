import Foundation
import JSONText
import ProxySettings
import SpanShaping
import Yams

/// Renders the effective configuration as YAML for `check-config`: every setting after all layers applied,
/// every header value (and so every credential) shown as `***`.
extension ProxyConfiguration {
    /// The redacted YAML text.
    public var redactedYAML: String {
        var lines: [String] = []
        func add(_ line: String) { lines.append(line) }
        func duration(_ value: Duration?) -> String {
            guard let value else { return "none" }
            let (seconds, attoseconds) = value.components
            let millis = seconds * 1000 + attoseconds / 1_000_000_000_000_000
            return millis % 1000 == 0 ? "\(millis / 1000)s" : "\(millis)ms"
        }
        func quoted(_ list: [String]) -> String {
            "[" + list.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" }.joined(separator: ", ") + "]"
        }
        func headers(_ list: [KeyValuePair], indent: String) {
            guard !list.isEmpty else { return }
            add("\(indent)headers:")
            for header in list { add("\(indent)  \(Self.yamlScalar(header.key)): \"***\"") }
        }
        // Text from the operator or the environment (names, paths, URLs, attribute values) goes through `v`, which
        // YAML-quotes it when it would not read back as itself; `f` also inside a flow mapping `{ … }`.
        func v(_ value: CustomStringConvertible) -> String { Self.yamlScalar(value.description) }
        func f(_ value: CustomStringConvertible) -> String { Self.yamlScalar(value.description, inFlow: true) }
        add("mode: \(mode.rawValue)")
        add("listen: \(listen)")
        add("admin_listen: \(adminListen?.description ?? "off")")
        add("inbound_auth: \(inboundTokens.isEmpty ? "off" : "\(inboundTokens.count) token(s): \"***\"")")
        if adminTokens.isEmpty {
            add("admin: { tokens: [] }  # /status and /metrics are open to anyone who reaches the admin listener")
        } else {
            add("admin: { tokens: \"\(adminTokens.count) token(s): ***\" }")
        }
        if let configFile { add("config_file: \(v(configFile))") }
        if let upstream {
            add("upstream:")
            add("  url: \(v(upstream))")
            add("  timeout: \(duration(upstreamTimeout))")
            headers(upstreamHeaders, indent: "  ")
            if let upstreamOAuth {
                add("  oauth: { token_url: \(f(upstreamOAuth.tokenURL)), client_id: \(f(upstreamOAuth.clientID)), client_secret: \"***\" }")
            }
            add("  client_authorization: \(clientAuthorization.rawValue)")
        } else {
            add("upstream: none  # standalone: the proxy answers the trace API itself")
        }
        if destinations.isEmpty {
            add("destinations: {}")
        } else {
            add("destinations:")
            for destination in destinations {
                add("  \(v(destination.name)):")
                add("    profile: \(destination.profile.rawValue)")
                add("    endpoint: \(v(destination.endpoint))")
                add("    protocol: \(destination.transportProtocol.rawValue)")
                headers(destination.headers, indent: "    ")
                add("    compression: \(destination.compression.rawValue)")
                add("    timeout: \(duration(destination.timeout))")
                if let limit = destination.maxRequestBytes { add("    max_request_bytes: \(limit)") }
                let own = destination.delivery(over: delivery)
                add("    on_auth_failure: \(own.onAuthFailure.rawValue)")
                if own.onAuthFailure == .hold { add("    auth_retry_interval: \(duration(own.authRetryInterval))") }
                let policy = destination.policy
                add("    semconv: [\(policy.conventions.map(\.rawValue).joined(separator: ", "))]")
                if policy.datadogLLMObservability { add("    llm_observability: true") }
                let redaction = policy.redaction
                if !redaction.isEmpty {
                    add("    redaction:")
                    if !redaction.dropAttributes.isEmpty { add("      drop_attributes: \(quoted(redaction.dropAttributes))") }
                    if !redaction.maskJSONPaths.isEmpty { add("      mask_json_paths: \(quoted(redaction.maskJSONPaths))") }
                    if !redaction.maskPatterns.isEmpty {
                        // A pattern may be the very value it masks (a known key): only presets are shown by name.
                        add("      mask_patterns: \(quoted(redaction.maskPatterns.map { $0.hasPrefix("preset:") ? $0 : "***" }))")
                    }
                    if redaction.metadataOnly { add("      metadata_only: true") }
                }
                if policy.limits != SpanSizeLimits() {
                    add("    limits:")
                    if let value = policy.limits.maxAttributeValueLength { add("      max_attribute_value_length: \(value)") }
                    if let value = policy.limits.maxAttributesPerSpan { add("      max_attributes_per_span: \(value)") }
                }
                let routing = policy.routing
                if !routing.routesEverything {
                    add("    routing:")
                    for (name, experiments, tags, types) in [
                        ("include", routing.includeExperimentIDs, routing.includeTags, routing.includeSpanTypes),
                        ("exclude", routing.excludeExperimentIDs, routing.excludeTags, routing.excludeSpanTypes),
                    ] where !(experiments.isEmpty && tags.isEmpty && types.isEmpty) {
                        add("      \(name):")
                        if !experiments.isEmpty { add("        experiment_ids: \(quoted(experiments))") }
                        if !tags.isEmpty { add("        tags: \(quoted(tags))") }
                        if !types.isEmpty { add("        span_types: \(quoted(types))") }
                    }
                    if routing.sampleRatio < 1 { add("      sample_ratio: \(routing.sampleRatio)") }
                }
                let tls = destination.tls
                if tls != TLSSettings() {
                    add("    tls:")
                    if let value = tls.caFile { add("      ca_file: \(v(value))") }
                    if let value = tls.certFile { add("      cert_file: \(v(value))") }
                    if let value = tls.keyFile { add("      key_file: \(v(value))") }
                    if tls.insecure { add("      insecure: true") }
                    if tls.insecureSkipVerify { add("      insecure_skip_verify: true") }
                    if let value = tls.serverName { add("      server_name: \(v(value))") }
                }
            }
        }
        if !metricsExports.isEmpty {
            add("metrics_exports:")
            for metrics in metricsExports {
                add(
                    "  \(v(metrics.destination.name)): { endpoint: \(f(metrics.destination.endpoint)), protocol: \(metrics.destination.transportProtocol.rawValue), "
                        + "temporality: \(metrics.temporality.rawValue), interval: \(duration(metrics.interval)) }")
            }
        }
        if let localTracesFile { add("traces_file: \(v(localTracesFile))") }
        add("trace_info_wait: \(duration(traceInfoWait))")
        add("shutdown_timeout: \(duration(shutdownTimeout))")
        add("assembly:")
        add("  max_traces_in_flight: \(assemblyLimits.maxTracesInFlight)")
        add("  max_spans_per_trace: \(assemblyLimits.maxSpansPerTrace)")
        add("  max_bytes_held: \(assemblyLimits.maxBytesHeld)")
        add("batch:")
        add("  schedule_delay: \(duration(delivery.scheduleDelay))")
        add("  max_export_batch_size: \(delivery.maxExportBatchSize)")
        add("  max_export_batch_bytes: \(delivery.maxExportBatchBytes)")
        add("  max_queue_size: \(delivery.maxQueueSize)")
        add("sending_queue:")
        add("  max_bytes: \(delivery.maxQueueBytes)")
        add("  full_policy: \(delivery.fullPolicy.rawValue)")
        if let spool = delivery.spool {
            add("  spool: { directory: \(f(spool.directory)), max_bytes: \(spool.maxBytes), fsync: \(spool.fsync) }")
        } else {
            add("  spool: none  # memory only")
        }
        let retry = delivery.retry
        add("retry_on_failure:")
        add("  enabled: \(retry.enabled)")
        add("  initial_interval: \(duration(retry.initialInterval))")
        add("  max_interval: \(duration(retry.maxInterval))")
        add("  max_elapsed_time: \(retry.maxElapsedTime.map { duration($0) } ?? "0  # until delivered")")
        add("  multiplier: \(retry.multiplier)")
        add("  randomization_factor: \(retry.randomizationFactor)")
        add("limits:")
        add("  max_trace_body_bytes: \(maxTraceBodyBytes)")
        add("  max_passthrough_body_bytes: \(limits.maxPassthroughBodyBytes.map(String.init) ?? "none  # streamed without a cap")")
        add("  max_header_bytes: \(limits.maxHeaderBytes)")
        add("  request_read_timeout: \(duration(limits.requestReadTimeout))")
        add("  request_timeout: \(duration(limits.requestTimeout))")
        add("  min_body_rate: \(limits.minBodyBytesPerSecond.map { "\($0)  # bytes/s" } ?? "0  # none")")
        add("  min_body_rate_grace_period: \(duration(limits.minBodyRateGracePeriod))")
        add("  response_write_timeout: \(duration(limits.responseWriteTimeout))")
        add("  idle_timeout: \(duration(limits.idleTimeout))")
        add("  max_connections: \(limits.maxConnections)")
        add("  max_body_bytes_in_memory: \(limits.maxBodyBytesInMemory)")
        for (key, value) in [("tls", tls), ("admin_tls", adminTLS)] {
            guard let value else { continue }
            add("\(key):")
            add("  cert_file: \(v(value.certFile))")
            add("  key_file: \(v(value.keyFile))")
        }
        add("attachments:")
        add("  directory: \(attachmentsDirectory.map { v($0) } ?? "none  # accepted and discarded")")
        add("  max_bytes: \(attachmentsMaxBytes)")
        if resource.serviceName != nil || !resource.attributes.isEmpty {
            add("service:")
            if let name = resource.serviceName { add("  name: \(v(name))") }
            if !resource.attributes.isEmpty {
                add("  resource_attributes:")
                for attribute in resource.attributes { add("    \(v(attribute.key)): \(v(attribute.value))") }
            }
        }
        for warning in warnings { add("# warning: \(warning.replacingOccurrences(of: "\n", with: " "))") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `text` as a YAML scalar: as it is when the YAML parser (Yams) reads it back as the same string, otherwise
    /// double-quoted with YAML's escapes (those of a JSON string). Inside a flow mapping, text with `,`, `[`, `]`, `{` or `}` is quoted too.
    static func yamlScalar(_ text: String, inFlow: Bool = false) -> String {
        let flowSafe = !inFlow || !text.contains(where: { ",[]{}".contains($0) })
        if flowSafe, !text.isEmpty, !text.contains(where: { $0.isNewline }), let parsed = try? Yams.load(yaml: "k: " + text) as? [String: Any],
            parsed["k"] as? String == text
        {
            return text
        }
        // A JSON string is a YAML double-quoted scalar with the same escapes; DEL, which YAML does not allow as it is,
        // is escaped too.
        return JSONValue.string(text).text.replacingOccurrences(of: "\u{7F}", with: "\\u007F")
    }
}
