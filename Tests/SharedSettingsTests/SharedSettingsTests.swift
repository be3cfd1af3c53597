import SharedSettings
import Testing

/// The setting types several stages read: URLs, address ranges, errors that name every bad setting.
@Suite struct SharedSettingsTests {
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

    @Test func configurationErrorsListEveryProblem() {
        let error = ConfigurationError(problems: [
            .init(setting: "OTEL_EXPORTER_OTLP_PROTOCOL", reason: "unsupported"), .init(setting: "destinations.dd.site", reason: "is required"),
        ])
        #expect(error.setting == "OTEL_EXPORTER_OTLP_PROTOCOL" && error.reason == "unsupported")
        #expect(error.description == "OTEL_EXPORTER_OTLP_PROTOCOL: unsupported\ndestinations.dd.site: is required")
    }
}
