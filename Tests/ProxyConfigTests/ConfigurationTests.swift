import Delivery
import Foundation
import HTTPListener
import OTLPExport
import ProxyConfig
import ProxySettings
import SharedSettings
import SpanShaping
import Testing
import UpstreamAccess

struct ConfigurationTests {
    @Test func noUpstreamAndNoEndpointIsTheStandaloneDemo() throws {
        let config = try ProxyConfiguration.load(environment: [:])
        #expect(config.mode == .standalone)
        #expect(config.localTracesFile == "./mlflow-otel-proxy-traces.jsonl")
        #expect(config.destinations.isEmpty)
        #expect(config.listen == ListenAddress(host: "127.0.0.1", port: 5000))
        #expect(config.upstream == nil)
    }

    @Test func modesAreDecidedAsMLflowDecidesThem() throws {
        let upstream = ["MLFLOW_TRACKING_URI": "http://mlflow:5000"]
        #expect(try ProxyConfiguration.load(environment: upstream).mode == .mlflowOnly)
        let otel = upstream.merging(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"]) { $1 }
        #expect(try ProxyConfiguration.load(environment: otel).mode == .openTelemetryOnly)
        let dual = otel.merging(["MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT": "true"]) { $1 }
        #expect(try ProxyConfiguration.load(environment: dual).mode == .dual)
        // The seed document's spelling is accepted too; booleans are case-insensitive "true" only.
        #expect(try ProxyConfiguration.load(environment: otel.merging(["MLFLOW_ENABLE_DUAL_EXPORT": "TRUE"]) { $1 }).mode == .dual)
        #expect(try ProxyConfiguration.load(environment: otel.merging(["MLFLOW_ENABLE_DUAL_EXPORT": "1"]) { $1 }).mode == .openTelemetryOnly)
        // MLflow's switch to ignore the OTLP variables.
        #expect(try ProxyConfiguration.load(environment: otel.merging(["MLFLOW_ENABLE_OTLP_EXPORTER": "false"]) { $1 }).mode == .mlflowOnly)
        // An endpoint without an upstream: the proxy answers the trace API and exports.
        let standaloneExport = try ProxyConfiguration.load(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"])
        #expect(standaloneExport.mode == .openTelemetryOnly)
        #expect(standaloneExport.upstream == nil)
    }

    @Test func flagsWinOverVariables() throws {
        let config = try ProxyConfiguration.load(
            environment: ["MLFLOW_TRACKING_URI": "http://env:5000", "MLFLOW_OTEL_PROXY_LISTEN": "0.0.0.0:1"],
            flags: CommandLineSettings(listen: "127.0.0.1:6000", upstream: "https://flag.example/prefix/")
        )
        #expect(config.listen == ListenAddress(host: "127.0.0.1", port: 6000))
        #expect(config.upstream?.description == "https://flag.example/prefix/")
        #expect(config.upstream?.basePath == "/prefix")
    }

    @Test func genericEndpointGetsTheSignalPathAppended() throws {
        func endpoint(_ env: [String: String]) throws -> String? {
            let http = env.merging(["OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"]) { old, _ in old }
            return try ProxyConfiguration.load(environment: http).destinations.first?.endpoint.description
        }
        #expect(try endpoint(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"]) == "http://collector:4318/v1/traces")
        #expect(try endpoint(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/mycollector/"]) == "http://collector:4318/mycollector/v1/traces")
        // Signal-specific endpoints are used as is; an empty path becomes "/".
        #expect(try endpoint(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318"]) == "http://collector:4318/")
        #expect(
            try endpoint([
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://ingest.us0.signalfx.com/v2/trace/otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1",
            ])
                == "https://ingest.us0.signalfx.com/v2/trace/otlp"
        )
        // Empty values count as unset.
        #expect(
            try endpoint(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"]) == "http://c:4318/v1/traces")
    }

    @Test func headersArePercentDecodedAndSignalSpecificWins() throws {
        let config = try ProxyConfiguration.load(environment: [
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
            "OTEL_EXPORTER_OTLP_HEADERS": "generic=1",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "Authorization=Basic%20dXNlcjpwYXNz, x-api-key = k1 ,",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2500",
        ])
        let destination = try #require(config.destinations.first)
        #expect(destination.name == "otlp")
        #expect(destination.headers == [KeyValuePair("Authorization", "Basic dXNlcjpwYXNz"), KeyValuePair("x-api-key", "k1")])
        #expect(destination.compression == .gzip)
        #expect(destination.timeout == .milliseconds(2500))
        // Secrets never appear in the start-up summary.
        #expect(!config.summary.contains("dXNlcjpwYXNz"))
        #expect(!config.summary.contains("k1"))
        #expect(config.summary.contains("x-api-key=***"))
    }

    @Test func unsupportedValuesStopStartUpNamingTheVariable() {
        let base = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"]
        do {
            _ = try ProxyConfiguration.load(environment: base.merging(["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/thrift"]) { $1 })
            Issue.record("an unknown protocol must be refused")
        } catch {
            #expect(error.setting == "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            #expect(error.reason.contains("expected one of grpc, http/protobuf, http/json"))
        }
        do {
            _ = try ProxyConfiguration.load(environment: base.merging(["OTEL_EXPORTER_OTLP_HEADERS": "good=1,secretvalue"]) { $1 })
            Issue.record("a header without = must be refused")
        } catch {
            #expect(error.setting == "OTEL_EXPORTER_OTLP_HEADERS")
            #expect(!error.description.contains("secretvalue"))
        }
        #expect(throws: ConfigurationError(setting: "OTEL_EXPORTER_OTLP_COMPRESSION", reason: "unknown compression \"zstd\", expected gzip or none"))
        {
            try ProxyConfiguration.load(environment: base.merging(["OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"]) { $1 })
        }
        #expect(throws: ConfigurationError.self) { try ProxyConfiguration.load(environment: ["MLFLOW_TRACKING_URI": "databricks"]) }
        #expect(throws: ConfigurationError.self) { try ProxyConfiguration.load(environment: ["MLFLOW_TRACKING_URI": "http://user:pw@host"]) }
        #expect(throws: ConfigurationError.self) { try ProxyConfiguration.load(environment: [:], flags: CommandLineSettings(listen: "nope")) }
        #expect(throws: ConfigurationError.self) {
            try ProxyConfiguration.load(environment: base.merging(["OTEL_EXPORTER_OTLP_TIMEOUT": "10s"]) { $1 })
        }
    }

    @Test func protocolDefaultsToGRPCAsInMLflow() throws {
        func destination(_ env: [String: String]) throws -> (String, OTLPProtocol)? {
            try ProxyConfiguration.load(environment: env).destinations.first.map { ($0.endpoint.description, $0.transportProtocol) }
        }
        // The seed's first example: gRPC, plaintext for http://, the path ignored.
        #expect(try destination(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://localhost:4317/v1/traces"])! == ("http://localhost:4317", .grpc))
        #expect(try destination(["OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4317"])! == ("https://collector:4317", .grpc))
        // An empty protocol variable is unset.
        #expect(try destination(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": ""])!.1 == .grpc)
        // Metrics too.
        let metrics = try #require(
            try ProxyConfiguration.load(environment: [
                "OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://localhost:4317",
                "MLFLOW_TRACKING_URI": "http://m:5000",
            ]).metrics)
        #expect(metrics.destination.transportProtocol == .grpc && metrics.destination.endpoint.description == "http://localhost:4317")
        // The other protocol's well-known port is named in a warning; the matching one is not.
        let wrongPort = try ProxyConfiguration.load(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318"])
        #expect(wrongPort.warnings.contains { $0.contains("OTLP/gRPC to port 4318") })
        let httpTo4317 = try ProxyConfiguration.load(environment: [
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        ])
        #expect(httpTo4317.warnings.contains { $0.contains("OTLP/HTTP to port 4317") })
        #expect(try ProxyConfiguration.load(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317"]).warnings.isEmpty)
    }

    @Test func fileDestinationsDefaultToGRPCUnlessTheProfileOrTheKeySaysHTTP() throws {
        let text = """
            destinations:
              collector: { endpoint: "http://collector:4317" }
              tempo: { traces_endpoint: "https://tempo:4318/v1/traces" }
              dd: { profile: datadog, api_key: k }
              grafana: { profile: grafana, zone: prod-eu-west-0, instance_id: "1", token: t }
              dt: { profile: dynatrace, environment_url: "https://abc.live.dynatrace.com", api_token: t }
              nr: { profile: newrelic, license_key: k }
              explicit: { endpoint: "http://collector:4318", protocol: http/protobuf }
            """
        let config = try ProxyConfiguration.load(environment: [:], fileText: text)
        let protocols = Dictionary(uniqueKeysWithValues: config.destinations.map { ($0.name, $0.transportProtocol) })
        #expect(
            protocols == [
                "collector": .grpc, "tempo": .httpProtobuf, "dd": .httpProtobuf, "grafana": .httpProtobuf, "dt": .httpProtobuf, "nr": .grpc,
                "explicit": .httpProtobuf,
            ])
        #expect(config.destinations.first { $0.name == "nr" }?.endpoint.description == "https://otlp.nr-data.net:443")
    }

    @Test func sdkVariablesOfAnApplicationMeanTheSameOnTheProxy() throws {
        let endpoint = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"]
        func destination(_ env: [String: String]) throws -> OTLPDestination? {
            try ProxyConfiguration.load(environment: endpoint.merging(env) { $1 }).destinations.first
        }
        let samplers: [([String: String], Double)] = [
            ([:], 1), (["OTEL_TRACES_SAMPLER": "always_on"], 1), (["OTEL_TRACES_SAMPLER": "always_off"], 0),
            (["OTEL_TRACES_SAMPLER": "parentbased_always_off"], 0), (["OTEL_TRACES_SAMPLER": "traceidratio"], 1),
            (["OTEL_TRACES_SAMPLER": "TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": "0.25"], 0.25),
            (["OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"], 0.5),
        ]
        for (env, ratio) in samplers { #expect(try destination(env)?.policy.routing.sampleRatio == ratio) }
        let limited = try #require(
            try destination([
                "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "4096", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "64", "OTEL_ATTRIBUTE_COUNT_LIMIT": "128",
                "OTEL_SPAN_EVENT_COUNT_LIMIT": "10",
            ]))
        #expect(limited.policy.limits == SpanSizeLimits(maxAttributeValueLength: 4096, maxAttributesPerSpan: 64, maxEventsPerSpan: 10))
        // OTEL_SDK_DISABLED: no export from the variables (MLflow-only with an upstream), metrics included.
        let disabled = try ProxyConfiguration.load(
            environment: endpoint.merging([
                "OTEL_SDK_DISABLED": "true", "MLFLOW_TRACKING_URI": "http://m:5000", "OTEL_METRICS_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4317",
            ]) { $1 })
        #expect(disabled.destinations.isEmpty && disabled.metrics == nil && disabled.mode == .mlflowOnly)
        // A bad or unknown value stops start-up naming its variable, with or without an endpoint.
        let bad: [(String, String)] = [
            ("OTEL_TRACES_SAMPLER", "jaeger_remote"), ("OTEL_TRACES_SAMPLER_ARG", "1.5"), ("OTEL_TRACES_SAMPLER_ARG", "half"),
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "10"), ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "-1"), ("OTEL_SPAN_EVENT_COUNT_LIMIT", "x"),
            ("OTEL_SDK_DISABLED", "yes"),
        ]
        for (name, value) in bad {
            for base in [endpoint, [:]] {
                var env = base.merging([name: value]) { $1 }
                if name == "OTEL_TRACES_SAMPLER_ARG" { env["OTEL_TRACES_SAMPLER"] = "traceidratio" }
                do {
                    _ = try ProxyConfiguration.load(environment: env)
                    Issue.record("\(name)=\(value) must be refused")
                } catch {
                    #expect(error.setting == name)
                }
            }
        }
    }

    @Test func databricksTrackingURIsResolveAsTheMLflowClientResolvesThem() throws {
        #expect(DatabricksUpstream.profile(inTrackingURI: "databricks") == .some(nil))
        #expect(DatabricksUpstream.profile(inTrackingURI: "databricks://prod") == .some("prod"))
        #expect(DatabricksUpstream.profile(inTrackingURI: "http://mlflow:5000") == nil)
        let sections = DatabricksUpstream.parseConfigFile(
            "# comment\n[DEFAULT]\nhost = https://a.cloud.databricks.com\ntoken=dapi1\n\n[sp]\nhost=adb-1.azuredatabricks.net\nCLIENT_ID = id\nclient_secret = s\n"
        )
        #expect(sections["DEFAULT"] == ["host": "https://a.cloud.databricks.com", "token": "dapi1"])
        #expect(sections["sp"] == ["host": "adb-1.azuredatabricks.net", "client_id": "id", "client_secret": "s"])
        // The environment's host and token first.
        let pat = try ProxyConfiguration.load(environment: [
            "MLFLOW_TRACKING_URI": "databricks", "DATABRICKS_HOST": "https://ws.cloud.databricks.com/", "DATABRICKS_TOKEN": "dapi2",
            "MLFLOW_TRACKING_TOKEN": "not-for-databricks",
        ])
        #expect(pat.upstream?.description == "https://ws.cloud.databricks.com")
        #expect(pat.upstreamHeaders == [KeyValuePair("Authorization", "Bearer dapi2")] && pat.upstreamOAuth == nil)
        #expect(!pat.summary.contains("dapi2"))
        // OAuth: the token URL is the workspace's; a host without a scheme is https.
        let oauth = try ProxyConfiguration.load(environment: [
            "MLFLOW_TRACKING_URI": "databricks", "DATABRICKS_HOST": "adb-1.azuredatabricks.net", "DATABRICKS_CLIENT_ID": "id",
            "DATABRICKS_CLIENT_SECRET": "sec",
        ])
        #expect(oauth.upstreamOAuth?.tokenURL.description == "https://adb-1.azuredatabricks.net/oidc/v1/token")
        #expect(oauth.upstreamHeaders.isEmpty && !oauth.summary.contains("sec\"") && oauth.summary.contains("client_id=id"))
    }

    @Test func anUpstreamHeaderThatCannotBeSentStopsStartUpWithoutShowingItsValue() throws {
        let error = try #require(throws: ConfigurationError.self) {
            try ProxyConfiguration.load(environment: ["MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLFLOW_TRACKING_TOKEN": "s3cret\r\nX-Evil: 1"])
        }
        #expect(error.description.contains("upstream.headers") && error.description.contains("line break"))
        #expect(!error.description.contains("s3cret"))
        #expect(HeaderText.problem(name: "X Bad", value: "v") != nil && HeaderText.problem(name: "X-Good", value: "a\tb c") == nil)
    }

    @Test func upstreamCredentialsAreNotLentToAnyoneWhoReachesAnOpenListener() throws {
        let open = ["MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLFLOW_TRACKING_TOKEN": "t", "MLFLOW_OTEL_PROXY_LISTEN": "0.0.0.0:5000"]
        do {
            _ = try ProxyConfiguration.load(environment: open)
            Issue.record("upstream credentials on an open listener without inbound auth must be refused")
        } catch {
            #expect(error.setting == "inbound_auth" && error.reason.contains("MLFLOW_OTEL_PROXY_ALLOW_UNAUTHENTICATED"))
            #expect(!error.description.contains("Bearer t"))
        }
        // Any of: tokens, loopback, the explicit switch (variable or file).
        _ = try ProxyConfiguration.load(environment: open.merging(["MLFLOW_OTEL_PROXY_INBOUND_TOKENS": "x"]) { $1 })
        _ = try ProxyConfiguration.load(environment: open.merging(["MLFLOW_OTEL_PROXY_LISTEN": "127.0.0.1:5000"]) { $1 })
        _ = try ProxyConfiguration.load(environment: open.merging(["MLFLOW_OTEL_PROXY_ALLOW_UNAUTHENTICATED": "true"]) { $1 })
        _ = try ProxyConfiguration.load(environment: open, fileText: "inbound_auth: { allow_unauthenticated: true }\n")
        // No credentials: nothing to lend.
        _ = try ProxyConfiguration.load(environment: open.filter { $0.key != "MLFLOW_TRACKING_TOKEN" })
        #expect(throws: ConfigurationError.self) {
            try ProxyConfiguration.load(environment: open.merging(["MLFLOW_OTEL_PROXY_ALLOW_UNAUTHENTICATED": "yes"]) { $1 })
        }
    }

    @Test func destinationAnswersAreShownWithItsCredentialsMasked() throws {
        let url = try #require(UpstreamURL("https://v/v1/traces"))
        let basic = Data("123456:glc-token-xyz".utf8).base64EncodedString()
        let destination = OTLPDestination(
            endpoint: url,
            headers: [KeyValuePair("dd-api-key", "key-abcdef"), KeyValuePair("Authorization", "Basic \(basic)"), KeyValuePair("x", "on")])
        let answer = "invalid key key-abcdef; token glc-token-xyz for 123456:glc-token-xyz via Basic \(basic); flag on"
        #expect(destination.maskingCredentials(in: answer) == "invalid key ***; token *** for *** via ***; flag on")
    }

    @Test func trustedProxyRangesMatchAddresses() throws {
        let ranges = ["10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1"].compactMap(AddressRange.init)
        #expect(ranges.count == 4)
        func trusted(_ address: String) -> Bool { ranges.contains { $0.contains(address) } }
        #expect(trusted("10.200.3.4") && trusted("192.168.1.7") && trusted("fd12::1") && trusted("::1") && trusted("::ffff:10.0.0.1"))
        #expect(!trusted("11.0.0.1") && !trusted("192.168.1.8") && !trusted("fe80::1") && !trusted("not-an-address"))
        for bad in ["10.0.0.0/33", "host.example", "10.0.0/8", "::1/129", ""] { #expect(AddressRange(bad) == nil, "\(bad)") }
        #expect(throws: ConfigurationError.self) {
            try ProxyConfiguration.load(environment: ["MLFLOW_OTEL_PROXY_TRUSTED_PROXIES": "10.0.0.0/8,nope"])
        }
        let file = try ProxyConfiguration.load(environment: [:], fileText: "trusted_proxies: [10.0.0.0/8, 127.0.0.1]\n")
        #expect(file.trustedProxies.map(\.description) == ["10.0.0.0/8", "127.0.0.1/32"])
    }

    @Test func anUpstreamThatIsTheProxysOwnListenerIsRefused() throws {
        for upstream in ["http://127.0.0.1:5000", "http://localhost:5000/", "http://[::1]:5000"] {
            do {
                _ = try ProxyConfiguration.load(environment: ["MLFLOW_TRACKING_URI": upstream])
                Issue.record("\(upstream) is the default listener")
            } catch {
                #expect(error.reason.contains("own listener") && error.reason.contains("MLFLOW_TRACKING_URI is probably still exported"))
            }
        }
        // Another port, another host, or a listener on port 0: fine.
        _ = try ProxyConfiguration.load(environment: ["MLFLOW_TRACKING_URI": "http://127.0.0.1:5001"])
        _ = try ProxyConfiguration.load(environment: ["MLFLOW_TRACKING_URI": "http://mlflow:5000"])
        _ = try ProxyConfiguration.load(
            environment: ["MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"], flags: CommandLineSettings(listen: "127.0.0.1:0"))
    }

    @Test func rejectedURLsNeverShowTheirSecrets() {
        #expect(UpstreamURL.redactedForDisplay("https://user:KEY@host:4318/v1/traces?token=T#f") == "https://***@host:4318/v1/traces?***")
        #expect(UpstreamURL.redactedForDisplay("user:KEY@host:4317") == "***@host:4317")
        #expect(UpstreamURL.redactedForDisplay("http://host/path") == "http://host/path")
        do {
            _ = try ProxyConfiguration.load(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "https://u:SECRET1@c:4318?k=SECRET2"])
            Issue.record("credentials in the URL must be refused")
        } catch {
            #expect(!error.description.contains("SECRET1") && !error.description.contains("SECRET2"))
            #expect(error.description.contains("https://***@c:4318?***"))
        }
    }

    @Test func grpcEndpointsFollowTheSpecification() throws {
        func endpoint(_ env: [String: String]) throws -> (String, OTLPProtocol)? {
            try ProxyConfiguration.load(environment: env).destinations.first.map { ($0.endpoint.description, $0.transportProtocol) }
        }
        // No signal path for gRPC; the scheme decides TLS; host:port is TLS unless insecure.
        #expect(
            try endpoint(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"])! == (
                "http://collector:4317", .grpc
            ))
        #expect(
            try endpoint(["OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"])! == (
                "https://collector:4317", .grpc
            ))
        #expect(
            try endpoint([
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
            ])!
                == ("http://collector:4317", .grpc)
        )
    }

    @Test func resourceAndBatchingVariables() throws {
        let config = try ProxyConfiguration.load(environment: [
            "OTEL_SERVICE_NAME": "svc",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=ml%2Cops",
            "OTEL_BSP_SCHEDULE_DELAY": "250",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100",
        ])
        #expect(config.resource.serviceName == "svc")
        #expect(config.resource.attributes == [KeyValuePair("deployment.environment", "prod"), KeyValuePair("team", "ml,ops")])
        #expect(config.delivery.scheduleDelay == .milliseconds(250))
        #expect(config.delivery.maxExportBatchSize == 100)
        #expect(throws: ConfigurationError.self) { try ProxyConfiguration.load(environment: ["OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "0"]) }
    }

    @Test func listenAddressForms() {
        #expect(ListenAddress.parse("0.0.0.0:5000") == ListenAddress(host: "0.0.0.0", port: 5000))
        #expect(ListenAddress.parse(":8080") == ListenAddress(host: "0.0.0.0", port: 8080))
        #expect(ListenAddress.parse("[::1]:5000") == ListenAddress(host: "::1", port: 5000))
        #expect(ListenAddress.parse("localhost") == nil)
        #expect(ListenAddress.parse("h:99999") == nil)
    }
}
