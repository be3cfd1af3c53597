import AdminSite
import Delivery
import HTTPListener
import ProxySettings
import SharedSettings

// The one place the configuration is split into what each stage reads: no stage below the wiring takes the whole
// `ProxyConfiguration`.

extension LiveSettings.Snapshot {
    /// The listener's per-request settings in `configuration`.
    init(_ configuration: ProxyConfiguration) {
        self.init(
            inboundTokens: configuration.inboundTokens, upstreamHeaders: configuration.upstreamHeaders,
            clientAuthorization: configuration.clientAuthorization)
    }
}

extension DeliveryPlan {
    /// The destinations and delivery settings in `configuration`.
    init(_ configuration: ProxyConfiguration) {
        self.init(
            destinations: configuration.destinations, defaults: configuration.delivery, overrides: configuration.destinationDelivery,
            localTracesFile: configuration.localTracesFile)
    }
}

extension AdminSettings {
    /// What the admin site shows and checks in `configuration`.
    init(_ configuration: ProxyConfiguration) {
        self.init(
            mode: configuration.mode, upstream: configuration.upstream, tokens: configuration.adminTokens,
            localTracesFile: configuration.localTracesFile)
    }
}
