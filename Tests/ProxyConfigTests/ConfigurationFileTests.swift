import Delivery
import Foundation
import HTTPListener
import OTLPExport
import ProxyConfig
import ProxySettings
import SharedSettings
import Testing
import UpstreamAccess
import Yams

struct ConfigurationFileTests {
    func load(_ yaml: String, env: [String: String] = [:], flags: CommandLineSettings = CommandLineSettings()) throws -> ProxyConfiguration {
        try ProxyConfiguration.load(environment: env, flags: flags, fileText: yaml)
    }

    func problems(_ yaml: String, env: [String: String] = [:]) -> [String] {
        do {
            _ = try load(yaml, env: env)
            return []
        } catch {
            return (error as? ConfigurationError)?.problems.map { "\($0.setting): \($0.reason)" } ?? ["\(error)"]
        }
    }

    @Test func everyProfileFillsInEndpointAndAuthHeader() throws {
        let config = try load(
            """
            destinations:
              dd: { profile: datadog, site: datadoghq.eu, api_key: "${env:DD_API_KEY}" }
              grafana: { profile: grafana, zone: prod-us-east-0, instance_id: "12345", token: glc_abc }
              splunk: { profile: splunk, realm: us1, access_token: sf-token, protocol: http/protobuf }
              newrelic: { profile: newrelic, region: eu, license_key: nr-key, protocol: http/protobuf }
              honeycomb: { profile: honeycomb, api_key: hc-key, protocol: http/protobuf }
              signoz: { profile: signoz, region: in, ingestion_key: sz-key, protocol: http/protobuf }
              lightstep: { profile: lightstep, access_token: ls-token, protocol: http/protobuf }
              dynatrace: { profile: dynatrace, environment_url: "https://abc12345.live.dynatrace.com", api_token: dt0c01.x }
              collector: { endpoint: "http://collector:4318", protocol: http/protobuf, headers: { x-scope-orgid: team-a }, compression: gzip, timeout: 2s }
            """, env: ["DD_API_KEY": "dd-key"])
        let byName = Dictionary(uniqueKeysWithValues: config.destinations.map { ($0.name, $0) })
        func check(_ name: String, _ endpoint: String, _ header: String, _ value: String, limit: Int? = nil) {
            #expect(byName[name]?.endpoint.description == endpoint, "\(name)")
            #expect(byName[name]?.headers.first { $0.key == header }?.value == value, "\(name)")
            #expect(byName[name]?.maxRequestBytes == limit, "\(name)")
        }
        check("dd", "https://otlp.datadoghq.eu/v1/traces", "dd-api-key", "dd-key", limit: 3_200_000)
        check(
            "grafana", "https://otlp-gateway-prod-us-east-0.grafana.net/otlp/v1/traces", "Authorization",
            "Basic " + Data("12345:glc_abc".utf8).base64EncodedString())
        check("splunk", "https://ingest.us1.signalfx.com/v2/trace/otlp", "X-SF-Token", "sf-token")
        check("newrelic", "https://otlp.eu01.nr-data.net/v1/traces", "api-key", "nr-key", limit: 1_000_000)
        let fedramp = try load("destinations: { nr: { profile: newrelic, region: fedramp, license_key: k, protocol: http/protobuf } }")
        #expect(fedramp.destinations.first?.endpoint.description == "https://gov-otlp.nr-data.net/v1/traces")
        check("honeycomb", "https://api.honeycomb.io/v1/traces", "x-honeycomb-team", "hc-key")
        check("signoz", "https://ingest.in.signoz.cloud:443/v1/traces", "signoz-ingestion-key", "sz-key")
        check("lightstep", "https://ingest.lightstep.com:443/v1/traces", "lightstep-access-token", "ls-token")
        check("dynatrace", "https://abc12345.live.dynatrace.com/api/v2/otlp/v1/traces", "Authorization", "Api-Token dt0c01.x", limit: 8_000_000)
        check("collector", "http://collector:4318/v1/traces", "x-scope-orgid", "team-a")
        #expect(byName["collector"]?.compression == .gzip)
        #expect(byName["collector"]?.timeout == .seconds(2))
        #expect(config.mode == .openTelemetryOnly)
    }

    @Test func explicitKeysOverrideTheProfile() throws {
        let config = try load(
            """
            destinations:
              dd:
                profile: datadog
                api_key: k
                traces_endpoint: http://127.0.0.1:9999/intake
                headers: { dd-api-key: override, dd-otlp-source: llmobs }
                protocol: http/json
            """)
        let dd = try #require(config.destinations.first)
        #expect(dd.endpoint.description == "http://127.0.0.1:9999/intake")
        #expect(dd.headers == [KeyValuePair("dd-api-key", "override"), KeyValuePair("dd-otlp-source", "llmobs")])
        #expect(dd.transportProtocol == .httpJSON)
    }

    @Test func badKeysAreNamedByTheirPath() {
        let found = problems(
            """
            listen: nowhere
            upstream: { url: "ftp://x", client_authorization: sometimes }
            mode: turbo
            destinations:
              dd: { profile: datadog, site: datadoghq.xx, api_key: "${env:MISSING_KEY}" }
              nr: { profile: newrelic, region: mars, license_key: "" }
              grafana: { profile: grafana, zone: prod-eu-west-0, instance_id: "1", token: "${file:/nonexistent/token}" }
              typo: { endpont: "http://x" }
              dyn: { profile: dynatrace, environment_url: "https://e.live.dynatrace.com", api_token: t, protocol: grpc }
              tls: { endpoint: "https://x", tls: { ca_file: /nonexistent/ca.pem, cert_file: /etc/hostname } }
            batch: { max_queue_size: -3 }
            unknown_top: 1
            """)
        let expected = [
            "listen: expected HOST:PORT",
            "upstream.url: expected an http:// or https:// URL",
            "upstream.client_authorization: unknown value \"sometimes\", expected one of keep, replace",
            "mode: unknown value \"turbo\"",
            "destinations.dd.site: unknown site \"datadoghq.xx\", expected one of datadoghq.com",
            "destinations.dd.api_key: the environment variable MISSING_KEY is not set",
            "destinations.nr.region: unknown region \"mars\", expected one of us, eu, fedramp",
            "destinations.nr.license_key: is empty; a secret must have a value",
            "destinations.grafana.token: cannot read the secret file /nonexistent/token",
            "destinations.typo.endpont: unknown key",
            "destinations.dyn.protocol: the dynatrace profile supports http/protobuf, not grpc",
            "destinations.tls.tls.ca_file: cannot read the file /nonexistent/ca.pem",
            "destinations.tls.tls: mutual TLS needs both cert_file and key_file",
            "batch.max_queue_size: expected a positive whole number",
            "unknown_top: unknown key",
        ]
        for prefix in expected {
            #expect(found.contains { $0.hasPrefix(prefix) }, "missing: \(prefix)\nfound:\n\(found.joined(separator: "\n"))")
        }
        // Errors never carry a secret's value.
        #expect(!found.joined().contains("glc_"))
    }

    @Test func secretsComeFromEnvironmentAndFiles() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("token-\(UUID().uuidString)")
        try "  file-secret\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let config = try load(
            """
            upstream:
              url: http://mlflow:5000
              headers: { Authorization: "Bearer ${env:MLFLOW_TOKEN}", X-Literal: "cost $$5" }
              client_authorization: replace
            destinations:
              c: { endpoint: "http://c:4318", headers: { a: "${file:\(file.path)}", b: "${B_KEY}" } }
            """, env: ["MLFLOW_TOKEN": "t0k", "B_KEY": "bee"])
        #expect(config.upstreamHeaders == [KeyValuePair("Authorization", "Bearer t0k"), KeyValuePair("X-Literal", "cost $5")])
        #expect(config.clientAuthorization == .replace)
        #expect(config.destinations.first?.headers == [KeyValuePair("a", "file-secret"), KeyValuePair("b", "bee")])
        // The redacted dump shows no secret.
        let dump = config.redactedYAML
        for secret in ["t0k", "file-secret", "bee", "cost"] { #expect(!dump.contains(secret), "\(secret) leaked") }
        #expect(dump.contains("Authorization: \"***\""))
    }

    @Test func anExplicitEndpointMakesTheLocationKeyOptional() throws {
        let config = try load(
            """
            destinations:
              splunk: { profile: splunk, access_token: sf, traces_endpoint: "https://gateway.internal/v2/trace/otlp" }
              dt: { profile: dynatrace, api_token: dt0c01, traces_endpoint: "https://ag.internal:9999/e/abc/api/v2/otlp/v1/traces" }
              dd: { profile: datadog, api_key: k, traces_endpoint: "https://dd-gateway.internal/v1/traces" }
            """)
        let byName = Dictionary(uniqueKeysWithValues: config.destinations.map { ($0.name, $0) })
        #expect(byName["splunk"]?.headers == [KeyValuePair("X-SF-Token", "sf")])
        #expect(byName["splunk"]?.endpoint.description == "https://gateway.internal/v2/trace/otlp")
        #expect(byName["dt"]?.headers == [KeyValuePair("Authorization", "Api-Token dt0c01")] && byName["dt"]?.maxRequestBytes == 8_000_000)
        #expect(byName["dd"]?.transportProtocol == .httpProtobuf && byName["dd"]?.maxRequestBytes == 3_200_000)
        // Without an endpoint the location key is still required.
        #expect(
            problems("destinations:\n  s: { profile: splunk, access_token: sf }\n") == ["destinations.s.realm: is required by the splunk profile"])
    }

    @Test func vendorMetricsEndpointsTemporalityAndDataset() throws {
        let config = try load(
            """
            destinations:
              ls: { profile: lightstep, access_token: t, protocol: http/protobuf, metrics: {} }
              dt: { profile: dynatrace, environment_url: "https://abc.live.dynatrace.com", api_token: t, metrics: {} }
              hc: { profile: honeycomb, api_key: k, metrics_dataset: ml-metrics, protocol: http/protobuf, metrics: {} }
            """)
        let byName = Dictionary(uniqueKeysWithValues: config.metricsExports.map { ($0.destination.name, $0) })
        #expect(byName["ls"]?.destination.endpoint.description == "https://ingest.lightstep.com:443/metrics/otlp/v0.9")
        #expect(byName["dt"]?.destination.endpoint.description == "https://abc.live.dynatrace.com/api/v2/otlp/v1/metrics")
        #expect(byName["dt"]?.temporality == .delta)
        #expect(byName["hc"]?.destination.headers == [KeyValuePair("x-honeycomb-team", "k"), KeyValuePair("x-honeycomb-dataset", "ml-metrics")])
        // The dataset header goes with metrics only, not with traces.
        #expect(config.destinations.first { $0.name == "hc" }?.headers == [KeyValuePair("x-honeycomb-team", "k")])
    }

    @Test func destinationsHaveTheirOwnRetryAndQueueSettingsOverTheTopLevel() throws {
        let config = try load(
            """
            retry_on_failure: { initial_interval: 1s, max_elapsed_time: 60s }
            sending_queue: { max_bytes: 1000000, full_policy: drop_oldest }
            destinations:
              vendor: { endpoint: "http://v:4317", retry_on_failure: { max_elapsed_time: 0s, multiplier: 2 }, sending_queue: { full_policy: refuse } }
              other: { endpoint: "http://o:4317" }
            """)
        let vendor = config.delivery(for: try #require(config.destinations.first { $0.name == "vendor" }))
        let other = config.delivery(for: try #require(config.destinations.first { $0.name == "other" }))
        #expect(vendor.retry.initialInterval == .seconds(1) && vendor.retry.maxElapsedTime == nil && vendor.retry.multiplier == 2)
        #expect(vendor.fullPolicy == .refuse && vendor.maxQueueBytes == 1_000_000)
        #expect(other == config.delivery && other.retry.maxElapsedTime == .seconds(60) && other.fullPolicy == .dropOldest)
        let bad = problems(
            """
            destinations:
              v: { endpoint: "http://v:4317", retry_on_failure: { multiplier: 0.5, backoff: 1s }, sending_queue: { full_policy: block, spool: { directory: /x } } }
            """)
        #expect(bad.contains { $0.hasPrefix("destinations.v.retry_on_failure.multiplier: must be at least 1") })
        #expect(bad.contains { $0.hasPrefix("destinations.v.retry_on_failure.backoff") })
        #expect(bad.contains { $0.hasPrefix("destinations.v.sending_queue.full_policy") })
        #expect(bad.contains { $0.hasPrefix("destinations.v.sending_queue.spool: is set at the top level") })
    }

    @Test func environmentReferencesTakeACollectorStyleDefault() throws {
        let text = """
            service: { name: "${env:SERVICE:-checkout}" }
            destinations:
              c: { endpoint: "${env:COLLECTOR:-http://localhost:4317}", headers: { team: "${TEAM:-ml-${none}}" } }
            """
        let defaults = try load(text.replacingOccurrences(of: "${none}", with: "platform"))
        #expect(defaults.resource.serviceName == "checkout")
        #expect(defaults.destinations.first?.endpoint.description == "http://localhost:4317")
        #expect(defaults.destinations.first?.headers == [KeyValuePair("team", "ml-platform")])
        // A set variable wins; an empty one counts as unset.
        let set = try load(text.replacingOccurrences(of: "${none}", with: "x"), env: ["SERVICE": "svc", "COLLECTOR": "", "TEAM": "search"])
        #expect(set.resource.serviceName == "svc" && set.destinations.first?.endpoint.description == "http://localhost:4317")
        #expect(set.destinations.first?.headers == [KeyValuePair("team", "search")])
        // Without a default, a missing variable is still an error naming it.
        #expect(problems("service: { name: \"${env:NOPE}\" }\n").contains { $0.contains("NOPE is not set") })
    }

    @Test func precedenceIsFlagsThenFileThenEnvironment() throws {
        let env = [
            "MLFLOW_TRACKING_URI": "http://env:5000", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env-collector:4318",
            "MLFLOW_TRACKING_TOKEN": "env-token",
        ]
        let fromFile = try load("upstream: http://file:5000\ndestinations:\n  extra: { endpoint: \"http://x:4318\" }\n", env: env)
        #expect(fromFile.upstream?.description == "http://file:5000")
        #expect(fromFile.destinations.map(\.name) == ["otlp", "extra"])  // the environment's destination is kept
        #expect(fromFile.upstreamHeaders == [KeyValuePair("Authorization", "Bearer env-token")])
        let flagged = try load("upstream: http://file:5000\n", env: env, flags: CommandLineSettings(upstream: "http://flag:5000"))
        #expect(flagged.upstream?.description == "http://flag:5000")
        // A file destination named otlp replaces the environment's.
        let replaced = try load("destinations:\n  otlp: { endpoint: \"http://file-collector:4318\", protocol: http/protobuf }\n", env: env)
        #expect(replaced.destinations.map(\.endpoint.description) == ["http://file-collector:4318/v1/traces"])
        // The file can switch dual export on.
        #expect(try load("mode: dual\n", env: env).mode == .dual)
        #expect(throws: ConfigurationError.self) { try load("mode: dual\n") }
    }

    @Test func destinationsCanExportMetricsToo() throws {
        let config = try load(
            """
            destinations:
              dd: { profile: datadog, site: datadoghq.eu, api_key: k, metrics: { enabled: true } }
              splunk: { profile: splunk, realm: us1, access_token: t, protocol: http/protobuf, metrics: {} }
              c: { endpoint: "http://c:4318", protocol: http/protobuf, metrics: { temporality: delta, interval: 15s } }
              tracesonly: { endpoint: "http://t:4318" }
              off: { endpoint: "http://o:4318", metrics: { enabled: false } }
            """)
        let byName = Dictionary(uniqueKeysWithValues: config.metricsExports.map { ($0.destination.name, $0) })
        #expect(Set(byName.keys) == ["dd", "splunk", "c"])
        #expect(byName["dd"]?.destination.endpoint.description == "https://otlp.datadoghq.eu/v1/metrics")
        #expect(byName["dd"]?.temporality == .delta)  // Datadog accepts delta only
        #expect(byName["dd"]?.destination.headers == [KeyValuePair("dd-api-key", "k")])
        #expect(byName["splunk"]?.destination.endpoint.description == "https://ingest.us1.signalfx.com/v2/datapoint/otlp")
        #expect(byName["splunk"]?.temporality == .cumulative)
        #expect(byName["c"]?.destination.endpoint.description == "http://c:4318/v1/metrics")
        #expect(byName["c"]?.interval == .seconds(15) && byName["c"]?.temporality == .delta)
        #expect(
            problems("destinations:\n  x: { traces_endpoint: \"http://x/custom\", metrics: { enabled: true } }\n").first?.hasPrefix(
                "destinations.x.metrics.endpoint") == true)
    }

    @Test func inboundTokensComeFromTheEnvironmentOrTheFile() throws {
        #expect(try ProxyConfiguration.load(environment: ["MLFLOW_OTEL_PROXY_INBOUND_TOKENS": "a, b,"]).inboundTokens == ["a", "b"])
        let config = try load("inbound_auth: { tokens: [\"${env:T1}\", literal] }\n", env: ["T1": "from-env"])
        #expect(config.inboundTokens == ["from-env", "literal"])
        let dump = try #require(try Yams.load(yaml: config.redactedYAML) as? [String: Any])
        #expect(!config.redactedYAML.contains("from-env"))
        #expect(
            (dump["inbound_auth"] as? [String: Any])?["count"] as? Int == 2 && (dump["inbound_auth"] as? [String: Any])?["tokens"] as? String == "***"
        )
        #expect(problems("inbound_auth: { tokens: \"${env:MISSING}\" }\n").first?.hasPrefix("inbound_auth.tokens") == true)
    }

    @Test func invalidYAMLIsReported() {
        #expect(problems("destinations: [unclosed").first?.hasPrefix("config file: not valid YAML") == true)
    }

    @Test func limitsAndListenerTLSAreReadAndChecked() throws {
        let config = try load(
            """
            limits: { max_trace_body_bytes: 1000, max_passthrough_body_bytes: 2000, max_header_bytes: 4096, request_read_timeout: 5s, idle_timeout: 0, max_connections: 10,
                      request_timeout: 0, min_body_rate: 500, min_body_rate_grace_period: 2s, response_write_timeout: 30s, max_body_bytes_in_memory: 1_000_000 }
            """)
        #expect(config.maxTraceBodyBytes == 1000)
        #expect(config.limits.maxPassthroughBodyBytes == 2000)
        #expect(config.limits.maxHeaderBytes == 4096)
        #expect(config.limits.requestReadTimeout == .seconds(5))
        #expect(config.limits.idleTimeout == nil)
        #expect(config.limits.maxConnections == 10)
        #expect(config.limits.requestTimeout == nil && config.limits.minBodyBytesPerSecond == 500)
        #expect(config.limits.minBodyRateGracePeriod == .seconds(2) && config.limits.responseWriteTimeout == .seconds(30))
        #expect(config.limits.maxBodyBytesInMemory == 1_000_000)
        #expect(try load("limits: { min_body_rate: 0, response_write_timeout: 0 }").limits.minBodyBytesPerSecond == nil)
        #expect(try load("").limits == ConnectionLimits())
        #expect(
            problems("limits: { max_connections: -1, request_read_timeout: 0s, max_header: 1, min_body_rate: -5, max_body_bytes_in_memory: 0 }")
                .sorted()
                == [
                    "limits.max_body_bytes_in_memory: expected a positive whole number, got \"0\"",
                    "limits.max_connections: expected a positive whole number, got \"-1\"",
                    "limits.max_header: unknown key, expected one of max_trace_body_bytes, max_passthrough_body_bytes, max_header_bytes, "
                        + "request_read_timeout, idle_timeout, max_connections, request_timeout, min_body_rate, min_body_rate_grace_period, "
                        + "response_write_timeout, max_body_bytes_in_memory",
                    "limits.min_body_rate: expected a whole number (0 or more), got \"-5\"",
                    "limits.request_read_timeout: must be more than zero",
                ].sorted())
        #expect(
            problems("tls: { cert_file: /nonexistent.pem }") == [
                "tls.cert_file: cannot read the file /nonexistent.pem",
                "tls.key_file: is required: a listener with TLS needs a certificate chain and its private key (PEM)",
            ])
        let env = try ProxyConfiguration.load(environment: ["MLFLOW_OTEL_PROXY_TLS_CERT_FILE": "/c.pem", "MLFLOW_OTEL_PROXY_TLS_KEY_FILE": "/k.pem"])
        #expect(env.tls == ListenerTLS(certFile: "/c.pem", keyFile: "/k.pem"))
        #expect(throws: ConfigurationError.self) { try ProxyConfiguration.load(environment: ["MLFLOW_OTEL_PROXY_TLS_KEY_FILE": "/k.pem"]) }
    }

    /// Regression test for the first crash the configuration fuzzer found (Tests/scripts/fuzz.sh config-file,
    /// 10⁶ runs): a duration too large for whole milliseconds trapped instead of being reported.
    @Test func durationsOutOfRangeAreProblemsNotCrashes() throws {
        let huge = String(repeating: "2", count: 100) + "5"
        for value in [huge, "1e300ms", "inf", "nan", "-1s", "1e10"] {
            #expect(problems("limits: { idle_timeout: \(value) }").first?.hasPrefix("limits.idle_timeout: expected a duration") == true, "\(value)")
        }
        #expect(throws: ConfigurationError.self) { try ProxyConfiguration.load(environment: ["MLFLOW_OTEL_PROXY_TRACE_INFO_WAIT": "1e300"]) }
        #expect(throws: ConfigurationError.self) {
            try ProxyConfiguration.load(environment: [:], flags: CommandLineSettings(traceInfoWaitSeconds: .infinity))
        }
        #expect(try load("limits: { idle_timeout: 1.5m }").limits.idleTimeout == .seconds(90))
    }
}
