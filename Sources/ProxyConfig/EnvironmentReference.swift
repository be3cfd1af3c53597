import Foundation
import ProxySettings
import SharedSettings

/// Every environment variable the proxy reads, in one table: `--help` prints it, and the README's table of
/// variables is this table's Markdown (``markdownTable``), checked by the unit tests, so the two cannot drift.
public enum EnvironmentReference {
    /// One row: variables read together, the flag that does the same, the default and what they mean (Markdown).
    public struct Variable: Sendable {
        /// The variables' full names.
        public let names: [String]
        /// Words after the names in the table (the file key that does the same, a condition).
        public let note: String
        /// The flag that does the same, as `--flag VALUE`.
        public let flag: String
        /// The default, in Markdown (empty: none to speak of).
        public let defaultValue: String
        /// What it does, in Markdown.
        public let meaning: String

        init(names: [String], note: String = "", flag: String = "", defaultValue: String = "", meaning: String) {
            self.names = names
            self.note = note
            self.flag = flag
            self.defaultValue = defaultValue
            self.meaning = meaning
        }
    }

    /// The table, in the README's order.
    public static let variables: [Variable] = [
        Variable(
            names: ["MLFLOW_TRACKING_URI"],
            flag: #"`--upstream URL`"#,
            defaultValue: #"none (standalone)"#,
            meaning: #"the upstream MLflow server (`http`/`https`; a path prefix is kept). An upstream that is the proxy's "#
                + #"own listener (the variable still exported in the shell that starts the proxy) stops start-up with "#
                + #"that explanation; every forwarded request carries `Via: 1.1 mlflow-otel-proxy-<id>`, and one that "#
                + #"comes back to the same proxy gets `508 Loop Detected`"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_CONFIG"],
            flag: #"`--config FILE`"#,
            defaultValue: #"none"#,
            meaning: #"the YAML configuration file"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_INBOUND_TOKENS"],
            defaultValue: #"none"#,
            meaning: #"tokens applications must present (see Inbound authentication)"#
        ),
        Variable(
            names: ["MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"],
            meaning: #"as for an MLflow client: `Authorization: Bearer …` / `Basic …` on the proxy's upstream requests (a "#
                + #"client's own `Authorization` is kept unless `client_authorization: replace`)"#
        ),
        Variable(
            names: ["DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_CONFIG_FILE"],
            note: #"with `MLFLOW_TRACKING_URI=databricks` or `databricks://PROFILE` (also `--upstream`, or `upstream: { "#
                + #"databricks: { profile \| host, token, client_id, client_secret } }` in the file)"#,
            meaning: #"a Databricks workspace as the upstream, resolved as MLflow's client resolves it: `DATABRICKS_HOST` "#
                + #"with `DATABRICKS_TOKEN` (a personal access token) or `DATABRICKS_CLIENT_ID` + "#
                + #"`DATABRICKS_CLIENT_SECRET` (OAuth machine-to-machine: tokens from `<host>/oidc/v1/token`, cached and "#
                + #"fetched again before they expire, never logged), else the profile (`DEFAULT` for plain `databricks`) "#
                + #"of `~/.databrickscfg` (`DATABRICKS_CONFIG_FILE` moves it). Its token replaces any other upstream "#
                + #"`Authorization`; a missing profile or credentials stop start-up with the reason"#
        ),
        Variable(
            names: ["MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_CLIENT_CERT_PATH", "MLFLOW_TRACKING_INSECURE_TLS"],
            meaning: #"as for an MLflow client, towards an `https` upstream: a CA bundle to verify it with; a client "#
                + #"certificate (one PEM file holding the certificate and its key); no verification (not together with a "#
                + #"CA bundle; logged as a warning). In the file: `upstream: { tls: { ca_file, cert_file, key_file, "#
                + #"insecure_skip_verify } }`. A change needs a restart"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_LISTEN"],
            flag: #"`--listen HOST:PORT`"#,
            defaultValue: #"`127.0.0.1:5000`"#,
            meaning: #"where the proxy listens"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_WATCH_CONFIG"],
            flag: #"`--watch-config`"#,
            defaultValue: #"`false`"#,
            meaning: #"`true`: reload when the configuration file or a file it reads (a `${file:…}` secret, a certificate) "#
                + #"changes, as on `SIGHUP`; Kubernetes' symlink swaps of ConfigMap and Secret volumes included"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_ADMIN_LISTEN"],
            flag: #"`--admin-listen HOST:PORT`"#,
            defaultValue: #"`127.0.0.1:9464`"#,
            meaning: #"the admin listener (`/healthz`, `/readyz`, `/metrics`, `/status`); `off` turns it off"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_ADMIN_TOKENS"],
            defaultValue: #"none"#,
            meaning: #"tokens (comma-separated) that `/status` and `/metrics` ask for as `Authorization: Bearer`; "#
                + #"`/healthz` and `/readyz` stay open (file: `admin.tokens`)"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_ALLOW_UNAUTHENTICATED"],
            defaultValue: #"`false`"#,
            meaning: #"`true`: start although upstream credentials are configured, no inbound tokens are, and the listener "#
                + #"is not loopback (anyone who reaches the proxy then acts with those credentials)"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_TRUSTED_PROXIES"],
            note: #" (file: `trusted_proxies`)"#,
            defaultValue: #"none"#,
            meaning: #"addresses or CIDR ranges (`10.0.0.0/8,127.0.0.1`) of load balancers in front of the proxy: their "#
                + #"`X-Forwarded-For/-Proto/-Host` are kept (the peer appended to the chain); from any other peer they "#
                + #"are replaced by what the proxy saw (`-Proto: https` on the TLS listener). A change needs a restart"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_TLS_CERT_FILE", "MLFLOW_OTEL_PROXY_TLS_KEY_FILE"],
            defaultValue: #"none"#,
            meaning: #"TLS on the listener: the certificate chain and its private key, PEM (file: `tls: { cert_file, "#
                + #"key_file }`)"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_MAX_CONNECTIONS"],
            defaultValue: #"`1024`"#,
            meaning: #"connections served at once (file: `limits.max_connections`; see Limits)"#
        ),
        Variable(
            names: ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"],
            meaning: #"the traces endpoint. HTTP: used as is (a URL without a path gets `/`); gRPC: its path is ignored"#
        ),
        Variable(
            names: ["OTEL_EXPORTER_OTLP_ENDPOINT"],
            meaning: #"the base endpoint. HTTP: `v1/traces` is appended; gRPC: used as is, without a path"#
        ),
        Variable(
            names: ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"],
            defaultValue: #"`grpc`"#,
            meaning: #"`grpc`, `http/protobuf` or `http/json`; anything else stops start-up with an error naming the "#
                + #"variable. The default is MLflow's (`grpc`), not the OpenTelemetry specification's, so an "#
                + #"application's settings mean the same on the proxy: "#
                + #"`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://localhost:4317/v1/traces` alone sends OTLP/gRPC, in "#
                + #"plaintext, to port 4317. For `grpc` the endpoint is a URL (`http://` plaintext, `https://` TLS, any "#
                + #"path ignored) or `host:port` (TLS unless `OTEL_EXPORTER_OTLP_INSECURE=true`). A start-up warning "#
                + #"names the likely mistake when the port is the other protocol's well-known one (4317 with HTTP, 4318 "#
                + #"with gRPC)"#
        ),
        Variable(
            names: [
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
            ],
            meaning: #"the destination's CA file and mutual-TLS certificate and key (`tls.ca_file`, `cert_file`, "#
                + #"`key_file`)"#
        ),
        Variable(
            names: ["OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE"],
            defaultValue: #"`false`"#,
            meaning: #"gRPC without a scheme: plaintext (`tls.insecure`)"#
        ),
        Variable(
            names: ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"],
            meaning: #"`key=value,key2=value2`, percent-decoded (`Authorization=Basic%20…`); sent only to the destination, "#
                + #"never logged"#
        ),
        Variable(
            names: ["OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"],
            defaultValue: #"`none`"#,
            meaning: #"`gzip` or `none`"#
        ),
        Variable(
            names: ["OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"],
            defaultValue: #"`10000`"#,
            meaning: #"per-request timeout in ms; `0` = none"#
        ),
        Variable(
            names: ["OTEL_SERVICE_NAME"],
            meaning: #"`service.name` of exported spans (wins over everything else)"#
        ),
        Variable(
            names: ["OTEL_RESOURCE_ATTRIBUTES"],
            meaning: #"`key=value,…` added to the resource of exported spans (wins over the client's own attributes)"#
        ),
        Variable(
            names: ["MLFLOW_TRACE_ENABLE_OTLP_DUAL_EXPORT", "MLFLOW_ENABLE_DUAL_EXPORT"],
            defaultValue: #"`false`"#,
            meaning: #"dual export (see modes); the second name is MLflow's older one"#
        ),
        Variable(
            names: ["MLFLOW_ENABLE_OTLP_EXPORTER"],
            defaultValue: #"`true`"#,
            meaning: #"`false` ignores the OTLP endpoint variables for traces, as in MLflow"#
        ),
        Variable(
            names: ["MLFLOW_ENABLE_OTEL_GENAI_SEMCONV"],
            defaultValue: #"`false`"#,
            meaning: #"`true`: the `otlp` destination gets GenAI attributes instead of MLflow's (`semconv: [genai]`), as in "#
                + #"MLflow"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_SEMCONV"],
            defaultValue: #"`mlflow,genai`"#,
            meaning: #"the `otlp` destination's conventions (`mlflow`, `genai`, `openinference`; see the data policy "#
                + #"section)"#
        ),
        Variable(
            names: ["OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"],
            defaultValue: #"`parentbased_always_on`"#,
            meaning: #"the share of traces the variables' destination gets, by trace id: `always_on`, `always_off`, "#
                + #"`traceidratio` (ratio in `OTEL_TRACES_SAMPLER_ARG`, 0 to 1), and their `parentbased_*` forms (every "#
                + #"upload has its root, so they decide as the root sampler does); anything else stops start-up"#
        ),
        Variable(
            names: [
                "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                "OTEL_ATTRIBUTE_COUNT_LIMIT",
                "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
                "OTEL_SPAN_EVENT_COUNT_LIMIT",
            ],
            defaultValue: #"none"#,
            meaning: #"the variables' destination's size limits (`limits.max_attribute_value_length`, at least 64; "#
                + #"`max_attributes_per_span`; `max_events_per_span`: later events dropped and counted in "#
                + #"`dropped_events_count`); an `OTEL_SPAN_…` variable wins over its `OTEL_ATTRIBUTE_…` one"#
        ),
        Variable(
            names: ["OTEL_SDK_DISABLED"],
            defaultValue: #"`false`"#,
            meaning: #"`true`: the `OTEL_EXPORTER_OTLP_*` variables export nothing (traces nor metrics), as in an "#
                + #"application whose SDK is off; file destinations are not affected"#
        ),
        Variable(
            names: ["OTEL_METRICS_EXPORTER"],
            defaultValue: #"`otlp`"#,
            meaning: #"`otlp` or `none`: span-duration metrics over OTLP, as MLflow's own (see Metrics)"#
        ),
        Variable(
            names: ["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"],
            meaning: #"the metrics endpoint, used as is (else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics` over HTTP)"#
        ),
        Variable(
            names: [
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
                "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
                "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
                "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
                "OTEL_EXPORTER_OTLP_METRICS_INSECURE",
            ],
            meaning: #"the same as the generic ones, for metrics only (they win over the generic ones)"#
        ),
        Variable(
            names: ["OTEL_METRIC_EXPORT_INTERVAL"],
            defaultValue: #"`60000`"#,
            meaning: #"metrics export interval, ms"#
        ),
        Variable(
            names: ["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"],
            defaultValue: #"`cumulative`"#,
            meaning: #"`cumulative` or `delta`"#
        ),
        Variable(
            names: ["OTEL_BSP_SCHEDULE_DELAY"],
            defaultValue: #"`1000`"#,
            meaning: #"longest wait (ms) of a span for its export batch"#
        ),
        Variable(
            names: ["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"],
            defaultValue: #"`512`"#,
            meaning: #"spans per export request"#
        ),
        Variable(
            names: ["OTEL_BSP_MAX_QUEUE_SIZE"],
            defaultValue: #"`8192`"#,
            meaning: #"spans queued in memory per destination (see delivery below)"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_QUEUE_MAX_BYTES"],
            defaultValue: #"`67108864`"#,
            meaning: #"bytes queued in memory per destination"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_QUEUE_FULL_POLICY"],
            defaultValue: #"`drop_oldest`"#,
            meaning: #"`drop_oldest` or `refuse` (uploads get `503` + `Retry-After`)"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_SPOOL_DIR"],
            defaultValue: #"none (on in the container image)"#,
            meaning: #"spool batches to disk under this directory"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_SPOOL_MAX_BYTES"],
            defaultValue: #"`1073741824`"#,
            meaning: #"bytes spooled per destination"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_SPOOL_FSYNC"],
            defaultValue: #"`false`"#,
            meaning: #"fsync every batch file (survives power loss, not just a crash)"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_RETRY_INITIAL_INTERVAL", "MLFLOW_OTEL_PROXY_RETRY_MAX_INTERVAL", "MLFLOW_OTEL_PROXY_RETRY_MAX_ELAPSED_TIME"],
            defaultValue: #"`5`, `30`, `300`"#,
            meaning: #"retry backoff and per-batch retry budget in seconds (`0` budget: until delivered)"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_TRACES_FILE"],
            flag: #"`--traces-file PATH`"#,
            defaultValue: #"`./mlflow-otel-proxy-traces.jsonl`"#,
            meaning: #"standalone without an endpoint: where traces are written"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_TRACE_INFO_WAIT"],
            flag: #"`--trace-info-wait SECONDS`"#,
            defaultValue: #"`10`"#,
            meaning: #"how long a trace waits for its missing parts (trace info or spans) before it is exported anyway"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_UPSTREAM_TIMEOUT"],
            flag: #"`--upstream-timeout SECONDS`"#,
            defaultValue: #"`120`"#,
            meaning: #"upstream request timeout (then `504`)"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_SHUTDOWN_TIMEOUT"],
            flag: #"`--shutdown-timeout SECONDS`"#,
            defaultValue: #"`10`"#,
            meaning: #"how long SIGTERM/SIGINT may take to flush queued spans; exports still running then are cancelled and "#
                + #"counted"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_ATTACHMENTS_DIR"],
            flag: #"`--attachments-dir PATH`"#,
            defaultValue: #"none"#,
            meaning: #"where attachments are kept when the proxy answers uploads itself (see below)"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_ATTACHMENTS_MAX_BYTES"],
            defaultValue: #"`1073741824`"#,
            meaning: #"the most bytes kept in the attachments directory (each file and trace directory counts 4 KiB besides "#
                + #"its bytes, so empty attachments cannot fill the disk)"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_MAX_TRACES_IN_FLIGHT"],
            defaultValue: #"`10000`"#,
            meaning: #"traces held while they are assembled"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_MAX_SPANS_PER_TRACE"],
            defaultValue: #"`10000`"#,
            meaning: #"spans one trace may hold before it is exported as it is"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_MAX_BYTES_HELD"],
            defaultValue: #"`268435456`"#,
            meaning: #"upload bytes held by traces being assembled"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_LOG_LEVEL"],
            flag: #"`--log-level LEVEL`"#,
            defaultValue: #"`info`"#,
            meaning: #"`trace` … `critical`"#
        ),
        Variable(
            names: ["MLFLOW_OTEL_PROXY_LOG_FORMAT"],
            flag: #"`--log-format FORMAT`"#,
            defaultValue: #"`text`"#,
            meaning: #"`text` or `json` (one JSON object per line)"#
        ),
    ]

    /// Every name in the table.
    public static var allNames: Set<String> { Set(variables.flatMap(\.names)) }

    /// The README's table of variables.
    public static var markdownTable: String {
        var lines = ["| variable | flag | default | meaning |", "|---|---|---|---|"]
        for variable in variables {
            let label = variable.names.map { "`\($0)`" }.joined(separator: ", ") + (variable.note.isEmpty ? "" : " " + variable.note)
            lines.append("| \(label) | \(variable.flag) | \(variable.defaultValue) | \(variable.meaning) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The table for `--help`: names, then the meaning (plain text, wrapped), the flag and the default.
    public static func helpText(width: Int = 78) -> String {
        var lines: [String] = ["ENVIRONMENT (empty values count as unset; the README has the same table)", ""]
        for variable in variables {
            for name in variable.names { lines.append("  " + name) }
            var text = plain(variable.meaning)
            if !variable.note.isEmpty { text = plain(variable.note) + ": " + text }
            if !variable.flag.isEmpty { text += ". Flag: " + plain(variable.flag) }
            if !variable.defaultValue.isEmpty { text += ". Default: " + plain(variable.defaultValue) }
            lines += wrap(text, width: width, indent: "      ")
        }
        return lines.joined(separator: "\n")
    }

    /// Markdown to plain text: no backquotes or escaped bars.
    static func plain(_ markdown: String) -> String {
        markdown.replacingOccurrences(of: "`", with: "").replacingOccurrences(of: "\\|", with: "|")
    }

    static func wrap(_ text: String, width: Int, indent: String) -> [String] {
        var lines: [String] = []
        var line = indent
        for word in text.split(separator: " ") {
            if line.count > indent.count && line.count + 1 + word.count > width {
                lines.append(line)
                line = indent
            }
            line += (line.count > indent.count ? " " : "") + word
        }
        if line.count > indent.count { lines.append(line) }
        return lines
    }
}
