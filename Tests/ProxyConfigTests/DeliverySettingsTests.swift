import Delivery
import OTLPExport
import ProxyConfig
import ProxySettings
import SharedSettings
import Testing
import Yams

/// The delivery keys (batch, sending_queue with its spool, retry_on_failure) from the file and the environment.
@Suite struct DeliverySettingsTests {
    @Test func queueSpoolAndRetrySettingsFromFileAndEnvironment() throws {
        let config = try ProxyConfiguration.load(
            environment: ["MLFLOW_OTEL_PROXY_SPOOL_DIR": "/var/spool/x", "MLFLOW_OTEL_PROXY_QUEUE_FULL_POLICY": "refuse"],
            fileText: """
                batch: { max_export_batch_bytes: 1000000 }
                sending_queue: { max_bytes: 5000000 }
                retry_on_failure: { initial_interval: 1s, max_interval: 10s, max_elapsed_time: 0, multiplier: 2, randomization_factor: 0.1 }
                """)
        let delivery = config.delivery
        #expect(delivery.maxExportBatchBytes == 1_000_000 && delivery.maxQueueBytes == 5_000_000 && delivery.fullPolicy == .refuse)
        #expect(delivery.spool == SpoolSettings(directory: "/var/spool/x"))
        #expect(
            delivery.retry
                == RetryPolicy(initialInterval: .seconds(1), maxInterval: .seconds(10), maxElapsedTime: nil, multiplier: 2, randomizationFactor: 0.1))
        let fileSpool = try ProxyConfiguration.load(
            environment: [:], fileText: "sending_queue: { spool: { directory: /data/spool, max_bytes: 1000, fsync: true } }")
        #expect(fileSpool.delivery.spool == SpoolSettings(directory: "/data/spool", maxBytes: 1000, fsync: true))
        let dump = try #require(try Yams.load(yaml: fileSpool.redactedYAML) as? [String: Any])
        let spool = (dump["sending_queue"] as? [String: Any])?["spool"] as? [String: Any]
        #expect(spool?["directory"] as? String == "/data/spool" && spool?["max_bytes"] as? Int == 1000 && spool?["fsync"] as? Bool == true)
    }

    @Test func badDeliverySettingsAreNamed() {
        do {
            _ = try ProxyConfiguration.load(
                environment: [:],
                fileText: """
                    sending_queue: { full_policy: block, spool: { max_bytes: 5 } }
                    retry_on_failure: { multiplier: 0.5, randomization_factor: 2, initial_interval: soon }
                    """)
            Issue.record("accepted bad delivery settings")
        } catch {
            let problems = error.problems.map { "\($0.setting): \($0.reason)" }.joined(separator: "\n")
            for expected in [
                "sending_queue.full_policy", "sending_queue.spool.directory", "retry_on_failure.multiplier",
                "retry_on_failure.randomization_factor", "retry_on_failure.initial_interval",
            ] {
                #expect(problems.contains(expected), "\(expected) not named in \(problems)")
            }
        }
        #expect(throws: ConfigurationError.self) {
            _ = try ProxyConfiguration.load(environment: ["MLFLOW_OTEL_PROXY_QUEUE_FULL_POLICY": "block"])
        }
    }
}
