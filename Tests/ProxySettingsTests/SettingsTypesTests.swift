import ProxySettings
import Testing

/// The plain settings types the stages read (built by ProxyConfig's loader, whose parsing is tested in
/// ProxyConfigTests): URLs, address ranges, a destination's own delivery over the shared one, errors.
@Suite struct SettingsTypesTests {
    @Test func upstreamURLsKeepTheirPartsAndRefuseWhatIsNotOne() throws {
        let url = try #require(UpstreamURL("https://mlflow.example:8443/base/"))
        #expect(url.scheme == "https" && url.host == "mlflow.example" && url.port == 8443)
        #expect(url.with(path: url.basePath + "/health").description.hasSuffix("/base/health"))
        for text in ["", "mlflow.example", "ftp://x", "http://"] { #expect(UpstreamURL(text) == nil, "\(text)") }
    }

    @Test func addressRangesMatchWhatTheyName() throws {
        let range = try #require(AddressRange("10.0.0.0/8"))
        #expect(range.contains("10.1.2.3") && !range.contains("11.0.0.1"))
        let single = try #require(AddressRange("192.0.2.7"))
        #expect(single.contains("192.0.2.7") && !single.contains("192.0.2.8"))
        #expect(AddressRange("10.0.0.0/33") == nil && AddressRange("not an address") == nil)
    }

    @Test func aDestinationsOwnDeliveryKeysOverrideOnlyWhatTheySet() throws {
        var shared = DeliverySettings(scheduleDelay: .seconds(2), maxExportBatchSize: 100, maxQueueSize: 1000)
        shared.retry = RetryPolicy(initialInterval: .seconds(5), maxElapsedTime: .seconds(300))
        var destination = OTLPDestination(endpoint: try #require(UpstreamURL("http://collector:4318/v1/traces")))
        destination.deliveryOverrides.retry.maxElapsedTime = .zero  // 0: until delivered
        destination.deliveryOverrides.fullPolicy = .refuse
        let own = destination.delivery(over: shared)
        #expect(own.retry.maxElapsedTime == nil && own.retry.initialInterval == .seconds(5))
        #expect(own.fullPolicy == .refuse && own.maxExportBatchSize == 100 && own.scheduleDelay == .seconds(2))
        #expect(OTLPDestination(endpoint: try #require(UpstreamURL("http://c:4318"))).delivery(over: shared) == shared)
    }

    @Test func configurationErrorsListEveryProblem() {
        let error = ConfigurationError(problems: [
            .init(setting: "OTEL_EXPORTER_OTLP_PROTOCOL", reason: "unsupported"), .init(setting: "destinations.dd.site", reason: "is required"),
        ])
        #expect(error.setting == "OTEL_EXPORTER_OTLP_PROTOCOL" && error.reason == "unsupported")
        #expect(error.description == "OTEL_EXPORTER_OTLP_PROTOCOL: unsupported\ndestinations.dd.site: is required")
    }
}
