/// The proxy's version, reported as the OTLP scope version and in the `User-Agent` of exports.
public enum ProxyVersion {
    /// Semantic version of this build.
    public static let current = "0.1.0"
    /// The MLflow server version the proxy answers `GET /version` with when it serves the trace API itself:
    /// at least 3.4, so 3.x clients upload spans over `/v1/traces`.
    public static let emulatedMLflowVersion = "3.17.2"
}
