import AsyncHTTPClient
import ExportQueue
import Logging
import OTLPExport
import ProxyObservability
import ServiceLifecycle
import SharedSettings
import SpanShaping

/// What delivery is configured to do: the destinations, the delivery defaults they override, and the local traces
/// file used when there are none. The wiring builds it from the configuration.
public struct DeliveryPlan: Sendable, Equatable {
    /// The destinations, in the configuration's order.
    public var destinations: [OTLPDestination]
    /// Batching, queue, spool and retry settings, before each destination's overrides.
    public var defaults: DeliverySettings
    /// Each destination's own delivery keys, by destination name.
    public var overrides: [String: DeliveryOverrides]
    /// Where translated traces go when there is no destination (`traces_file`), or `nil`.
    public var localTracesFile: String?

    /// The plan.
    public init(
        destinations: [OTLPDestination], defaults: DeliverySettings, overrides: [String: DeliveryOverrides] = [:], localTracesFile: String?
    ) {
        self.destinations = destinations
        self.defaults = defaults
        self.overrides = overrides
        self.localTracesFile = localTracesFile
    }

    /// The delivery settings `destination` runs with: the defaults with its own keys over them.
    public func delivery(for destination: OTLPDestination) -> DeliverySettings {
        (overrides[destination.name] ?? DeliveryOverrides()).applied(to: defaults)
    }
}

/// Builds the export unit of each destination (or of the local traces file).
public struct ExportUnitFactory: Sendable {
    let counters: ProxyCounters
    let logger: Logger
    let status: StatusBoard
    let exportClient: HTTPClient

    /// A factory whose pipelines count into `counters`, report to `status` and send over `exportClient`.
    public init(counters: ProxyCounters, logger: Logger, status: StatusBoard, exportClient: HTTPClient) {
        self.counters = counters
        self.logger = logger
        self.status = status
        self.exportClient = exportClient
    }

    /// The units `plan` asks for, in its order.
    /// - Throws: ``ConfigurationError`` when a destination's TLS files cannot be used or the traces file opened.
    public func units(for plan: DeliveryPlan, reusing existing: [ExportFanOut.Key] = []) throws(ConfigurationError) -> [ExportFanOut
        .Unit]
    {
        var units: [ExportFanOut.Unit] = []
        for destination in plan.destinations {
            let delivery = plan.delivery(for: destination)
            let key = ExportFanOut.Key(destination: destination, delivery: delivery, localFile: nil)
            units.append(existing.contains(key) ? placeholder(key) : try unit(for: destination, delivery: delivery))
        }
        if plan.destinations.isEmpty, let path = plan.localTracesFile {
            let key = ExportFanOut.Key(destination: nil, delivery: plan.defaults, localFile: path)
            if existing.contains(key) {
                units.append(placeholder(key))
            } else {
                let exporter: JSONLinesFileExporter
                do {
                    exporter = try JSONLinesFileExporter(path: path)
                } catch {
                    throw ConfigurationError(setting: "traces_file", reason: "cannot open \(path): \(error)")
                }
                // With the status board, so /status shows a trace written there as delivered (to `file:<path>`).
                let pipeline = ExportPipeline(
                    settings: plan.defaults, exporters: [exporter], counters: counters, logger: logger, status: status)
                units.append(ExportFanOut.Unit(key: key, pipeline: pipeline, group: group([pipeline])))
            }
        }
        return units
    }

    private func unit(for destination: OTLPDestination, delivery: DeliverySettings) throws(ConfigurationError) -> ExportFanOut.Unit {
        if destination.tls.insecureSkipVerify {
            logger.warning("TLS certificate verification is off for a destination", metadata: ["destination": "\(destination.name)"])
        }
        let exporter: any SpanExporter
        var services: [any Service] = []
        do {
            if destination.transportProtocol == .grpc {
                let grpc = try OTLPGRPCExporter(
                    destination: destination, retry: delivery.retry, logger: logger, status: status, counters: counters)
                services.append(grpc)  // its connection runs before the pipeline starts and stops after it flushed
                exporter = grpc
            } else {
                exporter = try OTLPHTTPExporter(
                    destination: destination, client: exportClient, retry: delivery.retry, logger: logger, status: status, counters: counters)
            }
        } catch {
            throw ConfigurationError(setting: "destinations.\(destination.name).tls", reason: "cannot load the TLS files: \(error)")
        }
        let pipeline = ExportPipeline(
            settings: delivery, exporters: [exporter], counters: counters, logger: logger, status: status,
            spoolPath: delivery.spool.map { Self.spoolPath(root: $0.directory, destination: destination.name) },
            shaper: DestinationShaper(policy: destination.policy), maxRequestBytes: destination.maxRequestBytes)
        return ExportFanOut.Unit(
            key: ExportFanOut.Key(destination: destination, delivery: delivery, localFile: nil), pipeline: pipeline,
            group: group(services + [pipeline]))
    }

    /// A destination's spool directory: `<root>/<name>`, the name reduced to letters, digits, `.`, `_` and `-`.
    public static func spoolPath(root: String, destination: String) -> String {
        let safe = String(destination.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
        return (root.hasSuffix("/") ? String(root.dropLast()) : root) + "/" + (safe.hasPrefix(".") ? "_" + safe : safe)
    }

    /// Checks at start-up that every destination's spool directory can be created, written and locked (so a
    /// second proxy on the same directory stops with the reason instead of delivering the same batches).
    public func checkSpools(for plan: DeliveryPlan) throws(ConfigurationError) {
        guard let spool = plan.defaults.spool else { return }
        for destination in plan.destinations {
            do {
                _ = try SpoolDirectory(path: Self.spoolPath(root: spool.directory, destination: destination.name), fsync: false)
            } catch {
                throw ConfigurationError(setting: "sending_queue.spool.directory", reason: error.description)
            }
        }
    }

    /// A stand-in for a unit that is already running (the fan-out keeps the running one).
    private func placeholder(_ key: ExportFanOut.Key) -> ExportFanOut.Unit {
        let pipeline = ExportPipeline(settings: key.delivery, exporters: [], counters: counters, logger: logger)
        return ExportFanOut.Unit(key: key, pipeline: pipeline, group: group([]))
    }

    private func group(_ services: [any Service]) -> ServiceGroup {
        ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [], cancellationSignals: [], logger: logger))
    }
}
