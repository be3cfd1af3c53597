import Logging
import NIOConcurrencyHelpers
import OTLPExport
import OTLPProto
import ProxyConfig
import ServiceLifecycle

/// The destinations traces are exported to right now: one unit (export pipeline plus the gRPC connection it
/// may need) per destination, every trace to each. Units can be added and retired while the proxy runs
/// (configuration reload): a retired unit stops taking spans and flushes its queue before it ends, so no
/// queued span is dropped; an unchanged destination keeps its unit and its queue.
final class ExportFanOut: Service, Sendable {
    /// One destination's export: its pipeline and the services it runs in (gRPC connection first).
    struct Unit: Sendable {
        /// What makes two units interchangeable: the same destination settings and the same delivery.
        let key: Key
        let pipeline: ExportPipeline
        let group: ServiceGroup
    }

    /// The settings a unit was built from.
    struct Key: Equatable, Sendable {
        var destination: OTLPDestination?
        var delivery: DeliverySettings
        var localFile: String?

        /// Whether both keys name the same destination (by its configured name, or the same local file).
        func sameDestination(as other: Key) -> Bool {
            if let name = destination?.name { return name == other.destination?.name }
            return localFile != nil && localFile == other.localFile
        }
    }

    private let units: NIOLockedValueBox<[Unit]>
    private let started: (stream: AsyncStream<Unit>, continuation: AsyncStream<Unit>.Continuation)

    init(units: [Unit]) {
        self.units = NIOLockedValueBox(units)
        started = AsyncStream.makeStream()
        for unit in units { started.continuation.yield(unit) }
    }

    /// The pipelines exporting now.
    var pipelines: [ExportPipeline] { units.withLockedValue { $0.map(\.pipeline) } }

    /// The keys of the units exporting now.
    var keys: [Key] { units.withLockedValue { $0.map(\.key) } }

    /// Hands translated spans to every destination's queue.
    func submit(_ resourceSpans: [Opentelemetry_Proto_Trace_V1_ResourceSpans]) {
        for pipeline in pipelines { pipeline.submit(resourceSpans) }
    }

    /// Why a destination's spool cannot be written now (one line per destination), empty when all can.
    var spoolProblems: [String] { pipelines.compactMap(\.spoolProblem) }

    /// Whether a destination whose full policy is `refuse` has no room: clients are then asked to retry.
    var isSaturated: Bool {
        pipelines.contains { $0.fullPolicy == .refuse && $0.isSaturated }
    }

    /// Makes `replacement` the set of units: units whose key is in it are kept as they are (the replacement's
    /// copy is dropped unstarted), new ones start, the others are retired (they flush, then end).
    /// - Returns: how many units started and how many were retired.
    @discardableResult
    func replace(with replacement: [Unit]) async -> (started: Int, retired: Int) {
        let (added, retired): ([Unit], [Unit]) = units.withLockedValue { current in
            let added = replacement.filter { new in !current.contains { $0.key == new.key } }
            let retired = current.filter { old in !replacement.contains { $0.key == old.key } }
            current = current.filter { old in replacement.contains { $0.key == old.key } } + added
            return (added, retired)
        }
        for unit in added { started.continuation.yield(unit) }
        for unit in retired {
            // The same destination with new settings (a rotated key, new headers): the old unit delivers nothing more
            // with its old settings and gives its queue (or spool) to the new one.
            if let successor = added.first(where: { $0.key.sameDestination(as: unit.key) }) {
                await unit.pipeline.retire(handingOverTo: successor.pipeline)
            }
            await unit.group.triggerGracefulShutdown()
        }
        return (added.count, retired.count)
    }

    /// Runs every unit until graceful shutdown, which each unit sees too: the pipelines flush, then end.
    func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for await unit in started.stream {
                    group.addTask {
                        do {
                            try await unit.group.run()
                        } catch {
                            // A pipeline ends only by shutdown; an error here is a bug worth a line, not a crash.
                            Logger(label: "mlflow-otel-proxy").error("export unit ended with an error", metadata: ["error": "\(error)"])
                        }
                    }
                }
                await group.waitForAll()
            }
        } onGracefulShutdown: {
            self.started.continuation.finish()
        }
    }
}

/// The settings requests read each time, replaceable by a configuration reload: inbound tokens and the
/// headers injected upstream.
final class LiveSettings: Sendable {
    /// One consistent set of values.
    struct Snapshot: Sendable {
        var authentication: InboundAuthentication?
        var upstreamHeaders: [KeyValuePair]
        var clientAuthorization: ClientAuthorizationPolicy
    }

    private let state: NIOLockedValueBox<Snapshot>

    init(_ configuration: ProxyConfiguration) { state = NIOLockedValueBox(Self.snapshot(of: configuration)) }

    /// The values now.
    var current: Snapshot { state.withLockedValue { $0 } }

    /// Replaces the values for requests from now on.
    func update(from configuration: ProxyConfiguration) {
        let new = Self.snapshot(of: configuration)
        state.withLockedValue { $0 = new }
    }

    static func snapshot(of configuration: ProxyConfiguration) -> Snapshot {
        Snapshot(
            authentication: configuration.inboundTokens.isEmpty ? nil : InboundAuthentication(tokens: Set(configuration.inboundTokens)),
            upstreamHeaders: configuration.upstreamHeaders, clientAuthorization: configuration.clientAuthorization)
    }
}
