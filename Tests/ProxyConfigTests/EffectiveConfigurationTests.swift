import Foundation
import ProxyConfig
import ProxySettings
import SharedSettings
import Testing
import Yams

/// `check-config`'s dump is YAML that reads back: text from the operator or the environment that YAML would read
/// differently (a `: `, a `#`, a number, a newline, flow punctuation) is quoted, and plain text stays plain.
@Suite struct EffectiveConfigurationTests {
    @Test func operatorTextIsQuotedWhereYAMLWouldMisreadIt() throws {
        let configuration = try ProxyConfiguration.load(environment: [
            "OTEL_SERVICE_NAME": "chat: prod # eu",
            "OTEL_RESOURCE_ATTRIBUTES": "team=search,build=0042,note=a%0Ab",
            "MLFLOW_OTEL_PROXY_SPOOL_DIR": "/var/spool/{x,y}",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        ])
        let text = configuration.redactedYAML
        let document = try #require(try Yams.load(yaml: text) as? [String: Any])
        let service = try #require(document["service"] as? [String: Any])
        #expect(service["name"] as? String == "chat: prod # eu")
        let attributes = try #require(service["resource_attributes"] as? [String: Any])
        #expect(attributes["team"] as? String == "search")
        #expect(attributes["build"] as? String == "0042")
        #expect(attributes["note"] as? String == "a\nb")
        let spool = try #require((document["sending_queue"] as? [String: Any])?["spool"] as? [String: Any])
        #expect(spool["directory"] as? String == "/var/spool/{x,y}")
        // Plain text stays as it was written.
        #expect(text.contains("team: search\n"))
        #expect(text.contains("endpoint: http://collector:4318/v1/traces\n"))
    }

    @Test func theDumpIsOneYAMLDocumentWithSecretsHiddenAndNotesAsComments() throws {
        let configuration = try ProxyConfiguration.load(
            environment: [
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cr3t-value", "MLFLOW_OTEL_PROXY_INBOUND_TOKENS": "inbound-token",
            ])
        let text = configuration.redactedYAML
        for secret in ["s3cr3t-value", "inbound-token"] { #expect(!text.contains(secret)) }
        let document = try #require(try Yams.load(yaml: text) as? [String: Any])
        let destinations = try #require(document["destinations"] as? [String: Any])
        let destination = try #require(destinations.values.first as? [String: Any])
        #expect((destination["headers"] as? [String: Any])?["x-api-key"] as? String == "***")
        #expect(destination["protocol"] as? String == "http/protobuf" && destination["endpoint"] as? String == "http://collector:4318/v1/traces")
        #expect(document["upstream"] as? String == "none" && (document["batch"] as? [String: Any])?["max_export_batch_size"] is Int)
        // What a value means is said after the document, as comments; nothing else follows it.
        let comments = text.split(separator: "\n").drop { !$0.hasPrefix("#") }
        #expect(comments.contains("# note: upstream none: standalone, the proxy answers the trace API itself"))
        #expect(comments.allSatisfy { $0.hasPrefix("# ") } && !comments.isEmpty)
    }
}
