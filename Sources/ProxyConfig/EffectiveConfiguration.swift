import Delivery
import Foundation
import HTTPListener
import OTLPExport
import ProxySettings
import SharedSettings
import SpanShaping
import UpstreamAccess
import Yams

/// Renders the effective configuration as YAML for `check-config`: every setting after all layers applied,
/// every header value (and so every credential) shown as `***`. The document is a Yams node tree written by Yams'
/// emitter (so any text from the operator or the environment is quoted as YAML needs it); what a value means when
/// it is not obvious (`upstream: none`) and the configuration's warnings follow as comment lines.
extension ProxyConfiguration {
    /// The redacted YAML text.
    public var redactedYAML: String {
        var notes: [String] = []
        var root = YAMLMapping()
        root["mode"] = .plain(mode.rawValue)
        root["listen"] = .text(listen.description)
        root["admin_listen"] = .text(adminListen?.description ?? "off")
        root["inbound_auth"] = inboundTokens.isEmpty ? .plain("off") : .mapping(["tokens": .secret, "count": .plain(inboundTokens.count)])
        root["admin"] = .mapping(adminTokens.isEmpty ? ["tokens": .plain("none")] : ["tokens": .secret, "count": .plain(adminTokens.count)])
        if adminTokens.isEmpty { notes.append("admin tokens none: /status and /metrics are open to anyone who reaches the admin listener") }
        if let configFile { root["config_file"] = .text(configFile) }
        if let upstream {
            var map = YAMLMapping()
            map["url"] = .text(upstream.description)
            map["timeout"] = .duration(upstreamTimeout)
            if !upstreamHeaders.isEmpty { map["headers"] = .redactedHeaders(upstreamHeaders) }
            if let upstreamOAuth {
                map["oauth"] = .mapping([
                    "token_url": .text(upstreamOAuth.tokenURL.description), "client_id": .text(upstreamOAuth.clientID), "client_secret": .secret,
                ])
            }
            map["client_authorization"] = .plain(clientAuthorization.rawValue)
            root["upstream"] = .mapping(map)
        } else {
            root["upstream"] = .plain("none")
            notes.append("upstream none: standalone, the proxy answers the trace API itself")
        }
        var destinationsMap = YAMLMapping()
        for destination in destinations {
            var map = YAMLMapping()
            map["profile"] = .plain(destination.profile.rawValue)
            map["endpoint"] = .text(destination.endpoint.description)
            map["protocol"] = .plain(destination.transportProtocol.rawValue)
            if !destination.headers.isEmpty { map["headers"] = .redactedHeaders(destination.headers) }
            map["compression"] = .plain(destination.compression.rawValue)
            map["timeout"] = .duration(destination.timeout)
            if let limit = destination.maxRequestBytes { map["max_request_bytes"] = .plain(limit) }
            let own = self.delivery(for: destination)
            map["on_auth_failure"] = .plain(own.onAuthFailure.rawValue)
            if own.onAuthFailure == .hold { map["auth_retry_interval"] = .duration(own.authRetryInterval) }
            let policy = destination.policy
            map["semconv"] = .list(policy.conventions.map(\.rawValue))
            if policy.datadogLLMObservability { map["llm_observability"] = .plain(true) }
            let redaction = policy.redaction
            if !redaction.isEmpty {
                var redactionMap = YAMLMapping()
                if !redaction.dropAttributes.isEmpty { redactionMap["drop_attributes"] = .list(redaction.dropAttributes) }
                if !redaction.maskJSONPaths.isEmpty { redactionMap["mask_json_paths"] = .list(redaction.maskJSONPaths) }
                if !redaction.maskPatterns.isEmpty {
                    // A pattern may be the very value it masks (a known key): only presets are shown by name.
                    redactionMap["mask_patterns"] = .list(redaction.maskPatterns.map { $0.hasPrefix("preset:") ? $0 : "***" })
                }
                if redaction.metadataOnly { redactionMap["metadata_only"] = .plain(true) }
                map["redaction"] = .mapping(redactionMap)
            }
            if policy.limits != SpanSizeLimits() {
                var limitsMap = YAMLMapping()
                if let value = policy.limits.maxAttributeValueLength { limitsMap["max_attribute_value_length"] = .plain(value) }
                if let value = policy.limits.maxAttributesPerSpan { limitsMap["max_attributes_per_span"] = .plain(value) }
                map["limits"] = .mapping(limitsMap)
            }
            let routing = policy.routing
            if !routing.routesEverything {
                var routingMap = YAMLMapping()
                for (name, experiments, tags, types) in [
                    ("include", routing.includeExperimentIDs, routing.includeTags, routing.includeSpanTypes),
                    ("exclude", routing.excludeExperimentIDs, routing.excludeTags, routing.excludeSpanTypes),
                ] where !(experiments.isEmpty && tags.isEmpty && types.isEmpty) {
                    var selection = YAMLMapping()
                    if !experiments.isEmpty { selection["experiment_ids"] = .list(experiments) }
                    if !tags.isEmpty { selection["tags"] = .list(tags) }
                    if !types.isEmpty { selection["span_types"] = .list(types) }
                    routingMap[name] = .mapping(selection)
                }
                if routing.sampleRatio < 1 { routingMap["sample_ratio"] = .plain(routing.sampleRatio) }
                map["routing"] = .mapping(routingMap)
            }
            let tls = destination.tls
            if tls != TLSSettings() {
                var tlsMap = YAMLMapping()
                if let value = tls.caFile { tlsMap["ca_file"] = .text(value) }
                if let value = tls.certFile { tlsMap["cert_file"] = .text(value) }
                if let value = tls.keyFile { tlsMap["key_file"] = .text(value) }
                if tls.insecure { tlsMap["insecure"] = .plain(true) }
                if tls.insecureSkipVerify { tlsMap["insecure_skip_verify"] = .plain(true) }
                if let value = tls.serverName { tlsMap["server_name"] = .text(value) }
                map["tls"] = .mapping(tlsMap)
            }
            destinationsMap[text: destination.name] = .mapping(map)
        }
        root["destinations"] = .mapping(destinationsMap)
        if !metricsExports.isEmpty {
            var metricsMap = YAMLMapping()
            for metrics in metricsExports {
                metricsMap[text: metrics.destination.name] = .mapping([
                    "endpoint": .text(metrics.destination.endpoint.description), "protocol": .plain(metrics.destination.transportProtocol.rawValue),
                    "temporality": .plain(metrics.temporality.rawValue), "interval": .duration(metrics.interval),
                ])
            }
            root["metrics_exports"] = .mapping(metricsMap)
        }
        if let localTracesFile { root["traces_file"] = .text(localTracesFile) }
        root["trace_info_wait"] = .duration(traceInfoWait)
        root["shutdown_timeout"] = .duration(shutdownTimeout)
        root["assembly"] = .mapping([
            "max_traces_in_flight": .plain(assemblyLimits.maxTracesInFlight), "max_spans_per_trace": .plain(assemblyLimits.maxSpansPerTrace),
            "max_bytes_held": .plain(assemblyLimits.maxBytesHeld),
        ])
        root["batch"] = .mapping([
            "schedule_delay": .duration(delivery.scheduleDelay), "max_export_batch_size": .plain(delivery.maxExportBatchSize),
            "max_export_batch_bytes": .plain(delivery.maxExportBatchBytes), "max_queue_size": .plain(delivery.maxQueueSize),
        ])
        var queueMap: YAMLMapping = ["max_bytes": .plain(delivery.maxQueueBytes), "full_policy": .plain(delivery.fullPolicy.rawValue)]
        if let spool = delivery.spool {
            queueMap["spool"] = .mapping(["directory": .text(spool.directory), "max_bytes": .plain(spool.maxBytes), "fsync": .plain(spool.fsync)])
        } else {
            queueMap["spool"] = .plain("none")
            notes.append("sending_queue.spool none: queued batches are held in memory only")
        }
        root["sending_queue"] = .mapping(queueMap)
        let retry = delivery.retry
        root["retry_on_failure"] = .mapping([
            "enabled": .plain(retry.enabled), "initial_interval": .duration(retry.initialInterval), "max_interval": .duration(retry.maxInterval),
            "max_elapsed_time": retry.maxElapsedTime.map { .duration($0) } ?? .plain(0), "multiplier": .plain(retry.multiplier),
            "randomization_factor": .plain(retry.randomizationFactor),
        ])
        if retry.maxElapsedTime == nil { notes.append("retry_on_failure.max_elapsed_time 0: a batch is retried until it is delivered") }
        root["limits"] = .mapping([
            "max_trace_body_bytes": .plain(maxTraceBodyBytes),
            "max_passthrough_body_bytes": limits.maxPassthroughBodyBytes.map { .plain($0) } ?? .plain("none"),
            "max_header_bytes": .plain(limits.maxHeaderBytes), "request_read_timeout": .duration(limits.requestReadTimeout),
            "request_timeout": .duration(limits.requestTimeout), "min_body_rate": .plain(limits.minBodyBytesPerSecond ?? 0),
            "min_body_rate_grace_period": .duration(limits.minBodyRateGracePeriod),
            "response_write_timeout": .duration(limits.responseWriteTimeout), "idle_timeout": .duration(limits.idleTimeout),
            "max_connections": .plain(limits.maxConnections), "max_body_bytes_in_memory": .plain(limits.maxBodyBytesInMemory),
        ])
        if limits.maxPassthroughBodyBytes == nil {
            notes.append("limits.max_passthrough_body_bytes none: passthrough bodies are streamed without a cap")
        }
        for (key, value) in [("tls", tls), ("admin_tls", adminTLS)] {
            guard let value else { continue }
            root[key] = .mapping(["cert_file": .text(value.certFile), "key_file": .text(value.keyFile)])
        }
        root["attachments"] = .mapping([
            "directory": attachmentsDirectory.map { .text($0) } ?? .plain("none"), "max_bytes": .plain(attachmentsMaxBytes),
        ])
        if attachmentsDirectory == nil { notes.append("attachments.directory none: trace attachments are accepted and discarded") }
        if resource.serviceName != nil || !resource.attributes.isEmpty {
            var service = YAMLMapping()
            if let name = resource.serviceName { service["name"] = .text(name) }
            if !resource.attributes.isEmpty {
                var attributes = YAMLMapping()
                for attribute in resource.attributes { attributes[text: attribute.key] = .text(attribute.value) }
                service["resource_attributes"] = .mapping(attributes)
            }
            root["service"] = .mapping(service)
        }
        let comments = notes.map { "# note: \($0)" } + warnings.map { "# warning: \($0)" }
        return YAMLValue.mapping(root).document + comments.map { $0.replacingOccurrences(of: "\n", with: " ") + "\n" }.joined()
    }
}

/// A value of the dump: Yams nodes with the few shapes the dump needs.
enum YAMLValue {
    /// A number, boolean or fixed word, written plain (it reads back as what it is).
    case plain(any CustomStringConvertible)
    /// Text from the operator or the environment: quoted whenever YAML would read it as anything but this string.
    case text(String)
    /// A hidden value: `"***"`.
    case secret
    /// A list of texts, on one line.
    case list([String])
    /// A nested mapping.
    case mapping(YAMLMapping)

    static func duration(_ value: Duration?) -> YAMLValue {
        guard let value else { return .plain("none") }
        let (seconds, attoseconds) = value.components
        let millis = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return .plain(millis % 1000 == 0 ? "\(millis / 1000)s" : "\(millis)ms")
    }

    /// Header names as they are, every value hidden.
    static func redactedHeaders(_ headers: [KeyValuePair]) -> YAMLValue {
        var map = YAMLMapping()
        for header in headers { map[text: header.key] = .secret }
        return .mapping(map)
    }

    var node: Node {
        switch self {
        case .plain(let value): .scalar(Node.Scalar(value.description))
        case .text(let text): .scalar(text.represented())
        case .secret: .scalar(Node.Scalar("***", Tag(.str), .doubleQuoted))
        case .list(let items): .sequence(Node.Sequence(items.map { .scalar($0.represented()) }, .implicit, .flow))
        case .mapping(let mapping): .mapping(Node.Mapping(mapping.pairs.map { ($0.key, $0.value.node) }))
        }
    }

    /// The YAML document (block style, long lines kept whole, Unicode as it is).
    var document: String {
        do {
            return try Yams.serialize(node: node, width: -1, allowUnicode: true)
        } catch {
            // The emitter fails only on text that is not valid UTF-8, which a Swift string cannot hold.
            return "# the effective configuration could not be written as YAML: \(error)\n"
        }
    }
}

/// A mapping of the dump in the order its entries are set (YAML keeps it).
struct YAMLMapping: ExpressibleByDictionaryLiteral {
    fileprivate(set) var pairs: [(key: Node, value: YAMLValue)] = []

    init() {}

    init(dictionaryLiteral elements: (String, YAMLValue)...) {
        pairs = elements.map { (Node.scalar(Node.Scalar($0.0)), $0.1) }
    }

    /// The entry under one of the dump's own (plain) keys; setting one that exists replaces its value in place.
    subscript(key: String) -> YAMLValue? {
        get { value(for: Node.scalar(Node.Scalar(key))) }
        set { set(Node.scalar(Node.Scalar(key)), newValue) }
    }

    /// The entry under a key the operator chose (a destination, header or attribute name): quoted as YAML needs.
    subscript(text key: String) -> YAMLValue? {
        get { value(for: Node.scalar(key.represented())) }
        set { set(Node.scalar(key.represented()), newValue) }
    }

    private func value(for key: Node) -> YAMLValue? { pairs.first { $0.key == key }?.value }

    private mutating func set(_ key: Node, _ value: YAMLValue?) {
        let index = pairs.firstIndex { $0.key == key }
        switch (index, value) {
        case (let index?, let value?): pairs[index].value = value
        case (let index?, nil): pairs.remove(at: index)
        case (nil, let value?): pairs.append((key, value))
        case (nil, nil): break
        }
    }
}
