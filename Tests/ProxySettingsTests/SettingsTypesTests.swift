import Delivery
import OTLPExport
import ProxySettings
import SharedSettings
import Testing

/// The configuration's own settings types (built by ProxyConfig's loader, whose parsing is tested in
/// ProxyConfigTests): a destination's own delivery over the shared one.
@Suite struct SettingsTypesTests {

    @Test func aDestinationsOwnDeliveryKeysOverrideOnlyWhatTheySet() throws {
        var shared = DeliverySettings(scheduleDelay: .seconds(2), maxExportBatchSize: 100, maxQueueSize: 1000)
        shared.retry = RetryPolicy(initialInterval: .seconds(5), maxElapsedTime: .seconds(300))
        let destination = OTLPDestination(name: "vendor", endpoint: try #require(UpstreamURL("http://collector:4318/v1/traces")))
        var overrides = DeliveryOverrides()
        overrides.retry.maxElapsedTime = .zero  // 0: until delivered
        overrides.fullPolicy = .refuse
        var configuration = ProxyConfiguration()
        configuration.delivery = shared
        configuration.destinationDelivery = ["vendor": overrides]
        let own = configuration.delivery(for: destination)
        #expect(own.retry.maxElapsedTime == nil && own.retry.initialInterval == .seconds(5))
        #expect(own.fullPolicy == .refuse && own.maxExportBatchSize == 100 && own.scheduleDelay == .seconds(2))
        #expect(configuration.delivery(for: OTLPDestination(name: "other", endpoint: try #require(UpstreamURL("http://c:4318")))) == shared)
    }

}
