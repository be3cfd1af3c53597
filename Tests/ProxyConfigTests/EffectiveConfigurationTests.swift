import Foundation
import ProxyConfig
import ProxySettings
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
}
