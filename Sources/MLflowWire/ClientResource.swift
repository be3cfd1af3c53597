import OTLPProto
import SwiftProtobuf

/// The OTel resource of an upload that carries none (`traces.json`), derived from the client's
/// `User-Agent`, so spans get the same `telemetry.sdk.*` whichever path they came by.
public enum ClientResource {
    /// `telemetry.sdk.{language,name,version}` for `mlflow-python-client/<version>`, as the MLflow client
    /// puts them on its own `/v1/traces` uploads; empty for any other agent.
    public static func attributes(userAgent: String?) -> [Opentelemetry_Proto_Common_V1_KeyValue] {
        let prefix = "mlflow-python-client/"
        guard let userAgent, userAgent.hasPrefix(prefix) else { return [] }
        let version = userAgent.dropFirst(prefix.count).prefix { $0 != " " }
        guard !version.isEmpty else { return [] }
        return [("telemetry.sdk.language", "python"), ("telemetry.sdk.name", "mlflow"), ("telemetry.sdk.version", String(version))].map {
            pair in
            .with {
                $0.key = pair.0; $0.value.stringValue = pair.1
            }
        }
    }
}
