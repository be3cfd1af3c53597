import Foundation

/// Attribute keys that MLflow clients and OpenTelemetry SDKs send on (nearly) every span or resource, decoded to
/// one shared string each instead of a new one per attribute.
///
/// A decoded key that matches is the table's string literal: no allocation, no UTF-8 validation (the literals
/// are ASCII) and no reference counting for it later. Any other key is decoded as usual.
enum KnownAttributeKeys {
    /// The keys, as MLflow (3.x and 2.x) and the OpenTelemetry SDKs write them.
    private static let keys: [String] = [
        "mlflow.traceRequestId", "mlflow.spanType", "mlflow.spanInputs", "mlflow.spanOutputs", "mlflow.spanFunctionName",
        "mlflow.spanLogLevel", "mlflow.chat.tokenUsage", "mlflow.chat.tools", "mlflow.llm.model", "mlflow.llm.provider", "mlflow.llm.cost",
        "mlflow.message.format", "mlflow.experimentId", "mlflow.trace.session", "mlflow.trace.user", "telemetry.sdk.language",
        "telemetry.sdk.name", "telemetry.sdk.version", "service.name", "service.version", "service.namespace", "service.instance.id",
        "deployment.environment", "deployment.environment.name", "host.name", "process.pid", "process.runtime.name",
        "process.runtime.version", "gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model", "gen_ai.provider.name",
        "gen_ai.system", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
    ]

    /// The keys by their UTF-8 length, with their bytes.
    private static let byLength: [[(bytes: [UInt8], key: String)]] = {
        var table = Array(repeating: [(bytes: [UInt8], key: String)](), count: (keys.map(\.utf8.count).max() ?? 0) + 1)
        for key in keys { table[key.utf8.count].append((Array(key.utf8), key)) }
        return table
    }()

    /// The table's string equal to `bytes`, or `nil`.
    static func match(_ bytes: UnsafeRawBufferPointer) -> String? {
        guard bytes.count < byLength.count else { return nil }
        guard let address = bytes.baseAddress else { return nil }
        for candidate in byLength[bytes.count]
        where candidate.bytes.withUnsafeBytes({ stored in
            stored.baseAddress.map { memcmp($0, address, bytes.count) == 0 } ?? false
        }) {
            return candidate.key
        }
        return nil
    }
}
